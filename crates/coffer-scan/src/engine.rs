//! The compiled scanner.
//!
//! One Aho-Corasick automaton holds every rule's keywords (ASCII
//! case-insensitive). A single pass over the content yields keyword hits;
//! each hit opens a window (from the start of its line to the end of its
//! line, or `window` bytes on for multi-line rules) for the rules owning that
//! keyword, overlapping windows of one rule merge, and each rule's regex runs
//! only inside its windows. Content without keyword hits costs one
//! automaton pass and nothing else.

use crate::allow::{self, Allowlist, Candidate};
use crate::checksum::Checksum;
use crate::config::{context_regex, Config, ConfigError, RuleSpec};
use crate::decode;
use crate::entropy::{password_floor, shannon};
use crate::finding::Finding;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::Regex as BytesRegex;
use regex::Regex;
use zeroize::Zeroizing;

/// How far back from a keyword a window may start (to the line start).
const BACK: usize = 512;
/// How far past a keyword a line-bounded window may reach.
const FORWARD: usize = 2048;
/// Bytes inspected for a NUL to call content binary.
const BINARY_PROBE: usize = 8192;

/// Where a rule's regex runs.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// Around keyword hits, to the end of the line or `n` bytes on.
    Window(Option<usize>),
    /// The whole content, when any keyword occurs (or always, without
    /// keywords): gitleaks' semantics for user rules.
    File,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// Description.
    pub description: String,
    /// Lifecycle type.
    pub secret_type: String,
    /// Vendor.
    pub vendor: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Generic detector (loses overlaps, placeholder filter).
    pub generic: bool,
    regex: Option<BytesRegex>,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    /// A built-in password rule: its entropy floor follows the value's
    /// length ([`password_floor`]).
    password: bool,
    /// The placeholder filter its matches go through.
    filter: allow::Filter,
    path: Option<Regex>,
    allowlists: Vec<Allowlist>,
    scope: Scope,
    /// A built-in format's structure check ([`crate::structure`]).
    check: Option<fn(&[u8]) -> bool>,
    /// A built-in format's checksum ([`crate::checksum`]).
    checksum: Option<crate::checksum::Check>,
}

/// A compiled set of rules, ready to scan content.
#[derive(Debug)]
pub struct Scanner {
    rules: Vec<Rule>,
    ac: Option<AhoCorasick>,
    patterns: Vec<String>,
    /// Patterns below this index are rule keywords; the rest are
    /// [`decode::TRIGGERS`].
    n_keywords: usize,
    keyword_rules: Vec<Vec<u32>>,
    unkeyed_rules: Vec<u32>,
    path_rules: Vec<u32>,
    allowlists: Vec<Allowlist>,
    /// The built-in `authorization-basic` rule, whose matches are decoded.
    basic_rule: Option<u32>,
}

/// A match before line numbers are computed.
struct Raw {
    rule: u32,
    start: usize,
    end: usize,
    entropy: f64,
    /// The decoding layer it was found under, if any.
    decoded: Option<&'static str>,
    /// The format's checksum outcome, when it has one.
    checksum: Option<Checksum>,
}

/// What one keyword pass saw besides matches: decoding triggers and the
/// first keyword hits (where JSON strings may hide escaped secrets).
#[derive(Default)]
struct Seen {
    triggers: Vec<(decode::Trigger, usize)>,
    hits: Vec<usize>,
}

/// Keyword hits remembered per file for the JSON layer.
const MAX_HITS: usize = 64;

