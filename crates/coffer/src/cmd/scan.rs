//! `coffer scan`: find secrets in files, directories, standard input, git
//! history or the staged changes, report them (human, JSON, SARIF, JUnit,
//! CSV), keep a baseline, install a pre-commit hook, and move what was found
//! into a Coffer server (`--import`, `--rewrite`).
//!
//! Exit codes: 0 clean, 1 findings, 2 error.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use coffer_scan::baseline::Baseline;
use coffer_scan::git::Range;
use coffer_scan::remediate::{self, Placement};
use coffer_scan::report::{self, Format, ReportContext};
use coffer_scan::walk::{Progress, ScanOptions};
use coffer_scan::{Config, Finding, Scanner};
use serde_json::json;
use zeroize::Zeroizing;

mod validate;

/// Configuration files looked for in the scanned root, in this order.
const AUTO_CONFIGS: &[&str] = &[".coffer-scan.toml", ".gitleaks.toml"];

/// Arguments of `coffer scan`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,

    /// Files or directories to scan (`-` reads standard input); with
    /// `--git` or `--staged`, the repository. Default: `.`.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Scan the git history of the repository (each unique blob once).
    #[arg(long)]
    git: bool,

    /// With --git: only commits after REV (REV..HEAD).
    #[arg(long, value_name = "REV", requires = "git", conflicts_with = "all")]
    since: Option<String>,

    /// With --git: every ref, not only HEAD's history.
    #[arg(long, requires = "git")]
    all: bool,

    /// Scan only the lines the staged changes add (for pre-commit hooks).
    #[arg(long, conflicts_with = "git")]
    staged: bool,

    /// Rules and allowlists (Coffer or gitleaks TOML). Default: the first of
    /// .coffer-scan.toml and .gitleaks.toml in the scanned root, else the
    /// built-in rules.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// Ignore the findings recorded in this baseline file.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,

    /// Write every current finding to this baseline file.
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,

    /// Report format: human, json, sarif, junit or csv.
    #[arg(long, short = 'f', default_value = "human")]
    format: String,

    /// Write the report to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Show secrets in clear in the report.
    #[arg(long)]
    no_redact: bool,

    /// Scan files that .gitignore and .ignore exclude.
    #[arg(long)]
    no_ignore: bool,

    /// Skip files (and blobs) larger than this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 100)]
    max_file_size: u64,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j')]
    threads: Option<usize>,

    /// Never show the progress line.
    #[arg(long)]
    no_progress: bool,

    /// Write each finding's value to the server under MOUNT/PREFIX (KV v2)
    /// and print the edit replacing it with a coffer:// reference.
    #[arg(long, value_name = "MOUNT/PREFIX")]
    import: Option<String>,

    /// With --import: apply the edits (only for values stored successfully).
    #[arg(long, requires = "import")]
    rewrite: bool,

    /// Check whether each found credential is live and report
    /// `validation: live|revoked|unknown`. Off by default: it uses the
    /// credentials. The mode takes `=` (`--validate=online`). `local` (the default): Coffer/Vault tokens against
    /// the server in COFFER_ADDR/VAULT_ADDR (auth/token/lookup-self),
    /// postgres:// URLs by connecting (only to --validate-host hosts), a
    /// private key against the certificates beside it, JWT expiry (offline).
    /// `online` adds provider APIs (GitHub GET /user, Slack auth.test),
    /// each only when its host is in --validate-host.
    #[arg(
        long,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "local"
    )]
    validate: Option<validate::Mode>,

    /// With --validate: a host (`name`, `name:port`, `[v6]:port`) that may
    /// be contacted to check a database URL or, with --validate=online, a
    /// provider's API (e.g. api.github.com, slack.com). Repeat or separate
    /// with commas. Default: none, so such credentials stay `unknown`.
    #[arg(
        long,
        value_name = "HOST",
        value_delimiter = ',',
        requires = "validate"
    )]
    validate_host: Vec<String>,

    /// With --validate=online: where a provider's API is, as NAME=URL
    /// (`github=https://ghe.internal/api/v3`, `slack=...`), for GitHub
    /// Enterprise, an API gateway or a test stand-in. https:// is required
    /// except on loopback; the host must still be in --validate-host.
    /// Defaults: github=https://api.github.com, slack=https://slack.com/api.
    #[arg(long, value_name = "NAME=URL", requires = "validate")]
    validate_endpoint: Vec<String>,

    /// With --validate: seconds each check (one request or connection) may
    /// take before it counts as `unknown`.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=300),
        requires = "validate"
    )]
    validate_timeout: u64,

    /// With --validate: checks run at the same time at most (each distinct
    /// credential is checked once).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..=64),
        requires = "validate"
    )]
    validate_concurrency: u64,

    /// Print the rules (id and description) and exit.
    #[arg(long)]
    list_rules: bool,

    /// Print the rules' keywords, one a line, and exit (for benchmarks).
    #[arg(long, hide = true)]
    print_keywords: bool,
}

