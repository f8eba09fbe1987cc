//! The layering rules of ARCHITECTURE.md, checked on the source text:
//!
//! (a) no module below the router names `Core` (the core type): engines,
//!     auth methods, audit, policy and the like are handed what they need;
//! (b) coffer-core's top-level modules import one another without cycles
//!     (the graph is built from `crate::<module>` references).
//!
//! Code in `#[cfg(test)]` modules and comments does not count: a unit test
//! may build a whole `Core`. What still breaks a rule today is listed below
//! with a reason; an entry that no longer applies fails the test too, so the
//! lists only shrink. Cycles between crates need no test: Cargo refuses them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Modules of coffer-core below the router: they must not name `Core`.
const BELOW_ROUTER: &[&str] = &[
    "abuse",
    "canonical",
    "engines",
    "events",
    "identity",
    "lifecycle",
    "procedure",
    "routes",
];

/// Whole crates below the router (their Cargo.toml does not let them depend
/// on coffer-core either; this also keeps the name out of their text).
const BELOW_ROUTER_CRATES: &[&str] = &[
    "coffer-audit",
    "coffer-auth",
    "coffer-engine",
    "coffer-engines",
    "coffer-policy",
];

/// Files below the router that still name `Core`, each with its reason.
const CORE_ALLOWED: &[(&str, &str)] = &[];

/// Import edges that close a cycle today, each with its reason. With these
/// left out, the graph of top-level modules must be acyclic.
const EDGES_ALLOWED: &[(&str, &str, &str)] = &[
    (
        "backends",
        "core",
        "the kernel's own mounted backends (sys, token store, identity, lifecycle) are the core's API and hold it, as Vault's system backend does",
    ),
    (
        "coherence",
        "core",
        "the cache-coherence task runs against Core",
    ),
    (
        "cluster_events",
        "core",
        "the shared-event outbox and tidy run against Core's barrier and event bus",
    ),
    (
        "expiration",
        "core",
        "lease revocation calls the mount's engine through Core",
    ),
    (
        "leader",
        "core",
        "leader election starts and stops Core's background work",
    ),
    (
        "path_help",
        "core",
        "?help and OpenAPI read Core's mount table",
    ),
    (
        "quotas",
        "core",
        "the sys/quotas endpoints (part of the system backend) check quota paths against the core's router",
    ),
    ("sys", "core", "the system backend's handlers act on the core (mounted through backends.rs)"),
    ("sys_audit", "core", "part of the system backend"),
    ("sys_cors", "core", "part of the system backend"),
    ("sys_generate_root", "core", "part of the system backend"),
    ("sys_internal", "core", "part of the system backend"),
    ("sys_leases", "core", "part of the system backend"),
    ("sys_loggers", "core", "part of the system backend"),
    ("sys_metrics", "core", "part of the system backend"),
    ("sys_monitor", "core", "part of the system backend"),
    ("sys_password", "core", "part of the system backend"),
    ("sys_policy", "core", "part of the system backend"),
    ("sys_rekey", "core", "part of the system backend"),
    ("sys_remount", "core", "part of the system backend"),
    ("sys_snapshot", "core", "part of the system backend"),
    ("sys_ui", "core", "part of the system backend"),
    ("sys_version", "core", "part of the system backend"),
    (
        "token",
        "core",
        "token revocation revokes leases and cubbyholes through Core",
    ),
    ("token_api", "core", "the token store is not an engine yet"),
    (
        "wrapping",
        "core",
        "response wrapping mints tokens through Core",
    ),
    (
        "sys_cors",
        "sys",
        "uses sys's envelope helper, while sys dispatches to it",
    ),
    (
        "sys_ui",
        "sys",
        "uses sys's mount descriptions, while sys dispatches to it",
    ),
    (
        "shares",
        "sys",
        "uses sys's unseal key decoder, while sys's rekey and generate-root use shares",
    ),
    (
        "batch_token",
        "token",
        "batch tokens decode into the token store's TokenEntry, while the store issues them",
    ),
    (
        "lifecycle",
        "procedure",
        "compromise revocation records itself in the procedure's log",
    ),
];

