//! One enabled audit device: its configuration, salt, sink, chain state and
//! health. Writes are serialised per device so sequence numbers and links
//! follow the order of the lines. Writes block: the broker makes them on
//! the device's writer thread ([`super::writer`]).

use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::chain::{json_text, ChainState};
use super::config::{AuditSettings, DeviceConfig, Options};
use super::entry::{checkpoint_entry, Renderer};
use super::hashing::Hasher;
use super::signer::Signer;
use super::sink::{FileDir, Sink};
use crate::util::{now, rfc3339};
use crate::{Error, Result};

/// Health of a device as `sys/health` shows it.
#[derive(Debug, Default, Clone)]
pub struct Health {
    /// Entries written.
    pub written: u64,
    /// Failed writes since enabled or loaded.
    pub failures: u64,
    /// The last failure, when the device is failing now.
    pub last_error: Option<String>,
    /// When the device started failing.
    pub failing_since: Option<String>,
}

struct State {
    sink: Sink,
    chain: ChainState,
    since_checkpoint: u64,
}

/// An enabled device.
pub struct Device {
    /// Its configuration.
    pub config: DeviceConfig,
    /// Its common options.
    pub options: Options,
    hasher: Hasher,
    best_effort: bool,
    deadline: Duration,
    state: Mutex<State>,
    health: Mutex<Health>,
}

impl Device {
    /// A device from its stored configuration; `chain` is where its log
    /// stands. A file device may write anywhere: for tools and tests that
    /// build devices directly (the server uses [`Device::for_server`]).
    /// The salt is taken out of `config` (and wiped there) into zeroizing memory.
    pub fn new(config: DeviceConfig, chain: ChainState) -> Result<Device> {
        let sink = Sink::from_options(&config.kind, &config.options, &FileDir::Anywhere)?;
        Device::with_sink(config, chain, sink)
    }

    /// A device as the server runs it: file devices only under the
    /// configured directory (refused, with a 400, otherwise).
    pub fn for_server(
        config: DeviceConfig,
        chain: ChainState,
        settings: &AuditSettings,
    ) -> Result<Device> {
        let sink = Sink::from_options(
            &config.kind,
            &config.options,
            &FileDir::from_settings(settings),
        )?;
        Device::with_sink(config, chain, sink)
    }

    fn with_sink(mut config: DeviceConfig, chain: ChainState, sink: Sink) -> Result<Device> {
        let options = Options::parse(&config.options)?;
        let salt =
            Zeroizing::new(hex::decode(&config.salt).map_err(|_| Error::corrupt("audit salt"))?);
        zeroize::Zeroize::zeroize(&mut config.salt);
        Ok(Device {
            hasher: Hasher::new(salt, options.log_raw),
            options,
            config,
            best_effort: sink.best_effort(),
            deadline: sink.deadline(),
            state: Mutex::new(State {
                sink,
                chain,
                since_checkpoint: 0,
            }),
            health: Mutex::new(Health::default()),
        })
    }

    /// Whether a successful write proves nothing (UDP): such a device never
    /// alone lets a request through.
    pub fn best_effort(&self) -> bool {
        self.best_effort
    }

    /// How long a request waits for this device to write an entry.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Records a failure seen by a caller (an entry not written in time).
    pub fn note_failure(&self, error: &str) {
        let mut h = self.health.lock();
        h.failures += 1;
        if h.last_error.is_none() {
            h.failing_since = Some(rfc3339(&now()));
        }
        h.last_error = Some(error.to_string());
    }