/// Subcommands of `coffer scan`.
#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Write a git pre-commit hook running `coffer scan --staged`.
    InstallHook {
        /// The repository (default: the current one).
        repo: Option<PathBuf>,
        /// Replace an existing pre-commit hook.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the command, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    if let Some(Action::InstallHook { repo, force }) = &args.action {
        return install_hook(repo.as_deref().unwrap_or(Path::new(".")), *force);
    }
    if let Some(n) = args.threads {
        coffer_scan::walk::set_threads(n)
            .map_err(anyhow::Error::msg)
            .context("configuring threads")?;
    }
    // Parsed here rather than by clap so that a bad value is an error (exit
    // 2), not a usage error (exit 1, which means "findings" to CI).
    let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
    let root = scan_root(&args);
    let config = load_config(args.config.as_deref(), &root)?;
    let scanner = Scanner::new(&config)?;
    if args.list_rules {
        for r in scanner.rules() {
            println!("{:40} {}", r.id, r.description);
        }
        return Ok(0);
    }
    if args.print_keywords {
        for k in scanner.keywords() {
            println!("{k}");
        }
        return Ok(0);
    }

    let progress = Arc::new(Progress::default());
    let ticker = ProgressLine::start(&progress, !args.no_progress);
    let result = scan(&args, &scanner, &progress);
    ticker.stop();
    let mut findings = result?;
    let key_root = baseline_root(&root);
    let key_path = |f: &Finding| baseline_path(key_root.as_deref(), f);
    if let Some(p) = &args.write_baseline {
        Baseline::from_findings_keyed(&findings, key_path)
            .save(p)
            .with_context(|| format!("writing baseline {}", p.display()))?;
    }
    if let Some(p) = &args.baseline {
        Baseline::load(p)?.filter_keyed(&mut findings, key_path);
    }

    if let Some(mode) = args.validate {
        let opts = validate::Options::new(
            mode,
            &args.validate_host,
            &args.validate_endpoint,
            Duration::from_secs(args.validate_timeout),
            usize::try_from(args.validate_concurrency).unwrap_or(1),
        )?;
        validate::run(&mut findings, &opts);
    }

    let mut import_failed = false;
    if let Some(target) = &args.import {
        import_failed = import(&findings, target, args.rewrite, format, &args)?;
    }

    let ctx = ReportContext {
        rules: scanner.rules(),
        reveal: args.no_redact,
        version: env!("CARGO_PKG_VERSION"),
    };
    match &args.output {
        Some(p) => {
            let mut f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            report::write(format, &findings, &ctx, &mut f)?;
            f.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            report::write(format, &findings, &ctx, &mut out)?;
            out.flush()?;
        }
    }
    if import_failed {
        bail!("some values were not stored or their files not rewritten; those literals were left in place");
    }
    Ok(if findings.is_empty() { 0 } else { 1 })
}