impl Scanner {
    /// Compiles a configuration.
    pub fn new(config: &Config) -> Result<Scanner, ConfigError> {
        let mut rules = Vec::with_capacity(config.rules.len());
        let mut patterns: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<u32>> = Vec::new();
        let mut unkeyed_rules = Vec::new();
        let mut path_rules = Vec::new();
        for spec in &config.rules {
            let idx = u32::try_from(rules.len()).map_err(|_| ConfigError::Rule {
                rule: spec.id.clone(),
                message: "too many rules".into(),
            })?;
            let rule = compile_rule(spec)?;
            let mut keywords: Vec<String> =
                spec.keywords.iter().map(|k| k.to_lowercase()).collect();
            keywords.extend(spec.context.iter().map(|k| k.to_lowercase()));
            keywords.retain(|k| !k.is_empty());
            keywords.sort();
            keywords.dedup();
            if rule.regex.is_none() {
                path_rules.push(idx);
            } else if keywords.is_empty() {
                unkeyed_rules.push(idx);
            } else {
                for k in keywords {
                    match patterns.iter().position(|p| *p == k) {
                        Some(p) => keyword_rules[p].push(idx),
                        None => {
                            patterns.push(k);
                            keyword_rules.push(vec![idx]);
                        }
                    }
                }
            }
            rules.push(rule);
        }
        // The automaton reports leftmost-longest, non-overlapping matches
        // (several times faster than overlapping search), so a keyword
        // inside a longer one ("key" in "key-") would go unreported: each
        // keyword's rules also include those of every keyword it contains.
        let own = keyword_rules.clone();
        for (i, p) in patterns.iter().enumerate() {
            for (j, q) in patterns.iter().enumerate() {
                if i != j && p.contains(q.as_str()) {
                    for &r in &own[j] {
                        if !keyword_rules[i].contains(&r) {
                            keyword_rules[i].push(r);
                        }
                    }
                }
            }
        }
        let n_keywords = patterns.len();
        let mut ac_patterns = patterns.clone();
        ac_patterns.extend(decode::TRIGGERS.iter().map(|t| t.to_string()));
        let ac = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&ac_patterns)
                    .or_else(|_| {
                        AhoCorasickBuilder::new()
                            .ascii_case_insensitive(true)
                            .match_kind(MatchKind::LeftmostLongest)
                            .build(&ac_patterns)
                    })
                    .map_err(|e| ConfigError::Rule {
                        rule: "keywords".into(),
                        message: e.to_string(),
                    })?,
            )
        };
        let allowlists = config
            .allowlists
            .iter()
            .map(|a| Allowlist::compile(a, "allowlist"))
            .collect::<Result<_, _>>()?;
        let basic_rule = rules
            .iter()
            .position(|r| r.id == "authorization-basic" && r.check.is_some())
            .and_then(|i| u32::try_from(i).ok());
        Ok(Scanner {
            basic_rule,
            rules,
            ac,
            patterns,
            n_keywords,
            keyword_rules,
            unkeyed_rules,
            path_rules,
            allowlists,
        })
    }

    /// The compiled rules, in priority order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every distinct keyword, lowercased (for benchmarks and `rg`).
    pub fn keywords(&self) -> &[String] {
        &self.patterns
    }

    /// True when a global path-only allowlist excludes `path` entirely.
    pub fn path_excluded(&self, path: &str) -> bool {
        self.allowlists
            .iter()
            .any(|a| a.target_rules.is_empty() && a.paths_only() && a.path_matches(path))
    }

    /// Scans one file's content. `path` is used for path filters, allowlists
    /// and the findings. Binary content (a NUL in its first 8 KiB) yields
    /// only path-rule findings.
    pub fn scan(&self, path: &str, data: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.path_excluded(path) {
            return out;
        }
        for &r in &self.path_rules {
            let rule = &self.rules[r as usize];
            if rule.path.as_ref().is_some_and(|p| p.is_match(path)) {
                out.push(self.file_finding(rule, path));
            }
        }
        if is_binary(data) {
            return out;
        }
        let mut seen = Seen::default();
        let mut raws = self.pass(path, data, Some(&mut seen));
        if let Some(b) = self.basic_rule {
            seen.triggers.extend(
                raws.iter()
                    .filter(|r| r.rule == b)
                    .map(|r| (decode::Trigger::BasicAuth, r.start)),
            );
        }
        for layer in decode::layers(data, &seen.triggers, &seen.hits) {
            for r in self.pass(path, &layer.text, None) {
                if let Some((s, e)) = layer.original_span(r.start, r.end) {
                    let secret = &data[s..e];
                    if allow::placeholder(secret, self.rules[r.rule as usize].filter)
                        && layer.map.is_some()
                    {
                        continue;
                    }
                    raws.push(Raw {
                        start: s,
                        end: e,
                        decoded: Some(layer.kind),
                        ..r
                    });
                }
            }
        }
        self.finish(path, data, raws, &mut out);
        out
    }

    /// One keyword pass and the regexes in its windows. `seen`, when given,
    /// collects decoding triggers and keyword hits (the outer pass only: a
    /// decoded layer is not decoded again).
    fn pass(&self, path: &str, data: &[u8], mut seen: Option<&mut Seen>) -> Vec<Raw> {
        let mut raws: Vec<Raw> = Vec::new();
        let mut cur: Vec<(usize, usize)> = vec![(usize::MAX, 0); self.rules.len()];
        let mut file_hit = vec![false; self.rules.len()];
        let mut windows: Vec<(u32, usize, usize)> = Vec::new();
        if let Some(ac) = &self.ac {
            // Leftmost-longest matches, each search resuming one byte past
            // the previous match's start: a keyword overlapping the end of
            // another (`:aa` in `user:AAAA…`) is still seen.
            let mut pos = 0;
            while pos < data.len() {
                let Some(m) = ac.find(aho_corasick::Input::new(data).range(pos..)) else {
                    break;
                };
                pos = m.start() + 1;
                let p = m.pattern().as_usize();
                if p >= self.n_keywords {
                    if let (Some(seen), Some(t)) = (
                        seen.as_deref_mut(),
                        decode::Trigger::from_index(p - self.n_keywords),
                    ) {
                        seen.triggers.push((t, m.start()));
                    }
                    continue;
                }
                if let Some(seen) = seen.as_deref_mut() {
                    if seen.hits.len() < MAX_HITS {
                        seen.hits.push(m.start());
                    }
                }
                for &r in &self.keyword_rules[p] {
                    let ri = r as usize;
                    match self.rules[ri].scope {
                        Scope::File => file_hit[ri] = true,
                        Scope::Window(fwd) => {
                            let c = cur[ri];
                            if c.0 != usize::MAX && m.end() <= c.1 {
                                continue;
                            }
                            let (s, e) = window(data, m.start(), m.end(), fwd);
                            if c.0 != usize::MAX && s <= c.1 {
                                cur[ri].1 = c.1.max(e);
                            } else {
                                if c.0 != usize::MAX {
                                    windows.push((r, c.0, c.1));
                                }
                                cur[ri] = (s, e);
                            }
                        }
                    }
                }
            }
        }
        for (ri, c) in cur.iter().enumerate() {
            if c.0 != usize::MAX {
                windows.push((ri as u32, c.0, c.1));
            }
        }
        for (ri, hit) in file_hit.iter().enumerate() {
            if *hit {
                windows.push((ri as u32, 0, data.len()));
            }
        }
        for &r in &self.unkeyed_rules {
            windows.push((r, 0, data.len()));
        }
        for (r, s, e) in windows {
            let rule = &self.rules[r as usize];
            if rule.path.as_ref().is_some_and(|p| !p.is_match(path)) {
                continue;
            }
            self.run_rule(r, rule, data, s, e, path, &mut raws);
        }
        raws
    }

    #[allow(clippy::too_many_arguments)]
    fn run_rule(
        &self,
        r: u32,
        rule: &Rule,
        data: &[u8],
        s: usize,
        e: usize,
        path: &str,
        raws: &mut Vec<Raw>,
    ) {
        let Some(re) = &rule.regex else { return };
        let hay = &data[..e];
        let mut locs = re.capture_locations();
        let mut pos = s;
        while pos <= hay.len() {
            let Some(m) = re.captures_read_at(&mut locs, hay, pos) else {
                break;
            };
            pos = if m.end() > m.start() {
                m.end()
            } else {
                m.end() + 1
            };
            // gitleaks: the secret group, else the first group that took
            // part in the match, else the whole match.
            let group = match rule.secret_group {
                Some(g) => g,
                None => (1..locs.len())
                    .find(|&g| locs.get(g).is_some())
                    .unwrap_or(0),
            };
            let Some((ss, se)) = locs.get(group) else {
                continue;
            };
            if se <= ss {
                continue;
            }
            let secret = &data[ss..se];
            if rule.generic && type_position(&data[se..]) {
                continue;
            }
            let ent = shannon(secret);
            let floor = match rule.entropy {
                Some(f) if rule.password => Some(password_floor(f, secret.len())),
                f => f,
            };
            if floor.is_some_and(|floor| ent < floor) {
                continue;
            }
            let checksum = rule.checksum.and_then(|check| check(secret)).map(|ok| {
                if ok {
                    Checksum::Valid
                } else {
                    Checksum::Invalid
                }
            });
            // A valid checksum is a credential of its format, however
            // sequential it looks; only published samples are dropped.
            let placeholder = if checksum == Some(Checksum::Valid) {
                allow::is_published_sample(secret)
            } else {
                // A UUID is an identifier, except as the value of a token,
                // secret or password.
                let uuid_ok = rule.generic
                    && allow::is_uuid(secret)
                    && allow::credential_name(&data[m.start()..ss]);
                allow::placeholder_named(secret, rule.filter, uuid_ok)
            };
            if placeholder || allow::is_reference(secret) {
                continue;
            }
            if rule.check.is_some_and(|ok| !ok(secret)) {
                continue;
            }
            let line = line_bounds(data, ss, se);
            if allow::inline_allowed(&data[line.0..line.1]) {
                continue;
            }
            let cand = Candidate {
                path,
                commit: None,
                secret,
                matched: &data[m.start()..m.end()],
                line: &data[line.0..line.1],
            };
            if rule.allowlists.iter().any(|a| a.allows(&cand)) {
                continue;
            }
            if self
                .allowlists
                .iter()
                .any(|a| applies(a, &rule.id) && a.allows(&cand))
            {
                continue;
            }
            raws.push(Raw {
                rule: r,
                start: ss,
                end: se,
                entropy: ent,
                decoded: None,
                checksum,
            });
        }
    }

    /// Drops overlaps (see `rank`), computes
    /// line numbers and builds findings.
    fn finish(&self, path: &str, data: &[u8], mut raws: Vec<Raw>, out: &mut Vec<Finding>) {
        // Specific beats generic (and the Basic-credentials container, which
        // loses to the token it holds), undecoded beats decoded, then rule
        // order.
        let rank = |r: &Raw| {
            (
                self.rules[r.rule as usize].generic || Some(r.rule) == self.basic_rule,
                r.decoded.is_some(),
                r.rule,
            )
        };
        raws.sort_by_key(|r| (r.start, rank(r)));
        let mut kept: Vec<Raw> = Vec::with_capacity(raws.len());
        for r in raws {
            if let Some(last) = kept.last_mut() {
                if r.start < last.end {
                    if rank(last) > rank(&r) {
                        *last = r;
                    }
                    continue;
                }
            }
            kept.push(r);
        }
        let mut line = 1usize;
        let mut line_start = 0usize;
        let mut scanned = 0usize;
        for r in kept {
            let rule = &self.rules[r.rule as usize];
            let (l, c) = advance(data, &mut scanned, &mut line, &mut line_start, r.start);
            let (mut el, mut es, mut sc) = (line, line_start, scanned);
            let (end_line, end_col) = advance(data, &mut sc, &mut el, &mut es, r.end);
            out.push(Finding {
                rule_id: rule.id.clone(),
                description: rule.description.clone(),
                path: path.to_string(),
                line: l,
                column: c,
                end_line,
                end_column: end_col,
                start: r.start,
                end: r.end,
                secret: Zeroizing::new(String::from_utf8_lossy(&data[r.start..r.end]).into_owned()),
                entropy: r.entropy,
                secret_type: rule.secret_type.clone(),
                vendor: rule.vendor.clone(),
                commit: None,
                decoded: r.decoded,
                also: Vec::new(),
                path_class: crate::finding::path_class(path),
                checksum: r.checksum,
                validation: None,
            });
        }
    }

    fn file_finding(&self, rule: &Rule, path: &str) -> Finding {
        Finding {
            rule_id: rule.id.clone(),
            description: rule.description.clone(),
            path: path.to_string(),
            line: 1,
            column: 1,
            end_line: 1,
            end_column: 1,
            start: 0,
            end: 0,
            secret: Zeroizing::new(String::new()),
            entropy: 0.0,
            secret_type: rule.secret_type.clone(),
            vendor: rule.vendor.clone(),
            commit: None,
            decoded: None,
            also: Vec::new(),
            path_class: None,
            checksum: None,
            validation: None,
        }
    }

    /// Drops findings that a commit allowlist (global or of their rule)
    /// covers; call after commits are attached.
    pub fn retain_commit_allowed(&self, findings: &mut Vec<Finding>) {
        findings.retain(|f| {
            let Some(ci) = &f.commit else { return true };
            let cand = Candidate {
                path: &f.path,
                commit: Some(&ci.commit),
                secret: f.secret.as_bytes(),
                matched: f.secret.as_bytes(),
                line: f.secret.as_bytes(),
            };
            let rule = self.rules.iter().find(|r| r.id == f.rule_id);
            let by_rule = rule.is_some_and(|r| r.allowlists.iter().any(|a| a.allows(&cand)));
            let global = self
                .allowlists
                .iter()
                .any(|a| applies(a, &f.rule_id) && a.allows(&cand));
            !(by_rule || global)
        });
    }
}

