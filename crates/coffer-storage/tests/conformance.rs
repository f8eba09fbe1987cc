//! Runs the conformance suite in `common` against every backend.
//!
//! The PostgreSQL cases use `COFFER_TEST_PG_URL` (each test its own tables,
//! dropped afterwards) and print a notice and pass without it.

mod common;

use coffer_storage::{MemoryBackend, Op, SqliteBackend};
use common::pg::pg_backend;
use proptest::prelude::*;

/// Generates one `#[tokio::test]` per suite function for a backend.
/// `$make` evaluates to `(backend, guard)`; the guard lives as long as the test.
macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            conformance!(@case $make; get_put_delete, list_children, list_pages, keys_with_prefix,
                write_batch, unicode_keys, large_values, concurrent_writes,
                batches_are_atomic_to_readers, export_is_one_consistent_read,
                import_replaces_the_whole_store, an_unfinished_import_changes_nothing,
                conditional_writes, conditional_race);
        }
    };
    (@case $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                #[allow(clippy::redundant_closure_call)]
                let Some((backend, _guard)) = ($make)(stringify!($case)).await else {
                    return;
                };
                crate::common::$case(backend).await;
            }
        )*
    };
}

conformance!(memory, |_| async { Some((MemoryBackend::new(), ())) });
conformance!(sqlite, |_| async { Some(sqlite_backend()) });
conformance!(postgresql, pg_backend);

/// A fresh SQLite backend in a temporary directory (the guard).
fn sqlite_backend() -> (SqliteBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path().join("coffer.db")).unwrap();
    (backend, dir)
}

/// Keys built from a few segments, so that prefixes and directories collide often.
fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "ab", "a/", "b/", "/", "-", "0", "é", "日"]),
        1..5,
    )
    .prop_map(|parts| parts.concat())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key(), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(key, value)| Op::Put { key, value }),
        1 => key().prop_map(|key| Op::Delete { key }),
    ]
}

fn batches() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 0..6), 1..8)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn memory_matches_model(batches in batches()) {
        runtime().block_on(common::matches_model(&MemoryBackend::new(), batches));
    }

    #[test]
    fn sqlite_matches_model(batches in batches()) {
        let (backend, _dir) = sqlite_backend();
        runtime().block_on(common::matches_model(&backend, batches));
    }
}

proptest! {
    // Each case opens a backend on its own tables: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn postgresql_matches_model(batches in batches()) {
        let rt = runtime();
        rt.block_on(async {
            if let Some((backend, _guard)) = pg_backend("model").await {
                common::matches_model(&backend, batches).await;
            }
        });
    }
}