/// The directory configs are discovered in.
fn scan_root(args: &Args) -> PathBuf {
    match args.paths.first() {
        Some(p) if p.as_os_str() != "-" && p.is_dir() => p.clone(),
        Some(p) if p.as_os_str() != "-" => p
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        _ => PathBuf::from("."),
    }
}

/// The directory baseline paths are relative to: the root of the git
/// repository holding the scanned root, else the scanned root itself
/// (absolute). None when it cannot be resolved.
pub(crate) fn baseline_root(root: &Path) -> Option<PathBuf> {
    let root = std::fs::canonicalize(root).ok()?;
    let git = root.ancestors().find(|d| d.join(".git").exists());
    Some(git.unwrap_or(&root).to_path_buf())
}

/// A finding's path as a baseline keys it: relative to `key_root` with `/`
/// separators, whatever the working directory. History and staged findings
/// (already relative to their repository), standard input and paths that
/// do not resolve under the root keep the path as printed.
pub(crate) fn baseline_path(key_root: Option<&Path>, f: &Finding) -> String {
    if f.commit.is_some() || f.path == "<stdin>" {
        return f.path.clone();
    }
    key_root
        .and_then(|r| {
            let abs = std::fs::canonicalize(&f.path).ok()?;
            let rel = abs.strip_prefix(r).ok()?;
            Some(rel.to_string_lossy().replace('\\', "/"))
        })
        .unwrap_or_else(|| f.path.clone())
}

pub(crate) fn load_config(explicit: Option<&Path>, root: &Path) -> anyhow::Result<Config> {
    if let Some(p) = explicit {
        return Ok(Config::load(p)?);
    }
    for name in AUTO_CONFIGS {
        let p = root.join(name);
        if p.is_file() {
            return Ok(Config::load(&p)?);
        }
    }
    Ok(Config::builtin()?)
}

fn scan(args: &Args, scanner: &Scanner, progress: &Progress) -> anyhow::Result<Vec<Finding>> {
    let max = args.max_file_size.saturating_mul(1 << 20);
    if args.git || args.staged {
        let repo = match args.paths.as_slice() {
            [] => PathBuf::from("."),
            [one] => one.clone(),
            _ => bail!("--git and --staged take at most one repository"),
        };
        if args.staged {
            return Ok(coffer_scan::git::scan_staged(scanner, &repo, progress)?);
        }
        let range = match (&args.since, args.all) {
            (Some(rev), _) => Range::Since(rev.clone()),
            (None, true) => Range::All,
            (None, false) => Range::Head,
        };
        return Ok(coffer_scan::git::scan_history(
            scanner, &repo, &range, max, progress,
        )?);
    }
    let opts = ScanOptions {
        respect_gitignore: !args.no_ignore,
        max_file_size: max,
    };
    let mut findings = Vec::new();
    let mut paths = Vec::new();
    for p in &args.paths {
        if p.as_os_str() == "-" {
            let stdin = std::io::stdin();
            findings.extend(coffer_scan::walk::scan_reader(
                scanner,
                "<stdin>",
                stdin.lock(),
                progress,
            )?);
        } else {
            paths.push(p.clone());
        }
    }
    if args.paths.is_empty() {
        paths.push(PathBuf::from("."));
    }
    if !paths.is_empty() {
        findings.extend(coffer_scan::walk::scan_paths(
            scanner, &paths, &opts, progress,
        )?);
    }
    Ok(findings)
}