fn applies(a: &Allowlist, rule_id: &str) -> bool {
    a.target_rules.is_empty() || a.target_rules.iter().any(|t| t == rule_id)
}

/// Moves the line counter from `*scanned` to `to`; returns (line, column).
fn advance(
    data: &[u8],
    scanned: &mut usize,
    line: &mut usize,
    line_start: &mut usize,
    to: usize,
) -> (usize, usize) {
    let to = to.min(data.len());
    if to > *scanned {
        for nl in memchr::memchr_iter(b'\n', &data[*scanned..to]) {
            *line += 1;
            *line_start = *scanned + nl + 1;
        }
        *scanned = to;
    }
    (*line, to - *line_start + 1)
}

/// The window around a keyword hit: back to its line start (at most
/// `BACK`), forward to its line end (at most `FORWARD`) or `fwd` bytes.
fn window(data: &[u8], ks: usize, ke: usize, fwd: Option<usize>) -> (usize, usize) {
    let lo = ks.saturating_sub(BACK);
    // From the newline before the line, so that a boundary class such as
    // `(?:^|[\s"'])` can match at the line's start.
    let s = match memchr::memrchr(b'\n', &data[lo..ks]) {
        Some(i) => lo + i,
        None => lo,
    };
    let e = match fwd {
        Some(n) => (ke + n).min(data.len()),
        None => {
            let e = line_end(data, ke);
            // A value on the next line: `<k>` then the value, a YAML block
            // (`k: |`), Kubernetes `- name: K` then `value: …`, a JSON
            // `"name": "k",` then `"value": …`, a Terraform `variable "k" {`
            // then `default = …`.
            if e < data.len() && value_follows(&data[ke..e]) {
                line_end(data, e + 1)
            } else {
                e
            }
        }
    };
    (s, e)
}

