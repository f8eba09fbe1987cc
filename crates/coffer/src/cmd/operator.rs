//! `coffer operator`: init, unseal, seal, key-status, rotate and snapshot
//! save/restore, as `vault operator` does them over `sys/*`; rekey and
//! generate-root live in [`super::quorum`].

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{Client, ConnectArgs};
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer operator`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Initialise the server: generate the root key, split it into unseal keys.
    Init(InitArgs),
    /// Provide one unseal key share (prompted without echo when omitted).
    Unseal(UnsealArgs),
    /// Seal the server (needs a root or sudo token).
    Seal,
    /// Show the current encryption key term and install time.
    KeyStatus,
    /// Rotate the encryption key used for new writes (needs sudo).
    Rotate,
    /// Replace the unseal key shares (a quorum of the current ones is needed).
    Rekey(super::quorum::RekeyArgs),
    /// Create a new root token from a quorum of unseal key shares (OTP flow).
    GenerateRoot(super::quorum::GenerateRootArgs),
    /// Copy all stored entries between storage backends, offline (like
    /// `vault operator migrate`; -config FILE with [storage_source.TYPE]
    /// and [storage_destination.TYPE]).
    Migrate(super::migrate::MigrateArgs),
    /// Save a snapshot of the whole store to a file, or restore one (like
    /// `vault operator raft snapshot`, on any storage backend; needs sudo).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(clap::Subcommand)]
enum SnapshotCommand {
    /// Stream a snapshot of the whole store (ciphertext only) into FILE.
    Save {
        /// Where to write it (created with mode 0600; replaced only once the
        /// snapshot arrived whole).
        file: std::path::PathBuf,
    },
    /// Replace the whole store with the snapshot in FILE. The server seals
    /// afterwards: unseal it with the snapshot's unseal keys.
    Restore {
        /// Restore a snapshot taken from another store (whose unseal keys
        /// then open this one).
        #[arg(long)]
        force: bool,
        /// The snapshot file.
        file: std::path::PathBuf,
    },
}

#[derive(clap::Args)]
struct InitArgs {
    /// Number of unseal key shares to create.
    #[arg(long, default_value_t = 5, value_name = "N")]
    key_shares: u32,
    /// Number of shares needed to unseal.
    #[arg(long, default_value_t = 3, value_name = "N")]
    key_threshold: u32,
    /// Only report whether the server is initialised (exit 0 yes, 2 no).
    #[arg(long)]
    status: bool,
}

#[derive(clap::Args)]
struct UnsealArgs {
    /// The unseal key share; read without echo (or from stdin) when omitted.
    key: Option<String>,
    /// Discard the shares provided so far.
    #[arg(long, conflicts_with = "key")]
    reset: bool,
}

/// Runs an operator subcommand, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.connect.client()?;
    let format = args.output.format;
    match args.command {
        Command::Init(a) => init(&client, &a, format),
        Command::Unseal(a) => unseal(&client, a, format),
        Command::Seal => {
            client
                .request(Method::PUT, "sys/seal", None)?
                .error_for_status()
                .context("sealing")?;
            println!("Success! Coffer is sealed.");
            Ok(0)
        }
        Command::KeyStatus => {
            let status = key_status(&client)?;
            print!("{}", render_key_status(&status, format));
            Ok(0)
        }
        Command::Rekey(a) => super::quorum::rekey(&client, a, format),
        Command::GenerateRoot(a) => super::quorum::generate_root(&client, a, format),
        // Offline: talks to the storage, not to a server.
        Command::Migrate(a) => super::migrate::run(a),
        Command::Snapshot(SnapshotCommand::Save { file }) => snapshot_save(&client, &file),
        Command::Snapshot(SnapshotCommand::Restore { force, file }) => {
            snapshot_restore(&client, &file, force, format)
        }
        Command::Rotate => {
            client
                .request(Method::PUT, "sys/rotate", None)?
                .error_for_status()
                .context("rotating the key")?;
            let status = key_status(&client)?;
            if format == Format::Table {
                println!("Success! Rotated key\n");
            }
            print!("{}", render_key_status(&status, format));
            Ok(0)
        }
    }
}

/// `operator init`: POST sys/init, print the shares and the root token.
fn init(client: &Client, a: &InitArgs, format: Format) -> anyhow::Result<i32> {
    if a.status {
        let resp = client
            .request(Method::GET, "sys/init", None)?
            .error_for_status()
            .context("checking the init status")?;
        let initialized = resp
            .body
            .as_ref()
            .and_then(|b| b.get("initialized"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if initialized {
            println!("Coffer is initialized");
            return Ok(0);
        }
        println!("Coffer is not initialized");
        return Ok(2);
    }
    let body = json!({"secret_shares": a.key_shares, "secret_threshold": a.key_threshold});
    let resp = client
        .request(Method::PUT, "sys/init", Some(&body))?
        .error_for_status()
        .context("initializing")?;
    let answer = resp.body.unwrap_or(Value::Null);
    let strings = |k: &str| -> Vec<String> {
        answer
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let b64 = strings("keys_base64");
    let hex = strings("keys");
    let root = answer
        .get("root_token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if format == Format::Json {
        // The shape `vault operator init -format=json` prints.
        let out = json!({
            "unseal_keys_b64": b64,
            "unseal_keys_hex": hex,
            "unseal_shares": a.key_shares,
            "unseal_threshold": a.key_threshold,
            "recovery_keys_b64": [],
            "recovery_keys_hex": [],
            "recovery_keys_shares": 0,
            "recovery_keys_threshold": 0,
            "root_token": root,
        });
        print!("{}", output::json(&out));
        return Ok(0);
    }
    let shown = if b64.is_empty() { &hex } else { &b64 };
    for (i, key) in shown.iter().enumerate() {
        println!("Unseal Key {}: {key}", i + 1);
    }
    println!("\nInitial Root Token: {root}\n");
    println!(
        "Coffer initialized with {} key shares and a key threshold of {}. Please\n\
         securely distribute the key shares printed above. When Coffer is re-sealed,\n\
         restarted, or stopped, you must supply at least {} of these keys to unseal it\n\
         before it can start servicing requests.\n\n\
         Coffer does not store the generated root key. Without at least {} keys to\n\
         reconstruct the root key, Coffer will remain permanently sealed!",
        a.key_shares, a.key_threshold, a.key_threshold, a.key_threshold
    );
    Ok(0)
}

/// `operator unseal`: POST sys/unseal with one share (or `reset`).
fn unseal(client: &Client, a: UnsealArgs, format: Format) -> anyhow::Result<i32> {
    let body = if a.reset {
        json!({"reset": true})
    } else {
        let key = match a.key {
            Some(k) => zeroize::Zeroizing::new(k),
            None => crate::prompt::secret("Unseal Key (will be hidden): ")
                .context("reading the unseal key")?,
        };
        if key.is_empty() {
            eprintln!("No unseal key provided");
            return Ok(1);
        }
        json!({"key": key.as_str()})
    };
    let resp = client
        .request(Method::PUT, "sys/unseal", Some(&body))?
        .error_for_status()
        .context("unsealing")?;
    let status = resp.body.unwrap_or(Value::Null);
    print!("{}", super::status::render_seal_status(&status, format));
    Ok(0)
}

/// `operator snapshot save`: streams `sys/storage/raft/snapshot` into a
/// partial file next to `file` (mode 0600, created anew), checks the whole
/// archive (members, count, checksums), and only then renames it to `file`.
fn snapshot_save(client: &Client, file: &std::path::Path) -> anyhow::Result<i32> {
    use std::io::{Seek as _, Write as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut partial = file.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = std::path::PathBuf::from(partial);
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let kept = (|| {
        let bytes = client
            .download("sys/storage/raft/snapshot", &mut out)
            .context("taking the snapshot")?;
        out.flush()?;
        out.rewind()?;
        let meta = coffer_core::snapshot::inspect(std::io::BufReader::new(&mut out))
            .map_err(|e| anyhow::anyhow!("the snapshot arrived damaged or incomplete: {e}"))?;
        out.sync_all()?;
        std::fs::rename(&partial, file).with_context(|| format!("writing {}", file.display()))?;
        Ok::<_, anyhow::Error>((bytes, meta))
    })();
    let (bytes, meta) = match kept {
        Ok(k) => k,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    println!(
        "Success! Saved a snapshot of {} entries ({bytes} bytes, taken at {}) to {}.",
        meta.keys,
        meta.created_at,
        file.display()
    );
    Ok(0)
}

/// `operator snapshot restore [-force]`: streams FILE to
/// `sys/storage/raft/snapshot[-force]`.
fn snapshot_restore(
    client: &Client,
    file: &std::path::Path,
    force: bool,
    format: Format,
) -> anyhow::Result<i32> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let path = if force {
        "sys/storage/raft/snapshot-force"
    } else {
        "sys/storage/raft/snapshot"
    };
    let resp = client
        .upload(path, f)?
        .error_for_status()
        .context("restoring the snapshot")?;
    let data = resp.data().cloned().unwrap_or(Value::Null);
    if format == Format::Json {
        print!("{}", output::json(&data));
        return Ok(0);
    }
    let keys = data.get("keys").and_then(Value::as_u64).unwrap_or(0);
    let taken = data
        .get("created_at")
        .and_then(Value::as_str)
        .unwrap_or("an unknown time");
    println!(
        "Success! Restored {keys} entries from the snapshot taken at {taken}.\n\n\
         The server is sealed: unseal it with the unseal keys of the store the\n\
         snapshot was taken from (`coffer operator unseal`). Every other node on\n\
         the same storage seals too."
    );
    Ok(0)
}

/// GET sys/key-status; accepts the fields at the top level or under `data`.
fn key_status(client: &Client) -> anyhow::Result<Value> {
    let resp = client
        .request(Method::GET, "sys/key-status", None)?
        .error_for_status()
        .context("reading the key status")?;
    resp.body.context("empty answer from sys/key-status")
}

/// The key status as `vault operator key-status` prints it.
fn render_key_status(body: &Value, format: Format) -> String {
    if format == Format::Json {
        return output::json(body);
    }
    let fields = body
        .get("term")
        .map(|_| body)
        .or_else(|| body.get("data"))
        .unwrap_or(body);
    let mut rows = Vec::new();
    for (key, label) in [
        ("term", "Key Term"),
        ("install_time", "Install Time"),
        ("encryptions", "Encryption Count"),
    ] {
        if let Some(v) = fields.get(key).filter(|v| !v.is_null()) {
            rows.push((label.to_owned(), output::value_text(v)));
        }
    }
    output::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_status_reads_top_level_or_data() {
        let top = json!({"term": 2, "install_time": "2026-01-01T00:00:00Z"});
        let nested = json!({"data": {"term": 2, "install_time": "2026-01-01T00:00:00Z"}});
        let want = "Key             Value\n---             -----\nKey Term        2\nInstall Time    2026-01-01T00:00:00Z\n";
        assert_eq!(render_key_status(&top, Format::Table), want);
        assert_eq!(render_key_status(&nested, Format::Table), want);
    }
}
