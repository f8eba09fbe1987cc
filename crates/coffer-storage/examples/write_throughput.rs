//! Durable write throughput: one writer as the baseline, then 32
//! concurrent writers (group commit), each for a few seconds, on SQLite and,
//! when `COFFER_TEST_PG_URL` is set, on PostgreSQL (tables of its own,
//! dropped afterwards).
//!
//! `cargo run --release -p coffer-storage --example write_throughput [seconds]`
//!
//! Measured on a shared 2-core machine (PostgreSQL 15 on loopback,
//! `synchronous_commit = on`): SQLite 1269/s with one writer and 5651/s
//! with 32; PostgreSQL 188/s and 1919/s (group commit: 10.2x).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_storage::{Backend, PostgresBackend, PostgresConfig, SqliteBackend};

async fn measure(backend: Arc<dyn Backend>, writers: usize, duration: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let backend = Arc::clone(&backend);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut i = 0u64;
                while start.elapsed() < duration {
                    // About the size of a small sealed secret.
                    let value = vec![(i % 251) as u8; 256];
                    backend
                        .put(&format!("bench/{w}/{i}"), value)
                        .await
                        .expect("write");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn report(name: &str, single: f64, many: f64) {
    println!("{name} 1 writer:    {single:>8.0} durable writes/s");
    println!("{name} 32 writers:  {many:>8.0} durable writes/s");
    println!(
        "{name} ratio:       {:>8.1}x (group commit vs one writer)",
        many / single
    );
}

async fn postgres(url: &str, table: &str) -> Arc<dyn Backend> {
    let mut config = PostgresConfig::new(url);
    config.table = table.into();
    Arc::new(
        PostgresBackend::open(config)
            .await
            .expect("open postgresql"),
    )
}

async fn drop_tables(url: &str, table: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let sql = ["", "_meta", "_log", "_leader"]
            .map(|s| format!("DROP TABLE IF EXISTS \"{table}{s}\";"))
            .concat();
        let _ = client.batch_execute(&sql).await;
    }
}

#[tokio::main]
async fn main() {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(seconds);
    let dir = tempfile::tempdir().expect("temporary directory");
    let sqlite = |name: &str| -> Arc<dyn Backend> {
        Arc::new(SqliteBackend::open(dir.path().join(name)).expect("open"))
    };
    let single = measure(sqlite("one.db"), 1, duration).await;
    let many = measure(sqlite("many.db"), 32, duration).await;
    report("sqlite", single, many);
    if let Ok(url) = std::env::var("COFFER_TEST_PG_URL") {
        let table = format!("bench_write_{}", std::process::id());
        drop_tables(&url, &table).await;
        let single = measure(postgres(&url, &table).await, 1, duration).await;
        drop_tables(&url, &table).await;
        let many = measure(postgres(&url, &table).await, 32, duration).await;
        drop_tables(&url, &table).await;
        report("postgresql", single, many);
    }
}
