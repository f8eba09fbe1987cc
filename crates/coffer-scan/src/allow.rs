//! Noise control: compiled allowlists, inline `coffer:allow` markers and the
//! placeholder filter of generic detectors.

use crate::config::{AllowlistSpec, ConfigError};
use regex::bytes::Regex as BytesRegex;
use regex::Regex;

/// What an allowlist regex is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegexTarget {
    /// The captured secret.
    Secret,
    /// The whole regex match.
    Match,
    /// The whole line holding the secret.
    Line,
}

/// A compiled allowlist.
#[derive(Debug, Clone)]
pub struct Allowlist {
    and: bool,
    commits: Vec<String>,
    paths: Vec<Regex>,
    regexes: Vec<BytesRegex>,
    target: RegexTarget,
    stopwords: Vec<String>,
    /// Rules it applies to (all when empty); global allowlists only.
    pub target_rules: Vec<String>,
}

/// The facts an allowlist is checked against.
#[derive(Clone, Copy)]
pub struct Candidate<'a> {
    /// File path.
    pub path: &'a str,
    /// Commit, when known.
    pub commit: Option<&'a str>,
    /// The secret.
    pub secret: &'a [u8],
    /// The whole match.
    pub matched: &'a [u8],
    /// The line(s) holding the secret.
    pub line: &'a [u8],
}

/// Prints the path and commit, and only the lengths of the secret, the
/// match and the line.
impl std::fmt::Debug for Candidate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("path", &self.path)
            .field("commit", &self.commit)
            .field(
                "secret",
                &format_args!("<{} bytes redacted>", self.secret.len()),
            )
            .field(
                "matched",
                &format_args!("<{} bytes redacted>", self.matched.len()),
            )
            .field(
                "line",
                &format_args!("<{} bytes redacted>", self.line.len()),
            )
            .finish()
    }
}

