//! Durable write throughput of the SQLite backend: one writer as the
//! baseline, then 32 concurrent writers (group commit), each for a few seconds.
//!
//! `cargo run --release -p coffer-storage --example write_throughput [seconds]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_storage::{Backend, SqliteBackend};

async fn measure(writers: usize, duration: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = Arc::new(SqliteBackend::open(dir.path().join("bench.db")).expect("open"));
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

#[tokio::main]
async fn main() {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(seconds);
    let single = measure(1, duration).await;
    println!("1 writer:    {single:>8.0} durable writes/s");
    let many = measure(32, duration).await;
    println!("32 writers:  {many:>8.0} durable writes/s");
    println!(
        "ratio:       {:>8.1}x (group commit vs one writer)",
        many / single
    );
}