    /// The renderer of entries for this device.
    pub fn renderer(&self) -> Renderer<'_> {
        Renderer {
            hasher: &self.hasher,
            options: &self.options,
        }
    }

    /// `hmac-sha256:<hex>` of `input` under this device's salt.
    pub fn hmac(&self, input: &str) -> String {
        self.hasher.hmac(input)
    }

    /// The log file of a file device.
    pub fn file_path(&self) -> Option<std::path::PathBuf> {
        self.state.lock().sink.file_path()
    }

    /// Where the chain of a file device's existing log ends, from its last line.
    pub fn chain_from_file(&self) -> Option<ChainState> {
        let line = self.state.lock().sink.last_line()?;
        let text = json_text(&line)?;
        let v: Value = serde_json::from_str(text).ok()?;
        Some(ChainState {
            seq: v.get("seq")?.as_u64()?,
            prev: super::chain::entry_hash(text),
        })
    }

    /// Sets where the chain stands (when resuming a log).
    pub fn set_chain(&self, chain: ChainState) {
        self.state.lock().chain = chain;
    }

    /// The chain state now.
    pub fn chain(&self) -> ChainState {
        self.state.lock().chain.clone()
    }

    /// Writes one entry; returns the chain state when an interval
    /// checkpoint was written as well (to persist it).
    pub fn write(&self, entry: Map<String, Value>, signer: &Signer) -> Result<Option<ChainState>> {
        let mut st = self.state.lock();
        let (text, next) = st.chain.link(entry);
        self.emit(&mut st, &text, next)?;
        st.since_checkpoint += 1;
        if st.since_checkpoint >= self.options.checkpoint_interval {
            // The entry is written; a failed checkpoint is retried after the next one.
            return Ok(self.checkpoint_locked(&mut st, "interval", signer).ok());
        }
        Ok(None)
    }

    /// Writes a signed checkpoint; `start` begins a new chain at seq 1.
    pub fn checkpoint(&self, reason: &str, signer: &Signer) -> Result<ChainState> {
        let mut st = self.state.lock();
        if reason == "start" {
            st.chain = ChainState::default();
        }
        self.checkpoint_locked(&mut st, reason, signer)
    }

    fn checkpoint_locked(
        &self,
        st: &mut State,
        reason: &str,
        signer: &Signer,
    ) -> Result<ChainState> {
        let entry = checkpoint_entry(
            reason,
            &self.config.path,
            signer.key_id(),
            signer.public_key(),
        );
        let (text, next) = st.chain.link_signed(entry, |m| signer.sign(m));
        self.emit(st, &text, next.clone())?;
        st.since_checkpoint = 0;
        Ok(next)
    }

    fn emit(&self, st: &mut State, text: &str, next: ChainState) -> Result<()> {
        let line = if self.options.prefix.is_empty() {
            std::borrow::Cow::Borrowed(text)
        } else {
            std::borrow::Cow::Owned(format!("{}{text}", self.options.prefix))
        };
        match st.sink.write_line(&line) {
            Ok(()) => {
                st.chain = next;
                let mut h = self.health.lock();
                h.written += 1;
                if h.last_error.take().is_some() {
                    h.failing_since = None;
                    tracing::info!(device = %self.config.path, "audit device recovered");
                }
                Ok(())
            }
            Err(e) => {
                self.note_failure(&e.to_string());
                tracing::error!(device = %self.config.path, error = %e, "audit device failed to write");
                Err(Error::Audit(format!(
                    "audit device {} failed: {e}",
                    self.config.path
                )))
            }
        }
    }

    /// Writes a `rotate` checkpoint to the current file, then reopens it
    /// (called on SIGHUP after the file was moved away).
    pub fn reopen(&self, signer: &Signer) {
        let mut st = self.state.lock();
        if !st.sink.is_file() {
            return;
        }
        let _ = self.checkpoint_locked(&mut st, "rotate", signer);
        st.sink.close();
    }

    /// Health as `sys/health` shows it.
    pub fn health_json(&self) -> Value {
        let h = self.health.lock().clone();
        json!({
            "type": self.config.kind,
            "ok": h.last_error.is_none(),
            "written": h.written,
            "failures": h.failures,
            "last_error": h.last_error,
            "failing_since": h.failing_since,
        })
    }
}