impl Allowlist {
    /// Compiles an allowlist; `owner` names it in errors.
    pub fn compile(spec: &AllowlistSpec, owner: &str) -> Result<Allowlist, ConfigError> {
        let err = |message: String| ConfigError::Rule {
            rule: owner.to_string(),
            message,
        };
        let target = match spec.regex_target.as_deref() {
            None | Some("") | Some("secret") => RegexTarget::Secret,
            Some("match") => RegexTarget::Match,
            Some("line") => RegexTarget::Line,
            Some(other) => return Err(err(format!("unknown regexTarget {other:?}"))),
        };
        let and = match spec.condition.as_deref() {
            None | Some("") => false,
            Some(c) if c.eq_ignore_ascii_case("or") => false,
            Some(c) if c.eq_ignore_ascii_case("and") => true,
            Some(other) => return Err(err(format!("unknown condition {other:?}"))),
        };
        let paths = spec
            .paths
            .iter()
            .map(|p| Regex::new(p).map_err(|e| err(format!("allowlist path regex: {e}"))))
            .collect::<Result<_, _>>()?;
        let regexes = spec
            .regexes
            .iter()
            .map(|p| compile_bytes_regex(p).map_err(|e| err(format!("allowlist regex: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(Allowlist {
            and,
            commits: spec.commits.clone(),
            paths,
            regexes,
            target,
            stopwords: spec.stopwords.iter().map(|s| s.to_lowercase()).collect(),
            target_rules: spec.target_rules.clone(),
        })
    }

    /// True when the allowlist has only path criteria (and so can skip a
    /// whole file before it is read).
    pub fn paths_only(&self) -> bool {
        !self.paths.is_empty()
            && self.commits.is_empty()
            && self.regexes.is_empty()
            && self.stopwords.is_empty()
    }

    /// True when `path` matches one of the path regexes.
    pub fn path_matches(&self, path: &str) -> bool {
        self.paths.iter().any(|r| r.is_match(path))
    }

    /// True when the candidate is allowed.
    pub fn allows(&self, c: &Candidate<'_>) -> bool {
        let mut checks: [Option<bool>; 4] = [None; 4];
        if !self.commits.is_empty() {
            checks[0] = Some(c.commit.is_some_and(|id| {
                self.commits
                    .iter()
                    .any(|x| !x.is_empty() && id.starts_with(x.as_str()))
            }));
        }
        if !self.paths.is_empty() {
            checks[1] = Some(self.path_matches(c.path));
        }
        if !self.regexes.is_empty() {
            let hay = match self.target {
                RegexTarget::Secret => c.secret,
                RegexTarget::Match => c.matched,
                RegexTarget::Line => c.line,
            };
            checks[2] = Some(self.regexes.iter().any(|r| r.is_match(hay)));
        }
        if !self.stopwords.is_empty() {
            let lower = String::from_utf8_lossy(c.secret).to_lowercase();
            checks[3] = Some(self.stopwords.iter().any(|w| lower.contains(w.as_str())));
        }
        let mut given = checks.iter().flatten().peekable();
        if given.peek().is_none() {
            return false;
        }
        if self.and {
            given.all(|&b| b)
        } else {
            given.any(|&b| b)
        }
    }
}

/// Compiles a bytes regex with Go's ASCII semantics for `\w`, `\b` and
/// `(?i)` (as gitleaks' RE2 has), falling back to Unicode mode for patterns
/// that need it.
pub fn compile_bytes_regex(pattern: &str) -> Result<BytesRegex, regex::Error> {
    let build = |unicode: bool| {
        regex::bytes::RegexBuilder::new(pattern)
            .unicode(unicode)
            .size_limit(64 << 20)
            .dfa_size_limit(16 << 20)
            .build()
    };
    build(false).or_else(|_| build(true))
}

/// True when `line` carries an inline `coffer:allow` or `gitleaks:allow`.
pub fn inline_allowed(line: &[u8]) -> bool {
    memchr::memmem::find(line, b"coffer:allow").is_some()
        || memchr::memmem::find(line, b"gitleaks:allow").is_some()
}

/// True for a `coffer://` reference (what `--import --rewrite` leaves in
/// place of a literal): a reference is never a finding.
pub fn is_reference(secret: &[u8]) -> bool {
    secret.len() >= 9 && secret[..9].eq_ignore_ascii_case(b"coffer://")
}

/// SHA-256 digests of sample credentials published in vendors' documentation
/// and sample apps (Firebase sample app keys, Stripe's documented test keys,
/// AWS's documentation keys): public, never live, and kept here as digests
/// so that this file holds none of them.
const PUBLISHED_SAMPLES: &[&str] = &[
    "f56e323494a6ffc2064e7a955908957d84f0755e5f975dabd64328d0359a8f7c",
    "2037abcaffb2b77785da716cf7ccff4ff4d00c4ea930db0167b7d71f50af7eb4",
    "3f370c9dd8225c63b5c77de1f785edc9712958f18bb612d5fa2e0ae33aeca682",
    "e4a5542bb7fd7b67e943c71ad29c34b5972c9840597e7eda53e666f44d5da0b9",
    "a19f89ab3555eac10c40741f6df79ecf0935998f15569f8db9d67bce0181fff6",
    "0b476bdf9acf2123d547b5ae76f1e59884d8ec9553ee0c47e9f31fd4768f3f3c",
    "eb540d2b6ee2a0a47c5779bc8a0141784c6b753840d4c6f4e2428a6e86e9e0b1",
    "37f8f09bdf12c2f2eae4ead7273a62ddb0c23459cbf902892f282b57f7ed6619",
    "8731261cb72d86267a32a532ebd3df429e2144e5e4ced7e13568bc9e6c8fb1b1",
    "49f777db995e8260da7ca9ffdf0c08d66f0453e97ec967018baf2cdfe3b582d0",
    "27a9a42931dff7eb2f8434e20a9bce976ea364e7bee49187f19d5cfeca9c7045",
    "dc0fcf046c61640cbd1e8b999ada3262d722c2ca4bf42dceac999020ffdbb614",
    "4c98242dcadc8b29005c6b4aad526552d5ea1842149154c0694adeec75847583",
    "ea9bb1082cf95663f5faca23b8b15ef2aa0fce0a5c6df9c32dcb85b2e0a4513d",
    "3a8b61d0f636b007840c0d40ba12bcf48465dc054cdc1a68704a33521d84b665",
    "a6c814bc555ae62c7bd8b58ec07bf559c7ed3a009976a1e0acc9cef0d4473b41",
    "2cafc0970149a84f3b9e62eaf169f36f59907a3b3e31f7b82e68c69cd27f7326",
    "b1471f544ceeea31333bde7e1ecbaad6eac0d4a749412ad29bd66ef895b81c6b",
    "1a5d44a2dca19669d72edf4c4f1c27c4c1ca4b4408fbb17f6ce4ad452d78ddb3",
    "c6ea27c534f993d31f0aef882e3d200e7b87470c379ae79c8f9b19d3bd363dc9",
    "78314b11be2e581549ac1c4f616563fad3fdf0c3b71678f6e2299182080e0598",
    "e21b597ba6b9cafa59d9ebc4d65c0385f5eb3fa56abab2607fa76589ad849a33",
];

/// True when `secret` is a published sample credential.
pub fn is_published_sample(secret: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    if !(16..=128).contains(&secret.len()) {
        return false;
    }
    let d = hex::encode(Sha256::digest(secret));
    PUBLISHED_SAMPLES.iter().any(|s| *s == d)
}

/// Length of the longest run of consecutive characters counting up or down
/// (`abcdef`, `123456`, `ZYXWV`): random credentials practically never hold
/// six in a row, documentation placeholders do.
pub fn sequence_run(s: &[u8]) -> usize {
    let mut best = 1.min(s.len());
    let (mut up, mut down) = (1, 1);
    for w in s.windows(2) {
        let step = i16::from(w[1]) - i16::from(w[0]);
        let alnum = w[0].is_ascii_alphanumeric() && w[1].is_ascii_alphanumeric();
        up = if alnum && step == 1 { up + 1 } else { 1 };
        down = if alnum && step == -1 { down + 1 } else { 1 };
        best = best.max(up).max(down);
    }
    best
}

/// Words that mark a value as a placeholder, not a credential.
const PLACEHOLDER_WORDS: &[&str] = &[
    "example",
    "xxxx",
    "changeme",
    "change_me",
    "change-me",
    "your-",
    "your_",
    "yourapi",
    "placeholder",
    "dummy",
    "redacted",
    "replace",
    "insert",
    "todo",
    "fixme",
    "sample",
    "fake",
    "foobar",
    "notreal",
    "not-a-",
    "not_a_",
    "mysecret",
    "my-secret",
    "mypassword",
    "secret123",
    "password123",
    "1234567",
    "abcdef1",
    "qwerty",
    "lorem",
    "<",
    ">",
    "${",
    "{{",
    "}}",
    "%(",
    "$(",
    "process.env",
    "os.environ",
    "getenv",
];

/// Which placeholder filter a rule's matches go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// A specific format: only obvious documentation values are dropped.
    Specific,
    /// A generic detector: the full list, and a value must mix letters and
    /// digits.
    Generic,
    /// A generic password detector: the full list, and a value must mix
    /// letters with digits, or hold a symbol between two letters or digits,
    /// or an upper-case letter after a lower-case one (`super$ecret`,
    /// `qyOIhJiM`; not `busybox@`, an anonymous FTP password): people choose
    /// passwords without digits, which keys and tokens never are.
    Password,
}

/// True when `secret` looks like a placeholder. `generic` applies the full
/// list; specific rules only drop obvious documentation values.
pub fn is_placeholder(secret: &[u8], generic: bool) -> bool {
    placeholder(
        secret,
        if generic {
            Filter::Generic
        } else {
            Filter::Specific
        },
    )
}

/// True when `secret` is a placeholder under `filter`.
pub fn placeholder(secret: &[u8], filter: Filter) -> bool {
    placeholder_named(secret, filter, false)
}

/// True when a UUID assigned to this name is a credential: a token, a
/// secret (`secret_id`, `client_secret`), a password or a private key
/// (Vault's tokens before 0.10, AppRole SecretIDs, Consul and Nomad ACL
/// tokens, MongoDB Atlas private keys and the passwords Vault's database
/// engines generated are UUIDs), unless the name ends in `id` without a
/// `secret` in it (`token_poll_id`, `entity_id`): an identifier.
pub fn credential_name(name: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    let tail = lower.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let last = tail
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .next()
        .unwrap_or("");
    let credential = [
        "token",
        "secret",
        "password",
        "passwd",
        "private_key",
        "privatekey",
    ]
    .iter()
    .any(|w| tail.contains(w));
    let id = last.ends_with("id") && !tail.contains("secret");
    credential && !id
}

/// [`placeholder`], where `uuid_ok` (the value's name is a
/// [`credential_name`]) lets a UUID through: the RFC 4122 sample and the
/// nil UUID stay placeholders.
pub fn placeholder_named(secret: &[u8], filter: Filter, uuid_ok: bool) -> bool {
    let generic = filter != Filter::Specific;
    let lower = String::from_utf8_lossy(secret).to_lowercase();
    if lower.contains("example") || lower.contains("xxxxxx") || lower.contains("******") {
        return true;
    }
    let run = repeated_run(secret);
    // A webhook URL is a specific rule's credential; a path is not.
    let path = looks_like_slash_path(secret) && (generic || !lower.contains("://"));
    if is_published_sample(secret) || sequence_run(secret) >= 6 || path {
        return true;
    }
    if !generic {
        return run * 2 >= secret.len()
            || [
                "changeme",
                "placeholder",
                "redacted",
                "your_",
                "your-",
                "xxxx",
            ]
            .iter()
            .any(|w| lower.contains(w));
    }
    if run >= 8 {
        return true;
    }
    // Audit-log HMACs (Vault's and Coffer's `hmac-sha256:<hex>`) and
    // `sha1:<hex>`-style digests are digests of values, not the values; a
    // value with `***` in it is masked.
    if ["hmac-sha256:", "sha1:", "sha256:", "sha512:", "md5:"]
        .iter()
        .any(|p| lower.starts_with(p))
        || lower.contains("***")
    {
        return true;
    }
    // Numeric literals (`0x8031006C_u32`, `536870912u32`) and counting
    // byte sequences (`000102030405…`, test vectors).
    if looks_like_number(secret) || hex_counting(secret) {
        return true;
    }
    // Variables, format strings, decorators and command-line flags.
    if secret.starts_with(b"$")
        || secret.starts_with(b"%")
        || secret.starts_with(b"@")
        || secret.starts_with(b"-")
    {
        return true;
    }
    if repeated_run(secret) >= 4 && repeated_run(secret) * 3 >= secret.len() {
        return true;
    }
    if module_attribute(secret) {
        return true;
    }
    // `PasswordHash::hash_password`, `Foo::BAR`: a path in code.
    if PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w)) || lower.contains("::") {
        return true;
    }
    // A credential mixes letters and digits; words, paths, URLs, UUIDs and
    // identifiers are not credentials.
    let has_digit = secret.iter().any(u8::is_ascii_digit);
    let has_alpha = secret.iter().any(u8::is_ascii_alphabetic);
    let mixed = (has_digit && has_alpha)
        || (filter == Filter::Password
            && has_alpha
            && (secret.windows(3).any(|w| {
                PASSWORD_SYMBOLS.contains(&w[1])
                    && w[0].is_ascii_alphanumeric()
                    && w[2].is_ascii_alphanumeric()
            }) || secret
                .windows(2)
                .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())));
    !mixed
        || lower.starts_with("http")
        || looks_like_path(secret)
        || lower.starts_with("eyj") // JWT pieces: the jwt rule owns whole tokens
        || (is_uuid(secret) && (!uuid_ok || lower.starts_with("123e4567-e89b")))
        || looks_like_identifier(secret.strip_prefix(b"=").unwrap_or(secret))
}