/// Names re-exported at coffer-core's root, and the module each comes from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Core", "core"),
    ("CoreConfig", "core"),
    ("InitResult", "core"),
    ("decode_key", "sys"),
];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates directory")
        .to_path_buf()
}

/// A file that holds only a `#[cfg(test)] mod` (`tests.rs`, `*_tests.rs`).
fn is_test_file(p: &Path) -> bool {
    p.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("readable source directory")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") && !is_test_file(&p) {
            out.push(p);
        }
    }
}

/// The code of a Rust file with comments removed and string and character
/// literals emptied (so a `{` or a word inside them counts for nothing).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if let Some(body) = rest.strip_prefix("/*") {
            i += body.find("*/").map_or(rest.len(), |j| j + 4);
        } else if let Some(n) = raw_string_len(rest, i == 0 || !is_ident(b[i - 1])) {
            out.push_str("\"\"");
            i += n;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if b[i] == b'\'' {
            match char_literal_len(rest) {
                Some(n) => {
                    out.push_str("' '");
                    i += n;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().expect("a character");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) at the
/// start of `s`, if one starts there.
fn raw_string_len(s: &str, at_word_start: bool) -> Option<usize> {
    if !at_word_start {
        return None;
    }
    let body = s.strip_prefix("br").or_else(|| s.strip_prefix('r'))?;
    let hashes = body.bytes().take_while(|&c| c == b'#').count();
    if body.as_bytes().get(hashes) != Some(&b'"') {
        return None;
    }
    let close = format!("\"{}", "#".repeat(hashes));
    let open = s.len() - body.len() + hashes + 1;
    let end = s[open..]
        .find(&close)
        .map_or(s.len(), |j| open + j + close.len());
    Some(end)
}

/// The length of a character literal at the start of `s` (`'a'`, `'\n'`,
/// `'\u{1F600}'`), or `None` for a lifetime.
fn char_literal_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices().skip(1);
    let (_, c) = chars.next()?;
    if c == '\\' {
        // The escaped character is ASCII (`n`, `'`, `u`, ...).
        let end = s.get(3..)?.find('\'')?;
        return (end <= 10).then_some(end + 4);
    }
    let (j, q) = chars.next()?;
    (q == '\'').then_some(j + 1)
}

/// `code` without its `#[cfg(test)] mod … { … }` blocks.
fn drop_test_modules(mut code: String) -> String {
    while let Some(start) = code.find("#[cfg(test)]") {
        let after = &code[start + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        let Some(open_rel) = after.find(['{', ';']) else {
            break;
        };
        let open = start + "#[cfg(test)]".len() + open_rel;
        if !is_mod || code.as_bytes()[open] == b';' {
            // A test-only item that is not an inline module: drop the attribute
            // and the item's first line is not needed for the rules.
            code.replace_range(start..start + "#[cfg(test)]".len(), "");
            continue;
        }
        let mut depth = 0usize;
        let mut end = code.len();
        for (k, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        code.replace_range(start..end, "");
    }
    code
}

fn code_of(path: &Path) -> String {
    let src = fs::read_to_string(path).expect("readable source file");
    drop_test_modules(strip(&src))
}

/// Whether `code` uses `word` as a whole identifier.
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].bytes().next_back();
        let after = code[i + word.len()..].bytes().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The `crate::x` and `crate::{x, y::z}` first segments in `code`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        if code[..i].bytes().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1usize;
            let mut end = group.len();
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut level = 0usize;
            let mut item = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => level += 1,
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        let first = item.trim().split("::").next().unwrap_or("").trim();
                        if !first.is_empty() {
                            out.insert(first.to_string());
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if level == 0 {
                    item.push(c);
                }
            }
        } else {
            let name: String = rest
                .bytes()
                .take_while(|&c| is_ident(c))
                .map(char::from)
                .collect();
            out.insert(name);
        }
    }
    out
}