/// True when what follows a generic value is ` = …` (not `==`, `=>`): the
/// "value" was the type of a typed declaration (`KEY: SomeType = 2`).
fn type_position(after: &[u8]) -> bool {
    let rest = &after[after
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    rest.first() == Some(&b'=') && !matches!(rest.get(1), Some(b'=' | b'>'))
}

/// The end of the line holding `at` (at most `FORWARD` bytes on).
fn line_end(data: &[u8], at: usize) -> usize {
    let hi = (at + FORWARD).min(data.len());
    match memchr::memchr(b'\n', &data[at..hi]) {
        Some(i) => at + i,
        None => hi,
    }
}

/// True when what follows a keyword on its line is the rest of an
/// identifier and punctuation only: the value, if any, is on the next line.
fn value_follows(rest: &[u8]) -> bool {
    let ident = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    rest[ident..].iter().all(|b| {
        matches!(
            b,
            b'"' | b'\''
                | b'`'
                | b'\\'
                | b' '
                | b'\t'
                | b'\r'
                | b'>'
                | b':'
                | b'|'
                | b'='
                | b','
                | b'-'
                | b'+'
                | b'{'
        )
    })
}

/// The line(s) around [s, e).
fn line_bounds(data: &[u8], s: usize, e: usize) -> (usize, usize) {
    let ls = memchr::memrchr(b'\n', &data[..s]).map_or(0, |i| i + 1);
    let le = memchr::memchr(b'\n', &data[e..]).map_or(data.len(), |i| e + i);
    (ls, le)
}

/// True when the first 8 KiB hold a NUL byte.
pub fn is_binary(data: &[u8]) -> bool {
    memchr::memchr(0, &data[..data.len().min(BINARY_PROBE)]).is_some()
}

fn compile_rule(spec: &RuleSpec) -> Result<Rule, ConfigError> {
    let err = |message: String| ConfigError::Rule {
        rule: spec.id.clone(),
        message,
    };
    // Also checked at load; here for configurations built in code.
    crate::config::check_rule_id(&spec.id)?;
    let pattern = match (&spec.regex, &spec.secret) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(secret)) if !spec.context.is_empty() => {
            Some(context_regex(&spec.context, secret))
        }
        _ => None,
    };
    if pattern.is_none() && spec.path.is_none() {
        return Err(err("a rule needs a regex or a path".into()));
    }
    let regex = pattern
        .as_deref()
        .map(allow::compile_bytes_regex)
        .transpose()
        .map_err(|e| err(format!("regex: {e}")))?;
    if let (Some(re), Some(g)) = (&regex, spec.secret_group) {
        if g >= re.captures_len() {
            return Err(err(format!(
                "secretGroup {g} but the regex has {} groups",
                re.captures_len() - 1
            )));
        }
    }
    let path = spec
        .path
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|e| err(format!("path regex: {e}")))?;
    let mut allowlists = Vec::new();
    for a in spec.allowlist.iter().chain(spec.allowlists.iter()) {
        allowlists.push(Allowlist::compile(a, &spec.id)?);
    }
    let scope = if spec.builtin || spec.window.is_some() || !spec.context.is_empty() {
        Scope::Window(spec.window)
    } else {
        Scope::File
    };
    let password = spec.builtin
        && matches!(
            spec.secret_type.as_deref(),
            Some("password" | "db_credential")
        );
    let filter = match (spec.generic, password) {
        (false, _) => allow::Filter::Specific,
        (true, false) => allow::Filter::Generic,
        (true, true) => allow::Filter::Password,
    };
    Ok(Rule {
        id: spec.id.clone(),
        description: spec.description.clone(),
        secret_type: spec.secret_type.clone().unwrap_or_else(|| "other".into()),
        vendor: spec.vendor.clone(),
        tags: spec.tags.clone(),
        generic: spec.generic,
        regex,
        secret_group: spec.secret_group,
        entropy: spec.entropy,
        password,
        filter,
        path,
        allowlists,
        scope,
        check: if spec.builtin {
            crate::structure::check_for(&spec.id)
        } else {
            None
        },
        checksum: if spec.builtin {
            crate::checksum::check_for(&spec.id)
        } else {
            None
        },
    })
}
