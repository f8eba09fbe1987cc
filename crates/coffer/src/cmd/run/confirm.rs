//! `coffer run --watch` as a consumer of its secrets: it tells the server
//! which version of each secret the child holds, after the child started
//! (or was signalled) with it, and again every
//! [`coffer_client::consumers::REPORT_INTERVAL`], so that a rotation
//! configured to wait for its consumers counts this one.
//!
//! The watcher numbers each set of values it hands to the supervisor (a
//! generation) and files the versions read for it here; the supervisor says
//! which generation the child now holds; this thread reports that one.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};

use coffer_client::consumers::{self, REPORT_INTERVAL};
use coffer_client::{Client, Held};

/// What the reporter is told.
pub enum Msg {
    /// The child now holds the values of this generation.
    Applied(u64),
    /// The versions of a generation changed (same values, new versions).
    Refresh,
}

/// The versions read for each generation not yet superseded.
#[derive(Default)]
pub struct Ledger {
    by_generation: BTreeMap<u64, BTreeMap<String, Held>>,
    applied: u64,
}

/// The shared ledger and the reporter's inbox.
#[derive(Clone)]
pub struct Confirmer {
    ledger: Arc<Mutex<Ledger>>,
    tx: Sender<Msg>,
}

impl Confirmer {
    /// Starts the reporting thread; generation 0 holds `initial`.
    pub fn start(client: Client, initial: BTreeMap<String, Held>) -> Confirmer {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        if let Ok(mut l) = ledger.lock() {
            l.by_generation.insert(0, initial);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let id = consumers::consumer_id("run");
        let shared = ledger.clone();
        std::thread::spawn(move || report_loop(&client, &id, &shared, &rx));
        Confirmer { ledger, tx }
    }

    /// Files the versions read for `generation`.
    pub fn file(&self, generation: u64, held: BTreeMap<String, Held>) {
        if let Ok(mut l) = self.ledger.lock() {
            l.by_generation.insert(generation, held);
        }
    }

    /// Files new versions for the newest generation (the values did not
    /// change, so the child holds these versions too) and reports them.
    pub fn refresh(&self, held: BTreeMap<String, Held>) {
        if let Ok(mut l) = self.ledger.lock() {
            let newest = l.by_generation.keys().next_back().copied().unwrap_or(0);
            l.by_generation.insert(newest, held);
        }
        let _ = self.tx.send(Msg::Refresh);
    }

    /// What the supervisor calls when the child holds a generation.
    pub fn applied(&self) -> Sender<Msg> {
        self.tx.clone()
    }
}

fn report_loop(client: &Client, id: &str, ledger: &Mutex<Ledger>, rx: &Receiver<Msg>) {
    loop {
        match rx.recv_timeout(REPORT_INTERVAL) {
            Ok(Msg::Applied(g)) => {
                if let Ok(mut l) = ledger.lock() {
                    l.applied = l.applied.max(g);
                    let applied = l.applied;
                    l.by_generation.retain(|k, _| *k >= applied);
                }
            }
            Ok(Msg::Refresh) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let held = match ledger.lock() {
            Ok(l) => l.by_generation.get(&l.applied).cloned().unwrap_or_default(),
            Err(_) => return,
        };
        if let Err(e) = consumers::report(client, id, "run", &held) {
            eprintln!("coffer run: cannot confirm the versions held: {e}");
        }
    }
}
