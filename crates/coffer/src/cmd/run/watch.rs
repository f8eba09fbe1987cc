//! `coffer run --watch`: a thread following the change-event stream.
//! An event for a referenced secret (or a resync marker) makes it read the
//! references again; when a value changed, the new values go to the
//! supervisor. Nothing is polled: without events, nothing is read.
//!
//! A rotation that waits for its consumers announces its pending version
//! (`coffer/rotation-pending`): the watched secret is then read at its
//! `pending` stage until the rotation finishes or is rolled back, and the
//! versions the child holds are confirmed ([`super::confirm`]).

use std::collections::HashSet;

use anyhow::Context as _;
use coffer_client::events::Watch;
use coffer_client::{Client, Resolver};
use tokio::sync::mpsc;

use super::confirm::Confirmer;
use super::supervise::Values;

/// The event a rotation waiting for its consumers announces.
const ROTATION_PENDING: &str = "coffer/rotation-pending";
use super::{resolve_all, Wanted};

/// The event stream, connected, with what it watches.
pub struct Watcher {
    client: Client,
    watch: Watch,
    wanted: Vec<Wanted>,
    paths: HashSet<String>,
}

impl Watcher {
    /// Subscribes (before the first read, so no change is missed) and
    /// learns the event paths of the referenced secrets.
    pub fn start(client: Client, wanted: &[Wanted]) -> anyhow::Result<Watcher> {
        let mut watch = Watch::new(client.clone(), "*");
        watch
            .connect()
            .context("cannot subscribe to change events (sys/events/subscribe/*)")?;
        let paths = {
            let resolver = Resolver::new(&client);
            wanted
                .iter()
                .map(|w| resolver.event_path(&w.reference))
                .collect::<Result<HashSet<_>, _>>()?
        };
        Ok(Watcher {
            client,
            watch,
            wanted: wanted.to_vec(),
            paths,
        })
    }

    /// Runs the watcher on a thread of its own; `current` are the values
    /// the child starts with.
    pub fn spawn(
        self,
        current: Values,
        confirmer: Confirmer,
    ) -> (mpsc::Receiver<(Values, u64)>, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4);
        let handle = std::thread::spawn(move || self.run(current, tx, &confirmer));
        (rx, handle)
    }

    fn run(mut self, mut current: Values, tx: mpsc::Sender<(Values, u64)>, confirmer: &Confirmer) {
        let resolver = Resolver::new(&self.client);
        let mut generation = 0u64;
        loop {
            let event = match self.watch.next_event() {
                Ok(e) => e,
                Err(e) => {
                    eprintln!(
                        "coffer run: the change-event stream was refused: {e}; retrying in 30s"
                    );
                    std::thread::sleep(std::time::Duration::from_secs(30));
                    continue;
                }
            };
            if !event.is_resync() && !self.paths.contains(&event.data_path) {
                continue;
            }
            match event.event_type.as_str() {
                _ if event.is_resync() => resolver.read_current_everywhere(),
                ROTATION_PENDING => resolver.read_pending(&event.data_path, true),
                _ => resolver.read_pending(&event.data_path, false),
            }
            resolver.forget_reads();
            let values = match resolve_all(&resolver, &self.wanted) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!(
                        "coffer run: after a change to {}: {e:#}; keeping the current values",
                        event.data_path
                    );
                    continue;
                }
            };
            let changed = values.len() != current.len()
                || values
                    .iter()
                    .zip(&current)
                    .any(|((n1, v1), (n2, v2))| n1 != n2 || v1.as_str() != v2.as_str());
            if changed {
                current = values.clone();
                generation += 1;
                confirmer.file(generation, resolver.held());
                if tx.blocking_send((values, generation)).is_err() {
                    return;
                }
            } else {
                confirmer.refresh(resolver.held());
            }
        }
    }
}
