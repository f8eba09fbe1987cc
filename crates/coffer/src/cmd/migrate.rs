//! `coffer operator migrate -config migrate.toml`: copies every stored
//! entry from one storage backend to another, offline, as `vault operator
//! migrate` does.
//!
//! The configuration holds two storage stanzas:
//!
//! ```toml
//! [storage_source.sqlite]
//! path = "coffer.db"
//!
//! [storage_destination.postgresql]
//! connection_url = "postgres://coffer@db.internal/coffer?sslmode=verify-full"
//! tls_ca_file = "db-ca.pem"
//! ```
//!
//! Entries are copied as stored: ciphertexts, the sealed keyring and the
//! seal configuration, so nothing is decrypted and the destination opens
//! with the same unseal keys. Both ends must be offline: a SQLite file is
//! locked, and a PostgreSQL table is taken with its exclusive lock and
//! refused while a node holds a live leader lease on it. A destination that
//! holds anything is refused unless `-allow-non-empty` is given. After the
//! copy, every key is read back from the destination and the count and a
//! SHA-256 chain over every (key, value) in key order must match the
//! source's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use coffer_storage::{Backend, Op, PostgresBackend};
use serde::Deserialize;

use super::server::{open_sqlite, StorageSection};

/// Arguments of `coffer operator migrate`.
#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The migration configuration (TOML with [storage_source.TYPE] and
    /// [storage_destination.TYPE]).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Copy into a destination that already holds entries (they are
    /// overwritten where keys collide, kept otherwise).
    #[arg(long)]
    allow_non_empty: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrateFile {
    storage_source: StorageSection,
    storage_destination: StorageSection,
}

/// Keys copied per destination batch.
const BATCH: usize = 256;

/// Runs the migration; prints what was copied.
pub fn run(args: MigrateArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(migrate(&args))
}

async fn migrate(args: &MigrateArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let file: MigrateFile =
        toml::from_str(&text).with_context(|| format!("invalid {}", args.config.display()))?;
    let base = args.config.parent().unwrap_or(Path::new("."));
    let (source, from) = open_offline(&file.storage_source, base, "storage_source").await?;
    let (dest, to) = open_offline(&file.storage_destination, base, "storage_destination").await?;
    if !dest.list("").await?.is_empty() && !args.allow_non_empty {
        bail!(
            "the destination ({to}) is not empty; refusing to copy into it \
             (pass -allow-non-empty to copy anyway)"
        );
    }
    let keys = source.keys_with_prefix("").await?;
    if keys.is_empty() {
        bail!("the source ({from}) holds nothing to migrate");
    }
    let mut source_sum = Checksum::default();
    for chunk in keys.chunks(BATCH) {
        let mut ops = Vec::with_capacity(chunk.len());
        for key in chunk {
            let value = source
                .get(key)
                .await?
                .with_context(|| format!("key {key:?} vanished from the source during the copy"))?;
            source_sum.add(key, &value);
            ops.push(Op::Put {
                key: key.clone(),
                value,
            });
        }
        dest.write_batch(ops)
            .await
            .context("writing to the destination")?;
    }
    let mut dest_sum = Checksum::default();
    for key in &keys {
        let value = dest
            .get(key)
            .await?
            .with_context(|| format!("key {key:?} is missing from the destination"))?;
        dest_sum.add(key, &value);
    }
    if dest_sum != source_sum {
        bail!(
            "verification failed: the destination's {} entries do not match the source's {} \
             (checksum {} vs {})",
            dest_sum.count,
            source_sum.count,
            hex::encode(dest_sum.chain),
            hex::encode(source_sum.chain)
        );
    }
    println!(
        "Success! Migrated {} entries from {from} to {to} (verified: count and SHA-256 {}).",
        source_sum.count,
        hex::encode(source_sum.chain)
    );
    Ok(0)
}

/// A running SHA-256 chain over (key, value) pairs and their count.
#[derive(Default, PartialEq, Eq)]
struct Checksum {
    count: u64,
    chain: [u8; 32],
}

impl Checksum {
    fn add(&mut self, key: &str, value: &[u8]) {
        let mut entry = Vec::with_capacity(8 + key.len() + 32);
        entry.extend_from_slice(&(key.len() as u64).to_le_bytes());
        entry.extend_from_slice(key.as_bytes());
        entry.extend_from_slice(&coffer_crypto::hash::sha256(value));
        let mut link = Vec::with_capacity(64);
        link.extend_from_slice(&self.chain);
        link.extend_from_slice(&coffer_crypto::hash::sha256(&entry));
        self.chain = coffer_crypto::hash::sha256(&link);
        self.count += 1;
    }
}

/// Opens one end of the migration so that no server uses it meanwhile.
async fn open_offline(
    section: &StorageSection,
    base: &Path,
    name: &str,
) -> anyhow::Result<(Arc<dyn Backend>, String)> {
    match (&section.sqlite, &section.postgresql, &section.inmem) {
        (Some(s), None, None) => {
            let path = base.join(&s.path);
            if name == "storage_source" && !path.exists() {
                bail!("{name}: {} does not exist", path.display());
            }
            Ok((open_sqlite(&path)?, format!("sqlite {}", path.display())))
        }
        (None, Some(p), None) => {
            let mut config = p.backend_config(base)?;
            // Exclusive: a node with ha_enabled = false holds the same lock.
            config.ha_enabled = false;
            let table = config.table.clone();
            let backend = PostgresBackend::open(config)
                .await
                .with_context(|| format!("{name}: opening PostgreSQL table {table}"))?;
            if let Some(leader) = backend.live_leader().await? {
                bail!(
                    "{name}: a Coffer node ({}) holds a live leader lease on table {table}; \
                     stop every node before migrating",
                    leader.api_addr
                );
            }
            Ok((Arc::new(backend), format!("postgresql table {table}")))
        }
        _ => bail!("{name}: configure exactly one of [{name}.sqlite] or [{name}.postgresql]"),
    }
}