/// Symbols that make a letters-only value a password (`_`, `-`, `.`, `/`
/// and `:` join the words of identifiers, paths and URLs, and `%` starts
/// a format or an escape).
const PASSWORD_SYMBOLS: &[u8] = b"!@#$^&*+=?~";

/// True for `x25519.X25519PrivateKey`, `win32api.RegEnumKey`,
/// `self.token_v2`: a lower-case module or variable name of at most twelve
/// characters, a dot, and an attribute whose letters are an identifier's
/// (not `hawk.nHAOHdJj…`, a token's prefix and body).
fn module_attribute(s: &[u8]) -> bool {
    let Some(dot) = memchr::memchr(b'.', s) else {
        return false;
    };
    let (head, attr) = (&s[..dot], &s[dot + 1..]);
    let letters: Vec<u8> = attr
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_digit())
        .collect();
    (1..=12).contains(&head.len())
        && head[0].is_ascii_lowercase()
        && head
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && attr.first().is_some_and(u8::is_ascii_alphabetic)
        && attr.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && looks_like_identifier(&letters)
}

/// True for integer literals with an optional Rust/C suffix.
fn looks_like_number(s: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(s)
        .to_ascii_lowercase()
        .replace('_', "");
    let body = [
        "usize", "isize", "u128", "i128", "u64", "i64", "u32", "i32", "u16", "i16", "u8", "i8",
        "ull", "ul", "u", "l",
    ]
    .iter()
    .find_map(|suf| lower.strip_suffix(suf))
    .unwrap_or(&lower);
    match body.strip_prefix("0x") {
        Some(h) => !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// True for hex whose bytes count up (`000102030405`, `A0A1A2A3A4A5`).
fn hex_counting(s: &[u8]) -> bool {
    if s.len() < 12 || !s.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let bytes: Vec<u8> = s
        .chunks(2)
        .filter_map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let mut run = 1;
    for w in bytes.windows(2) {
        run = if w[1] == w[0].wrapping_add(1) {
            run + 1
        } else {
            1
        };
        if run >= 6 {
            return true;
        }
    }
    false
}

/// True for `/usr/lib/x86_64`, `./config/app.yml`, `~/.ssh/config`: a
/// leading `/`, `./` or `~/` and lower-case segments (base64 may start with
/// `/` but mixes cases).
fn looks_like_path(s: &[u8]) -> bool {
    let rest = if let Some(r) = s.strip_prefix(b"./").or_else(|| s.strip_prefix(b"~/")) {
        r
    } else if let Some(r) = s.strip_prefix(b"/") {
        r
    } else {
        return false;
    };
    rest.iter().all(|&b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'.' | b'_' | b'-')
    })
}