/// A progress line on standard error, refreshed while a scan runs, shown
/// only when standard error is a terminal.
struct ProgressLine {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    fn start(progress: &Arc<Progress>, enabled: bool) -> ProgressLine {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return ProgressLine { stop, handle: None };
        }
        let (p, s) = (Arc::clone(progress), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            let mut shown = false;
            let mut ticks = 0u32;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                ticks += 1;
                // Only long scans get a progress line.
                if ticks >= 5 && ticks % 2 == 1 {
                    let files = p.files.load(Ordering::Relaxed);
                    let mb = p.bytes.load(Ordering::Relaxed) as f64 / 1e6;
                    let found = p.findings.load(Ordering::Relaxed);
                    eprint!("\rscanning: {files} files, {mb:.1} MB, {found} findings   ");
                    shown = true;
                }
            }
            if shown {
                eprint!("\r{:60}\r", "");
            }
        });
        ProgressLine {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The pre-commit hook script `install-hook` writes.
const HOOK: &str = "#!/bin/sh\n# Installed by `coffer scan install-hook`: refuse commits that add secrets.\n# Bypass once with `git commit --no-verify`; allow a line with a `coffer:allow` comment.\nexec coffer scan --staged --no-progress\n";

fn install_hook(repo: &Path, force: bool) -> anyhow::Result<i32> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!("{} is not in a git repository", repo.display());
    }
    let hooks = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let hooks = if hooks.is_absolute() {
        hooks
    } else {
        repo.join(hooks)
    };
    std::fs::create_dir_all(&hooks).with_context(|| format!("creating {}", hooks.display()))?;
    let path = hooks.join("pre-commit");
    if path.exists() && !force {
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        if existing == HOOK {
            println!("pre-commit hook already installed at {}", path.display());
            return Ok(0);
        }
        bail!("{} exists; use --force to replace it", path.display());
    }
    std::fs::write(&path, HOOK).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    println!("installed pre-commit hook at {}", path.display());
    Ok(0)
}

/// One value to move into the store: the literal a finding names, or the
/// whole URL around a URL password ([`remediate::url_span`]).
struct Planned<'a> {
    finding: &'a Finding,
    /// Byte range of `value` in the finding's file.
    start: usize,
    /// End of that range.
    end: usize,
    /// What is stored (and what the edit replaces).
    value: Zeroizing<String>,
    /// `value` is a whole URL whose password was found.
    url: bool,
}

impl Planned<'_> {
    /// Whether the finding is in a file of the working tree (rewritable).
    fn in_tree(&self) -> bool {
        in_tree(self.finding)
    }

    /// `path:line` of the finding.
    fn site(&self) -> String {
        format!("{}:{}", self.finding.path, self.finding.line)
    }
}

/// The values of `findings`, each a literal or, for the password of a URL
/// in a working-tree file, the whole URL.
fn plan(findings: &[Finding]) -> Vec<Planned<'_>> {
    let mut files: std::collections::HashMap<&str, Option<Zeroizing<Vec<u8>>>> =
        std::collections::HashMap::new();
    let mut out = Vec::new();
    for f in findings.iter().filter(|f| !f.secret.is_empty()) {
        let mut p = Planned {
            finding: f,
            start: f.start,
            end: f.end,
            value: f.secret.clone(),
            url: false,
        };
        if p.in_tree() {
            let content = files
                .entry(f.path.as_str())
                .or_insert_with(|| std::fs::read(&f.path).ok().map(Zeroizing::new));
            if let Some((s, e, url)) = content.as_ref().and_then(|c| url_around(c, f)) {
                p = Planned {
                    start: s,
                    end: e,
                    value: url,
                    url: true,
                    ..p
                };
            }
        }
        out.push(p);
    }
    out
}

/// Whether `f` is in a file of the working tree (not history, not
/// standard input).
pub(crate) fn in_tree(f: &Finding) -> bool {
    f.commit.is_none() && f.path != "<stdin>"
}

/// When `f`'s literal is the password of a URL and `content` (its file)
/// still holds it where it was found, the whole URL and its byte range
/// ([`remediate::url_span`]). A changed file gives `None` (and a rewrite
/// would refuse it anyway).
pub(crate) fn url_around(content: &[u8], f: &Finding) -> Option<(usize, usize, Zeroizing<String>)> {
    if content.get(f.start..f.end) != Some(f.secret.as_bytes()) {
        return None;
    }
    let (s, e) = remediate::url_span(content, f.start, f.end)?;
    let url = std::str::from_utf8(content.get(s..e)?).ok()?;
    Some((s, e, Zeroizing::new(url.to_owned())))
}

