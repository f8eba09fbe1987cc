//! Remediation: where each finding goes in the store, and the edits that
//! replace the literal with a `coffer://<mount>/<path>#<key>` reference.
//!
//! This module only plans and applies file edits; writing to the store is
//! the caller's job, and the caller applies an edit only after the store
//! write succeeded.
//!
//! Destinations are computed once ([`place`]) and validated: every segment
//! is non-empty, not `.` or `..`, and free of `?`, `#`, `%`, `\` and
//! control characters, so the path printed is the path written. The name
//! chosen for a finding comes from its rule id in the destination alphabet
//! (`[a-z0-9-]`, see [`rule_slug`]) and its fingerprint.
//!
//! [`apply_file`] rewrites a file only when it is a regular file (never
//! through a symbolic link), writing a temporary file created exclusively
//! under an unpredictable name in the same directory, then renaming it over
//! the original.

use crate::finding::Finding;
use crate::Error;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// The key holding the value in each KV entry.
pub const VALUE_KEY: &str = "value";

/// Where one finding goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Mount, e.g. `secret`.
    pub mount: String,
    /// Path inside the mount, e.g. `app/aws-access-key-id-1a2b3c4d`.
    pub path: String,
    /// Key inside the entry.
    pub key: String,
}

impl Placement {
    /// The destination as shown to people: `<mount>/<path>`.
    pub fn destination(&self) -> String {
        format!("{}/{}", self.mount, self.path)
    }

    /// The KV v2 API path of the value: `<mount>/data/<path>`.
    pub fn data_path(&self) -> String {
        format!("{}/data/{}", self.mount, self.path)
    }

    /// The KV v2 API path of the metadata: `<mount>/metadata/<path>`.
    pub fn metadata_path(&self) -> String {
        format!("{}/metadata/{}", self.mount, self.path)
    }

    /// The reference that replaces the literal.
    pub fn reference(&self) -> String {
        format!("coffer://{}#{}", self.destination(), self.key)
    }
}

/// Checks a store path (mount or path inside it): `/`-separated segments,
/// none empty, `.` or `..`, none holding `?`, `#`, `%`, `\`, whitespace
/// other than a plain space, or control characters.
pub fn check_store_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    for seg in path.split('/') {
        if seg.is_empty() {
            return Err("empty path segment (`//` or a leading or trailing `/`)".into());
        }
        if seg == "." || seg == ".." {
            return Err("`.` and `..` segments are not allowed".into());
        }
        if let Some(c) = seg.chars().find(|c| {
            matches!(c, '?' | '#' | '%' | '\\')
                || c.is_control()
                || (c.is_whitespace() && *c != ' ')
        }) {
            return Err(format!("character {c:?} is not allowed"));
        }
    }
    Ok(())
}

/// Splits `secret/<prefix>` into mount and prefix, both checked with
/// [`check_store_path`] (one leading and trailing `/` are dropped).
pub fn parse_target(target: &str) -> Result<(String, String), String> {
    let t = target.strip_prefix('/').unwrap_or(target);
    let t = t.strip_suffix('/').unwrap_or(t);
    let (mount, prefix) = t.split_once('/').unwrap_or((t, ""));
    if mount.is_empty() {
        return Err("import target must look like <mount>/<prefix>, e.g. secret/myapp".into());
    }
    check_store_path(mount).map_err(|m| format!("import target {target:?}: {m}"))?;
    if !prefix.is_empty() {
        check_store_path(prefix).map_err(|m| format!("import target {target:?}: {m}"))?;
    }
    Ok((mount.to_string(), prefix.to_string()))
}

/// A rule id in the destination alphabet `[a-z0-9-]`: ASCII letters
/// lowered, `_` becomes `-` (gitleaks configurations often use both).
/// Rule ids are checked when the configuration loads
/// ([`crate::config::check_rule_id`]), so nothing else reaches here; any
/// other character would become `-` as well.
pub fn rule_slug(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect()
}

