//! Opening and configuring connections: file mode, pragmas, schema.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::db_error;
use crate::{Result, StorageError};

/// How long a connection waits on a lock held by another connection or process.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (
    key TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;";

/// Opens the read-write connection: creates the file (mode 0600) if absent,
/// switches to WAL with `synchronous=FULL` and creates the schema.
pub(super) fn open_writer(path: &Path) -> Result<Connection> {
    let created = create_private_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;

    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| open_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Backend(format!(
            "sqlite open {}: could not enable WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    // FULL: in WAL mode every commit fsyncs the log before it returns.
    conn.pragma_update(None, "synchronous", "FULL")
        .and_then(|()| conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024))
        .map_err(|e| open_error(path, e))?;

    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| open_error(path, e))?;
    if version > SCHEMA_VERSION {
        return Err(StorageError::Backend(format!(
            "sqlite open {}: schema version {version} is newer than this build supports ({SCHEMA_VERSION})",
            path.display()
        )));
    }
    conn.execute_batch(SCHEMA)
        .and_then(|()| conn.pragma_update(None, "user_version", SCHEMA_VERSION))
        .map_err(|e| open_error(path, e))?;

    if created {
        // Make the new file's (and the WAL's) directory entries durable too.
        sync_parent_dir(path)?;
    }
    Ok(conn)
}

/// Takes the exclusive advisory lock (`flock`) on `<path>.lock` that marks
/// the database as in use by one process, and writes that process's id into
/// it. Held until the returned file is dropped (or the process ends, even by
/// `kill -9`). A second opener gets a clear error naming the holder's pid.
pub(super) fn lock_exclusive(path: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(StorageError::Backend(format!(
                "sqlite open {}: directory {} does not exist",
                path.display(),
                parent.display()
            )));
        }
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let io_error = |e: std::io::Error| {
        StorageError::Backend(format!("sqlite lock {}: {e}", lock_path.display()))
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!(" (pid {pid})"),
                Err(_) => String::new(),
            };
            return Err(StorageError::InUse(format!(
                "storage file {} is in use by another Coffer process{holder}",
                path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_error(e)),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(io_error)?;
    Ok(file)
}

/// Opens a read-only connection to a database `open_writer` has set up.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;
    Ok(conn)
}

fn open_error(path: &Path, err: rusqlite::Error) -> StorageError {
    db_error(&format!("open {}", path.display()), err)
}

/// Creates `path` with mode 0600 unless it exists. Returns whether it did.
///
/// SQLite gives its `-wal` and `-shm` files the database file's mode, so
/// they end up private as well.
fn create_private_file(path: &Path) -> Result<bool> {
    let io_error =
        |e: std::io::Error| StorageError::Backend(format!("sqlite open {}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(StorageError::Backend(format!(
                "sqlite open {}: directory {} does not exist",
                path.display(),
                parent.display()
            )));
        }
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => {
            file.sync_all().map_err(io_error)?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)
                .map_err(io_error)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "storage file is readable by group or others; consider chmod 600"
                );
            }
            Ok(false)
        }
        Err(e) => Err(io_error(e)),
    }
}

fn sync_parent_dir(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| {
            StorageError::Backend(format!("sqlite sync directory {}: {e}", parent.display()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_is_wal_full_with_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let conn = open_writer(&path).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
        let busy: i64 = conn
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 5000);
        let sql: String = conn
            .query_row("SELECT sql FROM sqlite_schema WHERE name = 'kv'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(sql.contains("WITHOUT ROWID"), "{sql}");
    }

    #[test]
    fn reader_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let _writer = open_writer(&path).unwrap();
        let reader = open_reader(&path).unwrap();
        assert!(reader
            .execute("INSERT INTO kv (key, value) VALUES ('k', x'00')", [])
            .is_err());
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        open_writer(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = open_writer(&path).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