/// True for a path or URL with two or more `/` whose every segment is a
/// word, an identifier, a number or lower-case text (`app/level1/item2`,
/// `data/<uuid>/x`, a SigV4 scope `AKID/<date>/<region>/<service>/aws4_request`,
/// `org/team/oauth2/authorize` after a provider's host name): storage keys,
/// request paths and URLs, not credentials. Random base64 holding slashes
/// has mixed-case segments, which are none of these.
fn looks_like_slash_path(s: &[u8]) -> bool {
    let segment = |g: &[u8]| {
        g.iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-:".contains(b))
            || (g.iter().all(u8::is_ascii_alphabetic) && word_like(g))
            || looks_like_identifier(g)
    };
    s.iter().filter(|&&b| b == b'/').count() >= 2
        && s.split(|&b| b == b'/').all(segment)
        && s.split(|&b| b == b'/')
            .any(|g| g.len() >= 3 && g.iter().any(u8::is_ascii_alphabetic))
}

/// True for a canonical UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// True for names such as `db_password_v2`, `SECRET_KEY_NAME`,
/// `apiKeyProd1` or `user.auth-token`: two or more words joined by `_`, `-`,
/// `.` or camel case, each word all lower-case, all capitals, or a capital
/// followed by lower-case letters, optionally ending in up to two digits, and
/// each word of five letters or more holding a vowel, three letters a word
/// on average.
fn looks_like_identifier(s: &[u8]) -> bool {
    let mut words = 0;
    let mut letters = 0;
    for part in s.split(|b| matches!(b, b'_' | b'-' | b'.')) {
        if part.iter().all(u8::is_ascii_digit) {
            continue; // "9" in "pkcs-9-at", empty parts
        }
        // `64BITKEY`, `128BITS`: a width before an upper-case word.
        let lead = part.iter().take_while(|b| b.is_ascii_digit()).count();
        let part = if lead > 0 && lead <= 3 && part.get(lead).is_some_and(u8::is_ascii_uppercase) {
            &part[lead..]
        } else {
            part
        };
        // Capitals split by digits again and again (`FID3WRPR3CGPV`, a
        // base32 TOTP seed): identifiers join capital words with `_`.
        if !part.iter().any(u8::is_ascii_lowercase) && inner_digit_groups(part) >= 2 {
            return false;
        }
        let mut i = 0;
        while i < part.len() {
            let start = i;
            let upper = part[i..]
                .iter()
                .take_while(|b| b.is_ascii_uppercase())
                .count();
            i += upper;
            if upper > 1 && i < part.len() && part[i].is_ascii_lowercase() {
                i -= 1; // "HTTPServer": the last capital starts the next word
            } else if upper <= 1 {
                i += part[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_lowercase())
                    .count();
            }
            let word = &part[start..i];
            let digits = part[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            i += digits;
            // `x25519`, `sha256`: a longer number may end a part.
            let at_end = i == part.len();
            if word.is_empty() || (digits > 2 && !(at_end && digits <= 5)) || !word_like(word) {
                return false;
            }
            if i < part.len() && !part[i].is_ascii_alphabetic() {
                return false;
            }
            // Digits end a word; a lower-case letter right after them
            // (`f6ameo8gaperc`) is random text, not the next word.
            if digits > 0 && i < part.len() && part[i].is_ascii_lowercase() {
                return false;
            }
            words += 1;
            letters += word.len();
        }
    }
    // Random strings split into many one- and two-letter "words".
    words >= 2 && letters >= 3 * words
}

/// Runs of digits with a letter right after them.
fn inner_digit_groups(s: &[u8]) -> usize {
    s.windows(2)
        .filter(|w| w[0].is_ascii_digit() && w[1].is_ascii_alphabetic())
        .count()
}

/// Length of the longest run of one repeated byte.
fn repeated_run(s: &[u8]) -> usize {
    let mut best = 0;
    let mut run = 0;
    let mut prev = None;
    for &b in s {
        if Some(b) == prev {
            run += 1;
        } else {
            run = 1;
            prev = Some(b);
        }
        best = best.max(run);
    }
    best
}

/// A word of five letters or more holds a vowel and no run of five
/// consonants (`strength` is a word; `WRPRRADQDN`, a piece of a base32
/// TOTP secret, is not).
fn word_like(w: &[u8]) -> bool {
    let vowel = |b: &u8| b"aeiouyAEIOUY".contains(b);
    if w.len() < 5 {
        return true;
    }
    let mut run = 0;
    for b in w {
        run = if vowel(b) { 0 } else { run + 1 };
        if run >= 5 {
            return false;
        }
    }
    w.iter().any(vowel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand<'a>(secret: &'a [u8], path: &'a str) -> Candidate<'a> {
        Candidate {
            path,
            commit: None,
            secret,
            matched: secret,
            line: secret,
        }
    }

    #[test]
    fn or_and_conditions() {
        let mut spec = AllowlistSpec {
            paths: vec![r"^tests/".into()],
            stopwords: vec!["fixture".into()],
            ..Default::default()
        };
        let or = Allowlist::compile(&spec, "t").unwrap();
        assert!(or.allows(&cand(b"abc", "tests/a.rs")));
        assert!(or.allows(&cand(b"my-FIXTURE-1", "src/a.rs")));
        assert!(!or.allows(&cand(b"abc", "src/a.rs")));
        spec.condition = Some("AND".into());
        let and = Allowlist::compile(&spec, "t").unwrap();
        assert!(!and.allows(&cand(b"abc", "tests/a.rs")));
        assert!(and.allows(&cand(b"fixture", "tests/a.rs")));
    }

    #[test]
    fn placeholders() {
        assert!(is_placeholder(b"AKIAIOSFODNN7EXAMPLE", false));
        assert!(is_placeholder(b"${API_TOKEN}", true));
        assert!(is_placeholder(b"hmac-sha256:9f86d081884c7d65", true));
        assert!(is_placeholder(b"your-api-key-here", true));
        assert!(is_placeholder(b"aaaaaaaaaaaa", true));
        assert!(!is_placeholder(b"q8Zr2LmX0pWv7Tn4", true));
        assert!(is_placeholder(b"secret/app/db", true));
        assert!(is_placeholder(b"x-hello-world-64", true));
        assert!(is_placeholder(b"-window=25:00-26:00", true));
        assert!(is_placeholder(b"/usr/lib/x86_64-linux-gnu", true));
        assert!(!is_placeholder(
            b"/mC9Pej/UVZ8bWn9vM454y4uQOvDkRDOWy5ERQsC",
            true
        ));
        assert!(is_placeholder(
            b"550e8400-e29b-41d4-a716-446655440000",
            true
        ));
        assert!(is_placeholder(b"django_secret_key_v2", true));
        assert!(is_placeholder(b"apiKeyProd1", true));
        assert!(is_placeholder(b"SECRET_KEY_NAME", true));
        assert!(!is_placeholder(b"aaE2QQUlED3FQZAa8ipS2vzrVATxs1N2", true));
        assert!(!is_placeholder(b"raR_VeNPXSZV6vGcZPWX", true));
        assert!(!is_placeholder(b"9fK2mQ7xLp3Rt8Vw", true));
        assert!(is_placeholder(b"pkcs-9-at-pkcs15Token", true));
        assert!(!is_placeholder(b"f6ameo8gaperc4j4g4tg9lbsqwbnak3c", true));
        for v in [
            &b"app/level1/level2/item1"[..],
            b"data/5c1e9a04-7b2d-4e8f-9a63-0d2b7c4e1f58/7a9e03",
            b"AKID/20240115/eu-west-2/s3/aws4_request",
            b"org/team/oauth2/authorize",
            b"file:///srv/secrets/unseal-1.key",
            b"/rootDir/leafDir/n3",
            b"sha1:93e0c4f7a1d25b68e3f09c7a4d1b62e85f03c9a7",
            b"Wq7mTzRk2Lp***",
            b"0x8031006C_u32",
            b"536870912u32",
            b"000102030405060708090a0b0c0d0e0f10111213",
            b"FLG_ADDREG_64BITKEY",
            b"x25519_generate_private_key",
            b"=FTS5_AVERAGES_ROWID",
            b"x25519.X25519PrivateKey",
            b"win32api.RegEnumKey",
        ] {
            assert!(is_placeholder(v, true), "{}", String::from_utf8_lossy(v));
        }
        // Sequences and published samples, for specific rules too.
        assert!(is_placeholder(b"sk_live_abcdefghij0123456789", false));
        assert!(is_placeholder(b"AIzaSyABCDEFGHIJKLmn0pqrstuv", false));
        let mut rng = crate::template::Rng::new(12);
        let live = crate::template::expand("sk_live_<<alnum:24>>", &mut rng, 1.0);
        assert!(!is_placeholder(live.as_bytes(), false));
        assert_eq!(sequence_run(b"x9876543y"), 7);
        assert!(is_published_sample(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(!is_published_sample(b"AKIAQ8ZR2LMX0PWV7TN4"));
    }

    #[test]
    fn password_filter_takes_symbols_and_case() {
        let mut rng = crate::template::Rng::new(5);
        let p = |t: &str, rng: &mut crate::template::Rng| crate::template::expand(t, rng, 1.0);
        let symbol = p("<<a-z:5>>$<<a-z:5>>", &mut rng);
        // Case changes every letter or two: no camel-case identifier.
        let cased = p(
            "<<a-z:2>><<A-Z:2>><<a-z:1>><<A-Z:1>><<a-z:1>><<A-Z:1>>",
            &mut rng,
        );
        for v in [&symbol, &cased] {
            assert!(!placeholder(v.as_bytes(), Filter::Password), "{v}");
            assert!(placeholder(v.as_bytes(), Filter::Generic), "{v}");
        }
        for v in [
            p("<<a-z:10>>", &mut rng),
            p("<<a-z:8>>@", &mut rng),
            p("<<a-z:4>>%<<a-z:4>>", &mut rng),
            "userPassword".to_string(),
            "PasswordHash::hash_password".to_string(),
        ] {
            assert!(placeholder(v.as_bytes(), Filter::Password), "{v}");
        }
    }

    #[test]
    fn inline_marker() {
        assert!(inline_allowed(b"let k = \"abc\"; // coffer:allow"));
        assert!(inline_allowed(b"k = abc # gitleaks:allow"));
        assert!(!inline_allowed(b"k = abc"));
    }
}