/// The placement of a finding under `mount/prefix`: one entry per distinct
/// (rule, path, secret), named after the rule ([`rule_slug`]) and its
/// fingerprint. The result is checked with [`check_store_path`].
pub fn place(f: &Finding, mount: &str, prefix: &str) -> Result<Placement, String> {
    let fp = f.fingerprint();
    let mut slug = rule_slug(&f.rule_id);
    if slug.is_empty() {
        slug.push_str("secret");
    }
    let name = format!("{slug}-{}", &fp[..8.min(fp.len())]);
    let path = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    check_store_path(mount)?;
    check_store_path(&path)?;
    Ok(Placement {
        mount: mount.to_string(),
        path,
        key: VALUE_KEY.to_string(),
    })
}

/// When the literal at `[start, end)` of `content` is the password of a URL
/// (`scheme://user:<literal>@host...`), the byte range of the whole URL:
/// replacing only the password would leave `scheme://user:coffer://...@host`,
/// which is no URL. `--import` stores the whole URL instead and replaces it
/// with one reference. The URL ends at whitespace, a quote, a backtick, `<`,
/// `>` or the end of the content.
pub fn url_span(content: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if start == 0 || end >= content.len() || start >= end {
        return None;
    }
    if content[start - 1] != b':' || content[end] != b'@' {
        return None;
    }
    let stop = |b: u8| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b'<' | b'>');
    // Back over the user name to `://`, then over the scheme.
    let mut i = start - 1;
    while i > 0 && !matches!(content[i - 1], b'/' | b'@' | b':') && !stop(content[i - 1]) {
        i -= 1;
    }
    if i < 3 || &content[i - 3..i] != b"://" {
        return None;
    }
    let scheme_end = i - 3;
    let mut s = scheme_end;
    while s > 0
        && (content[s - 1].is_ascii_alphanumeric() || matches!(content[s - 1], b'+' | b'.' | b'-'))
    {
        s -= 1;
    }
    if s == scheme_end || !content[s].is_ascii_alphabetic() {
        return None;
    }
    let mut e = end;
    while e < content.len() && !stop(content[e]) {
        e += 1;
    }
    std::str::from_utf8(&content[s..e]).ok()?;
    Some((s, e))
}

/// One replacement in one file./// One replacement in one file.
#[derive(Clone)]
pub struct Edit {
    /// Byte range of the literal.
    pub start: usize,
    /// End of the byte range.
    pub end: usize,
    /// The literal expected there (checked before writing).
    pub expected: Zeroizing<String>,
    /// What replaces it.
    pub replacement: String,
}

/// Prints everything but the literal being replaced.
impl std::fmt::Debug for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edit")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("expected", &format_args!("<redacted>"))
            .field("replacement", &self.replacement)
            .finish()
    }
}

/// The edits of planned replacements: (file, start, end, literal there,
/// reference), grouped by file.
pub fn edits_from(
    planned: impl IntoIterator<Item = (String, usize, usize, Zeroizing<String>, String)>,
) -> BTreeMap<String, Vec<Edit>> {
    let mut out: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    for (file, start, end, expected, replacement) in planned {
        out.entry(file).or_default().push(Edit {
            start,
            end,
            expected,
            replacement,
        });
    }
    out
}

/// Applies edits to `content`: each range must still hold its literal.
/// Returns the new content.
pub fn apply_to(content: &[u8], edits: &[Edit]) -> Result<Vec<u8>, String> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.start);
    let mut out = Vec::with_capacity(content.len());
    let mut pos = 0;
    for e in sorted {
        if e.start < pos || e.end > content.len() || e.start > e.end {
            return Err("edits overlap or fall outside the file".into());
        }
        if &content[e.start..e.end] != e.expected.as_bytes() {
            return Err("the file changed since it was scanned".into());
        }
        out.extend_from_slice(&content[pos..e.start]);
        out.extend_from_slice(e.replacement.as_bytes());
        pos = e.end;
    }
    out.extend_from_slice(&content[pos..]);
    Ok(out)
}

