//! Durable write throughput: one writer as the baseline, then 32
//! concurrent writers (group commit), each for a few seconds, on SQLite and,
//! when `COFFER_TEST_PG_URL` is set, on PostgreSQL (tables of its own,
//! dropped afterwards).
//!
//! `cargo run --release -p coffer-storage --example write_throughput [seconds] [plain]`
//!
//! Beside plain writes it measures conditional ones (`write_batch_if` of
//! the writer's own key, expecting the value it wrote last) and whole
//! read-modify-writes (a `get`, then the conditional write), each against
//! plain overwrites of the writer's own key in the same run; `plain` runs
//! only the plain writes of new keys.
//!
//! Measured on a shared 2-core machine (PostgreSQL 15 on loopback,
//! `synchronous_commit = on`): SQLite 1269/s with one writer and 5651/s
//! with 32; PostgreSQL 188/s and 1919/s (group commit: 10.2x).
//! Conditional writes, medians of six runs on the same (noisy) machine
//! against plain overwrites in the same run: SQLite 0.99x (1 writer) and
//! 0.95x (32); PostgreSQL 0.92x and 0.77x (one more pipelined statement
//! per expected key); with an uncached `get` before each, 0.6x-0.8x.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_storage::{Backend, Op, PostgresBackend, PostgresConfig, SqliteBackend, Version};

/// How each writer writes.
#[derive(Clone, Copy)]
enum Mode {
    /// `put` of a new key each time (the figures in the module docs).
    Plain,
    /// `put` over the writer's own key: the baseline of the two below.
    Overwrite,
    /// `write_batch_if` of the writer's own key, expecting the value it
    /// wrote last (known, so no read): the cost of the check alone.
    Conditional,
    /// Read the writer's key, then `write_batch_if` expecting what was read:
    /// a whole read-modify-write.
    ReadModifyWrite,
}

async fn measure(backend: Arc<dyn Backend>, writers: usize, duration: Duration, mode: Mode) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let backend = Arc::clone(&backend);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut i = 0u64;
                let key = format!("bench/{w}");
                let mut last: Option<Version> = None;
                while start.elapsed() < duration {
                    // About the size of a small sealed secret.
                    let mut value = vec![(i % 251) as u8; 256];
                    value[..8].copy_from_slice(&i.to_le_bytes());
                    match mode {
                        Mode::Plain => backend
                            .put(&format!("bench/{w}/{i}"), value)
                            .await
                            .expect("write"),
                        Mode::Overwrite => backend.put(&key, value).await.expect("write"),
                        Mode::Conditional | Mode::ReadModifyWrite => {
                            let expect = match mode {
                                Mode::Conditional => last,
                                _ => backend
                                    .get(&key)
                                    .await
                                    .expect("read")
                                    .map(|v| Version::of(&v)),
                            };
                            let next = Version::of(&value);
                            let op = Op::Put {
                                key: key.clone(),
                                value,
                            };
                            let applied = backend
                                .write_batch_if(vec![(key.clone(), expect)], vec![op])
                                .await
                                .expect("write");
                            assert!(applied, "no other writer touches this key");
                            last = Some(next);
                        }
                    }
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

/// Measures every mode with 1 and 32 writers on fresh stores from `open`,
/// and prints each against plain writes of the same run.
async fn report<F, Fut>(name: &str, duration: Duration, plain_only: bool, open: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Backend>>,
{
    for writers in [1, 32] {
        let mut base = 0.0;
        for (mode, label) in [
            (Mode::Plain, "put, new keys"),
            (Mode::Overwrite, "put, own key"),
            (Mode::Conditional, "conditional put"),
            (Mode::ReadModifyWrite, "get + conditional put"),
        ] {
            if plain_only && !matches!(mode, Mode::Plain) {
                continue;
            }
            let backend = open(format!("{label}-{writers}")).await;
            let rate = measure(backend, writers, duration, mode).await;
            let vs = match mode {
                Mode::Plain => String::new(),
                Mode::Overwrite => {
                    base = rate;
                    String::new()
                }
                _ => format!(" ({:.2}x put, own key)", rate / base),
            };
            println!("{name} {writers:>2} writer(s), {label:<22} {rate:>8.0} durable writes/s{vs}");
        }
    }
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
    // `plain`: only what earlier versions of this example measured, for
    // A/B runs against them.
    let plain_only = std::env::args().nth(2).as_deref() == Some("plain");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().to_path_buf();
    report("sqlite", duration, plain_only, |name| {
        let path = path.join(format!("{}.db", name.replace([' ', '+', ','], "_")));
        async move { Arc::new(SqliteBackend::open(path).expect("open")) as Arc<dyn Backend> }
    })
    .await;
    if let Ok(url) = std::env::var("COFFER_TEST_PG_URL") {
        let table = format!("bench_write_{}", std::process::id());
        report("postgresql", duration, plain_only, |_| {
            let (url, table) = (url.clone(), table.clone());
            async move {
                drop_tables(&url, &table).await;
                postgres(&url, &table).await
            }
        })
        .await;
        drop_tables(&url, &table).await;
    }
}
