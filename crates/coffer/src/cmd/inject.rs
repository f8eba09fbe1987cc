//! `coffer inject -i TEMPLATE -o FILE`: replaces every `coffer://`
//! reference in a file with the value it names and writes the result with
//! mode 0600, through a temporary file in the same directory renamed over
//! FILE (so readers never see half a file, and a symlink at FILE is
//! replaced, not followed).
//!
//! A reference runs from `coffer://` to the first whitespace, quote,
//! backtick or one of `<>(){}[],;|\`; values are inserted as they are.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use coffer_client::{Reference, Resolver};
use zeroize::Zeroizing;

use super::generic::usage;
use crate::client::ConnectArgs;

/// Arguments of `coffer inject`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer inject -i config.yml.tpl -o config.yml\n\n\
    config.yml.tpl may say: password: \"coffer://secret/app/db#password\"")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The template: a file holding coffer:// references.
    #[arg(short = 'i', long = "in-file", value_name = "TEMPLATE")]
    input: PathBuf,
    /// The file to write (mode 0600, replaced atomically).
    #[arg(short = 'o', long = "out-file", value_name = "FILE")]
    output: PathBuf,
}

/// Whether `c` ends a reference written in running text.
fn ends_reference(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\''
                | '`'
                | '<'
                | '>'
                | '('
                | ')'
                | '{'
                | '}'
                | '['
                | ']'
                | ','
                | ';'
                | '|'
                | '\\'
        )
}

/// The byte ranges of the references in `text`.
pub fn find_references(text: &str) -> Vec<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(coffer_client::reference::SCHEME) {
        let start = from + i;
        let end = text[start..]
            .char_indices()
            .find(|(_, c)| ends_reference(*c))
            .map(|(j, _)| start + j)
            .unwrap_or(text.len());
        out.push((start, end));
        from = end.max(start + 1);
    }
    out
}

/// The template with every reference replaced by its value.
pub fn render(resolver: &Resolver<'_>, text: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut pos = 0;
    for (start, end) in find_references(text) {
        out.push_str(&text[pos..start]);
        let line = text[..start].matches('\n').count() + 1;
        let r = Reference::parse(&text[start..end]).with_context(|| format!("line {line}"))?;
        let value = resolver
            .resolve(&r)
            .with_context(|| format!("line {line}"))?;
        out.push_str(&value);
        pos = end;
    }
    out.push_str(&text[pos..]);
    Ok(out)
}

/// Writes `data` to `path` with mode 0600 through a temporary file in the
/// same directory, synced, then renamed over `path`.
pub fn write_private_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.coffer-{}-{:08x}.tmp",
        std::process::id(),
        rand_suffix()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A few bits from the clock to keep temporary names apart.
fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Renders the template, returning the exit code.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let text = match std::fs::read_to_string(&a.input) {
        Ok(t) => Zeroizing::new(t),
        Err(e) => return usage(format!("cannot read {}: {e}", a.input.display())),
    };
    let client = a.connect.client()?;
    let resolver = Resolver::new(&client);
    let rendered = render(&resolver, &text).with_context(|| a.input.display().to_string())?;
    write_private_atomically(&a.output, rendered.as_bytes())
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let n = find_references(&text).len();
    eprintln!(
        "Success! Wrote {} ({n} reference{} resolved)",
        a.output.display(),
        if n == 1 { "" } else { "s" }
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_end_where_running_text_resumes() {
        let t =
            "a: \"coffer://secret/app#k\"\nurl=coffer://secret/x#p?version=2 tail\nCOFFER://kv/y#z";
        let found: Vec<&str> = find_references(t).iter().map(|(s, e)| &t[*s..*e]).collect();
        assert_eq!(
            found,
            [
                "coffer://secret/app#k",
                "coffer://secret/x#p?version=2",
                "COFFER://kv/y#z"
            ]
        );
        assert!(find_references("no refs here").is_empty());
    }

    #[test]
    fn the_output_is_private_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("config.yml");
        std::fs::write(&out, "old").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private_atomically(&out, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }
}