/// Applies edits to a file in place.
///
/// The file must be a regular file: a symbolic link (even to a file inside
/// the tree), a directory, a FIFO, a socket or a device is refused with a
/// message saying what it is. The content is read through a descriptor
/// opened without following links and checked to be the file examined; the
/// new content goes to a temporary file created exclusively (`O_EXCL`)
/// under an unpredictable name in the same directory, gets the original's
/// permission bits through its descriptor, and is renamed over the original
/// only if the original is still that regular file.
pub fn apply_file(path: &Path, edits: &[Edit]) -> Result<(), Error> {
    let shown = path.display().to_string();
    let refuse = |m: String| {
        Error::io(
            shown.clone(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
        )
    };
    let before = std::fs::symlink_metadata(path).map_err(|e| Error::io(shown.clone(), e))?;
    check_regular(&before).map_err(&refuse)?;
    let mut file = open_no_follow(path).map_err(|e| Error::io(shown.clone(), e))?;
    let opened = file.metadata().map_err(|e| Error::io(shown.clone(), e))?;
    if !opened.is_file() || !same_file(&before, &opened) {
        return Err(refuse("the file was replaced while being rewritten".into()));
    }
    let mut content = Vec::new();
    file.read_to_end(&mut content)
        .map_err(|e| Error::io(shown.clone(), e))?;
    drop(file);
    let new = Zeroizing::new(apply_to(&content, edits).map_err(&refuse)?);
    // Drop the old content (it holds the literals) as soon as it is used.
    drop(Zeroizing::new(content));

    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffer-rewrite-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("{shown}: creating a temporary file"), e))?;
    let tmp_err = |e: std::io::Error| Error::io(format!("{shown}: writing a temporary file"), e);
    tmp.write_all(&new).map_err(tmp_err)?;
    tmp.as_file()
        .set_permissions(permission_bits(&opened))
        .map_err(tmp_err)?;
    tmp.as_file().sync_all().map_err(tmp_err)?;
    let now = std::fs::symlink_metadata(path).map_err(|e| Error::io(shown.clone(), e))?;
    check_regular(&now).map_err(&refuse)?;
    if !same_file(&before, &now) {
        return Err(refuse("the file was replaced while being rewritten".into()));
    }
    tmp.persist(path)
        .map_err(|e| Error::io(shown.clone(), e.error))?;
    Ok(())
}

/// `Ok` for a regular file; otherwise what the file is instead.
fn check_regular(meta: &std::fs::Metadata) -> Result<(), String> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    let what = if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        special_kind(&t)
    };
    Err(format!("{what}, not a regular file"))
}

#[cfg(unix)]
fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Opens for reading without following a final symbolic link and without
/// blocking on a FIFO swapped in meanwhile.
#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Whether two metadata describe the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