/// Groups planned values by value (compared in constant time): one secret
/// per distinct value, however many places hold it.
fn group<'a>(planned: Vec<Planned<'a>>) -> Vec<Vec<Planned<'a>>> {
    let mut groups: Vec<Vec<Planned<'a>>> = Vec::new();
    for p in planned {
        let same = groups.iter_mut().find(|g| {
            coffer_crypto::hash::constant_time_eq(g[0].value.as_bytes(), p.value.as_bytes())
        });
        match same {
            Some(g) => g.push(p),
            None => groups.push(vec![p]),
        }
    }
    groups
}

/// Stores each distinct value once in the server, records it in the
/// lifecycle inventory, prints (and with `rewrite` applies) the edits.
/// Returns true when some value was not stored or some file not rewritten.
///
/// Each destination is computed once ([`remediate::place`], validated, from
/// the first place holding the value) and the same [`Placement`] is printed
/// and written. A value already stored there is left alone ("unchanged");
/// a new one is written with `cas=0` (create only); an entry holding
/// anything else is never overwritten and is reported.
fn import(
    findings: &[Finding],
    target: &str,
    rewrite: bool,
    format: Format,
    args: &Args,
) -> anyhow::Result<bool> {
    let (mount, prefix) = remediate::parse_target(target).map_err(anyhow::Error::msg)?;
    let client = crate::client::Client::from_env().context("connecting to the Coffer server")?;
    let human = format == Format::Human && args.output.is_none();
    let say = |line: String| {
        if human {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    };
    let mut stored: Vec<(Vec<Planned>, Placement)> = Vec::new();
    let mut failed = false;
    for g in group(plan(findings)) {
        let first = &g[0];
        let sites = g.iter().map(Planned::site).collect::<Vec<_>>().join(", ");
        let rule = &first.finding.rule_id;
        let place = match remediate::place(first.finding, &mount, &prefix) {
            Ok(p) => p,
            Err(e) => {
                failed = true;
                say(format!(
                    "not stored {sites} ({rule}): no valid destination: {e}"
                ));
                continue;
            }
        };
        let dest = place.destination();
        let whole = if first.url {
            " (the whole URL: its password is part of it)"
        } else {
            ""
        };
        match store(&client, &g, &place) {
            Ok(outcome) => {
                let verb = match outcome {
                    Stored::Created => "stored",
                    Stored::Unchanged => "unchanged",
                };
                say(format!("{verb} {sites} ({rule}) at {dest}{whole}"));
                if let Err(e) = record_lifecycle(&client, &g, &place) {
                    say(format!(
                        "note: {dest} is stored but not in the lifecycle inventory: {e:#}"
                    ));
                }
                stored.push((g, place));
            }
            Err(e) => {
                failed = true;
                say(format!("not stored {sites} ({rule}): {e:#}"));
            }
        }
    }
    for (g, place) in &stored {
        for p in g.iter().filter(|p| p.in_tree()) {
            let what = if p.url { "the URL " } else { "" };
            say(format!(
                "edit {}:{}: replace {what}{} with {}",
                p.site(),
                p.finding.column,
                coffer_scan::finding::redact(&p.value),
                place.reference()
            ));
        }
    }
    if rewrite {
        let edits = remediate::edits_from(stored.iter().flat_map(|(g, place)| {
            g.iter().filter(|p| p.in_tree()).map(move |p| {
                (
                    p.finding.path.clone(),
                    p.start,
                    p.end,
                    p.value.clone(),
                    place.reference(),
                )
            })
        }));
        for (file, file_edits) in &edits {
            match remediate::apply_file(Path::new(file), file_edits) {
                Ok(()) => say(format!("rewrote {file} ({} edits)", file_edits.len())),
                Err(e) => {
                    failed = true;
                    say(format!("not rewritten {e}"));
                }
            }
        }
    }
    Ok(failed)
}

/// What [`store`] did.
enum Stored {
    /// A new entry was created.
    Created,
    /// The current version already held this very value: nothing written.
    Unchanged,
}

/// The current value at `place`: `Ok(None)` when there is no entry, an
/// error when there is one without a readable current value.
fn current_value(
    client: &crate::client::Client,
    place: &Placement,
) -> anyhow::Result<Option<Option<Zeroizing<String>>>> {
    let Some(existing) = client.read(&place.data_path())? else {
        return Ok(None);
    };
    Ok(Some(
        existing
            .pointer("/data/data")
            .and_then(|d| d.get(&place.key))
            .and_then(serde_json::Value::as_str)
            .map(|v| Zeroizing::new(v.to_owned())),
    ))
}

/// Writes one value (KV v2 data with `cas=0`, then KV metadata) unless the
/// current version holds it already. An existing entry holding anything
/// else is never overwritten.
fn store(
    client: &crate::client::Client,
    g: &[Planned],
    place: &Placement,
) -> anyhow::Result<Stored> {
    let first = &g[0];
    let dest = place.destination();
    let same = |v: &Zeroizing<String>| {
        coffer_crypto::hash::constant_time_eq(v.as_bytes(), first.value.as_bytes())
    };
    match current_value(client, place)? {
        Some(Some(v)) if same(&v) => return Ok(Stored::Unchanged),
        Some(_) => bail!(
            "{dest} already exists with another value (or a deleted current version); not overwritten"
        ),
        None => {}
    }
    let mut data = serde_json::Map::new();
    data.insert(place.key.clone(), json!(first.value.as_str()));
    let body = json!({ "data": data, "options": {"cas": 0} });
    if let Err(write_err) = client.write(&place.data_path(), &body) {
        // Written meanwhile (check-and-set refused): the same value is fine.
        return match current_value(client, place) {
            Ok(Some(Some(v))) if same(&v) => Ok(Stored::Unchanged),
            _ => Err(write_err.into()),
        };
    }
    let f = first.finding;
    let mut meta = json!({
        "secret_type": f.secret_type,
        "origin": "imported",
        "vendor": f.vendor.clone().unwrap_or_default(),
        "rule": f.rule_id,
        "found_in": found_in(g),
    });
    if first.url {
        meta["value_format"] = json!("url");
        meta["secret_part"] = json!("password");
    }
    client.write(&place.metadata_path(), &json!({ "custom_metadata": meta }))?;
    Ok(Stored::Created)
}

/// The places a value was found, at most 5 named (KV custom metadata values
/// are short).
fn found_in(g: &[Planned]) -> String {
    let mut s = g
        .iter()
        .take(5)
        .map(Planned::site)
        .collect::<Vec<_>>()
        .join(", ");
    if g.len() > 5 {
        s.push_str(&format!(" and {} more", g.len() - 5));
    }
    s.chars().take(500).collect()
}

/// Records an imported value in the lifecycle inventory (owner unknown,
/// type from the rule, vendor, origin `imported`), unless the secret has a
/// lifecycle record already (never overwritten).
fn record_lifecycle(
    client: &crate::client::Client,
    g: &[Planned],
    place: &Placement,
) -> anyhow::Result<()> {
    let path = format!("{}/lifecycle/{}", place.mount, place.path);
    if client.read(&path)?.is_some() {
        return Ok(());
    }
    let f = g[0].finding;
    let kind = if coffer_core::lifecycle::model::SECRET_TYPES.contains(&f.secret_type.as_str()) {
        f.secret_type.as_str()
    } else {
        "other"
    };
    let mut body = json!({
        "secret_type": kind,
        "origin": "imported",
        "description": format!("imported by coffer scan ({}) from {}", f.rule_id, found_in(g)),
    });
    if let Some(v) = &f.vendor {
        body["vendor"] = json!(v);
    }
    client.write(&path, &body)?;
    Ok(())
}
