//! PostgreSQL test stores: each on tables of its own, dropped afterwards.

use coffer_storage::{PostgresBackend, PostgresConfig};

/// `COFFER_TEST_PG_URL`, or `None` (with a notice) when it is not set.
pub fn pg_url() -> Option<String> {
    match std::env::var("COFFER_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("COFFER_TEST_PG_URL is not set: skipping a PostgreSQL storage test");
            None
        }
    }
}

/// A unique table base name for `test`.
pub fn table_name(test: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let safe: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(20)
        .collect();
    format!("pgstore_{safe}_{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// Drops a test store's tables when dropped.
pub struct DropTables {
    url: String,
    table: String,
}

impl DropTables {
    /// Drops `table`'s tables at `url` when dropped.
    pub fn new(url: String, table: String) -> Self {
        DropTables { url, table }
    }
}

impl Drop for DropTables {
    fn drop(&mut self) {
        let (url, table) = (self.url.clone(), self.table.clone());
        // Its own thread and runtime: drop may run inside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(conn);
                let sql = ["", "_meta", "_log", "_leader"]
                    .map(|s| format!("DROP TABLE IF EXISTS \"{table}{s}\";"))
                    .concat();
                let _ = client.batch_execute(&sql).await;
            });
        })
        .join();
    }
}

/// A fresh PostgreSQL backend on tables of its own, or `None` without a
/// database to test on.
pub async fn pg_backend(test: &'static str) -> Option<(PostgresBackend, DropTables)> {
    let url = pg_url()?;
    let table = table_name(test);
    let mut config = PostgresConfig::new(url.clone());
    config.table = table.clone();
    let backend = PostgresBackend::open(config)
        .await
        .expect("open postgresql");
    Some((backend, DropTables { url, table }))
}