/// The original's read/write/execute bits (set-id and sticky bits are not
/// carried over).
#[cfg(unix)]
fn permission_bits(meta: &std::fs::Metadata) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(meta.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn permission_bits(meta: &std::fs::Metadata) -> std::fs::Permissions {
    meta.permissions()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(start: usize, end: usize, expected: &str, rep: &str) -> Edit {
        Edit {
            start,
            end,
            expected: Zeroizing::new(expected.to_string()),
            replacement: rep.to_string(),
        }
    }

    #[test]
    fn a_url_password_widens_to_the_whole_url() {
        // Generated at run time: the repository holds no password.
        let mut rng = crate::template::Rng::new(4);
        let pw = crate::template::expand("<<alnum:12>>", &mut rng, 1.0);
        let url = format!("postgres://billing:{pw}@db.internal:5432/app?ssl=1");
        let c = format!("DATABASE_URL={url} # x\n");
        let (s, e) = (c.find(&pw).unwrap(), c.find("@db").unwrap());
        let (us, ue) = url_span(c.as_bytes(), s, e).unwrap();
        assert_eq!(&c[us..ue], url);
        let url = format!("mongodb+srv://u:{pw}@h/x");
        let q = format!("url = \"{url}\"");
        let (s, e) = (q.find(&pw).unwrap(), q.find("@h").unwrap());
        let (us, ue) = url_span(q.as_bytes(), s, e).unwrap();
        assert_eq!(&q[us..ue], url);
        // Not a URL password: no widening.
        let p = format!("password: {pw}@x");
        assert_eq!(url_span(p.as_bytes(), 10, 10 + pw.len()), None);
        assert_eq!(url_span(pw.as_bytes(), 0, pw.len()), None);
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("secret/app").unwrap(),
            ("secret".into(), "app".into())
        );
        assert_eq!(parse_target("kv/").unwrap(), ("kv".into(), "".into()));
        assert_eq!(
            parse_target("/kv/a/b/").unwrap(),
            ("kv".into(), "a/b".into())
        );
        assert!(parse_target("/").is_err());
    }

    #[test]
    fn applies_in_order_and_checks_content() {
        let c = b"a = XYZ; b = QRS;";
        let out = apply_to(c, &[edit(13, 16, "QRS", "ref2"), edit(4, 7, "XYZ", "ref1")]).unwrap();
        assert_eq!(out, b"a = ref1; b = ref2;");
        assert!(apply_to(c, &[edit(4, 7, "NOPE", "r")]).is_err());
        assert!(apply_to(c, &[edit(4, 7, "XYZ", "r"), edit(5, 8, "YZ;", "r")]).is_err());
    }

    fn finding(rule: &str) -> Finding {
        Finding {
            rule_id: rule.into(),
            description: String::new(),
            path: "a.py".into(),
            line: 1,
            column: 1,
            end_line: 1,
            end_column: 2,
            start: 0,
            end: 1,
            secret: Zeroizing::new("x".into()),
            entropy: 0.0,
            secret_type: "other".into(),
            vendor: None,
            commit: None,
            decoded: None,
            also: Vec::new(),
            checksum: None,
            validation: None,
            path_class: None,
        }
    }

    #[test]
    fn destinations_are_checked_and_named_in_one_alphabet() {
        assert_eq!(rule_slug("AWS_Access-Key9"), "aws-access-key9");
        let p = place(&finding("Corp_Key"), "secret", "leaked").unwrap();
        assert!(p.path.starts_with("leaked/corp-key-"), "{p:?}");
        assert_eq!(p.destination(), format!("secret/{}", p.path));
        assert_eq!(p.data_path(), format!("secret/data/{}", p.path));
        assert_eq!(p.reference(), format!("coffer://secret/{}#value", p.path));
        // Whatever reaches `place`, the destination stays one segment.
        let p = place(&finding("prod/payments/stripe?"), "secret", "leaked").unwrap();
        assert!(p.path.starts_with("leaked/prod-payments-stripe--"), "{p:?}");
        for bad in [
            "a/../b", "a?b", "a#b", "a%2fb", "a//b", "a\nb", "a\\b", "./a", "a\tb",
        ] {
            assert!(check_store_path(bad).is_err(), "{bad:?}");
            assert!(parse_target(&format!("secret/{bad}")).is_err(), "{bad:?}");
        }
        assert!(check_store_path("team a/app-1/x_y.z").is_ok());
        assert!(parse_target("a?b/x").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn rewrites_regular_files_only_and_keeps_the_mode() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "a = XYZ;").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o640)).unwrap();
        let f = dir.path().join("f.env");
        std::fs::write(&f, "a = XYZ;").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
        // The names the old implementation used for its temporary file.
        symlink(&victim, dir.path().join("f.coffer-rewrite.tmp")).unwrap();
        symlink(&victim, dir.path().join("f.env.coffer-rewrite.tmp")).unwrap();
        apply_file(&f, &[edit(4, 7, "XYZ", "ref")]).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "a = ref;");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&f), 0o751);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "a = XYZ;");
        assert_eq!(mode(&victim), 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);

        // A link to the victim is refused, and says so.
        let link = dir.path().join("link.env");
        symlink(&victim, &link).unwrap();
        let e = apply_file(&link, &[edit(4, 7, "XYZ", "ref")]).unwrap_err();
        assert!(e.to_string().contains("a symbolic link"), "{e}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "a = XYZ;");
        // So is a FIFO (without blocking) and a directory.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = apply_file(&fifo, &[edit(0, 1, "a", "b")]).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = apply_file(dir.path(), &[edit(0, 1, "a", "b")]).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
    }
}