/// coffer-core's top-level modules, each with its files.
fn core_modules() -> BTreeMap<String, Vec<PathBuf>> {
    let src = crates_dir().join("coffer-core/src");
    let mut mods = BTreeMap::new();
    for entry in fs::read_dir(&src).expect("coffer-core/src") {
        let p = entry.expect("directory entry").path();
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name")
            .to_string();
        let mut files = Vec::new();
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else if p.extension().is_some_and(|x| x == "rs") && name != "lib" && !is_test_file(&p) {
            files.push(p.clone());
        } else {
            continue;
        }
        mods.entry(name).or_insert_with(Vec::new).extend(files);
    }
    mods
}

fn rel(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .expect("path under base")
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn no_module_below_the_router_names_core() {
    let src = crates_dir().join("coffer-core/src");
    let mut offenders = BTreeSet::new();
    let mods = core_modules();
    for m in BELOW_ROUTER {
        let files = mods.get(*m).unwrap_or_else(|| panic!("no module {m}"));
        for f in files {
            if names(&code_of(f), "Core") {
                offenders.insert(rel(f, &src));
            }
        }
    }
    for krate in BELOW_ROUTER_CRATES {
        let dir = crates_dir().join(krate);
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for f in files {
            let code = code_of(&f);
            if names(&code, "Core") || code.contains("coffer_core") {
                offenders.insert(format!("{krate}/{}", rel(&f, &dir)));
            }
        }
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        assert!(
            !manifest.contains("coffer-core"),
            "{krate} must not depend on coffer-core"
        );
    }
    let allowed: BTreeSet<String> = CORE_ALLOWED.iter().map(|(f, _)| f.to_string()).collect();
    let new: Vec<_> = offenders.difference(&allowed).collect();
    let gone: Vec<_> = allowed.difference(&offenders).collect();
    assert!(
        new.is_empty(),
        "modules below the router name `Core`: {new:?}; hand them what they need instead"
    );
    assert!(
        gone.is_empty(),
        "these no longer name `Core`: take them off CORE_ALLOWED: {gone:?}"
    );
}

#[test]
fn core_modules_import_each_other_without_cycles() {
    let mods = core_modules();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, files) in &mods {
        let targets = edges.entry(m.clone()).or_default();
        for f in files {
            for r in crate_refs(&code_of(f)) {
                let to = ROOT_REEXPORTS
                    .iter()
                    .find(|(name, _)| *name == r)
                    .map_or(r.as_str(), |(_, module)| *module);
                if to != m && mods.contains_key(to) {
                    targets.insert(to.to_string());
                }
            }
        }
    }
    for (from, to, _) in EDGES_ALLOWED {
        let present = edges.get(*from).is_some_and(|t| t.contains(*to));
        assert!(
            present,
            "{from} no longer imports {to}: take the edge off EDGES_ALLOWED"
        );
        if let Some(t) = edges.get_mut(*from) {
            t.remove(*to);
        }
    }
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        v: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(v.to_string(), 1);
        stack.push(v.to_string());
        for w in edges.get(v).into_iter().flatten() {
            match state.get(w.as_str()).copied().unwrap_or(0) {
                0 => {
                    if let Some(c) = visit(w, edges, state, stack) {
                        return Some(c);
                    }
                }
                1 => {
                    let at = stack.iter().position(|x| x == w).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(w.clone());
                    return Some(cycle);
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(v.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for v in edges.keys() {
        if state.get(v.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(v, &edges, &mut state, &mut stack) {
                panic!(
                    "import cycle among coffer-core's modules: {}",
                    cycle.join(" -> ")
                );
            }
        }
    }
}

#[test]
fn the_checks_see_what_they_look_for() {
    // The lexer and the reference parser must not be blind, or the rules
    // above would pass vacuously.
    let code = strip(
        "// Core in a comment\nlet s = \"Core\"; let r = r#\"Core {\"#; let c = '{';\n\
         fn f<'a>(x: &'a Core) {}\nuse crate::{a, b::c, d::{e, f}};\nuse crate::g::h;\n\
         #[cfg(test)]\nmod tests { use crate::core::Core; }\n",
    );
    let code = drop_test_modules(code);
    assert!(names(&code, "Core"));
    assert_eq!(code.matches("Core").count(), 1, "{code}");
    let refs: Vec<_> = crate_refs(&code).into_iter().collect();
    assert_eq!(refs, ["a", "b", "d", "g"]);
    assert!(!names("CoreConfig", "Core"));
}
