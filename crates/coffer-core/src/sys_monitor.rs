//! `GET sys/monitor?log_level=&log_format=`: this node's log, streamed as
//! it is written, at a level of the caller's choosing (Vault's and
//! OpenBao's endpoint).
//!
//! The request is authenticated, authorized (`read` on `sys/monitor`) and
//! audited like any read; the core only checks the parameters
//! ([`handle`]). The HTTP layer then subscribes to the node's
//! [`LogMonitor`] and streams each line. The lines come from a tracing
//! layer the binary installs with its own filter, so a monitor at `debug`
//! sees debug lines while the server logs at `info`; that filter asks for
//! the most verbose level any subscriber wants, and nothing at all when
//! there is none. A subscriber that falls more than [`BUFFERED_LINES`]
//! behind loses lines, as Vault documents. Lines carry what the log
//! carries, which never holds a secret value.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::core::Core;

use crate::sys_loggers::Level;
use crate::util::Params;
use crate::{ByteStream, Error, Request, Response, Result};

/// Lines held for slow subscribers before the oldest are dropped.
pub const BUFFERED_LINES: usize = 1024;
/// Most monitor streams open on a node at once.
pub const MAX_SUBSCRIBERS: usize = 64;

/// The two formats of `log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2026-01-02T03:04:05.678Z [INFO]  core: message: key=value`.
    Standard,
    /// One JSON object per line: `@level`, `@message`, `@module`,
    /// `@timestamp` and the event's fields.
    Json,
}

impl Format {
    /// Parses `log_format` (Vault: `standard` or `json`, case ignored).
    pub fn parse(s: &str) -> std::result::Result<Format, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "standard" => Ok(Format::Standard),
            "json" => Ok(Format::Json),
            _ => Err("unknown log format".into()),
        }
    }
}

/// One log event, formatted both ways once for every subscriber.
#[derive(Debug)]
pub struct LogLine {
    /// Its level.
    pub level: Level,
    /// The standard text line, newline-terminated.
    pub standard: String,
    /// The JSON line, newline-terminated.
    pub json: String,
}

impl LogLine {
    /// The line in `format`.
    pub fn text(&self, format: Format) -> &str {
        match format {
            Format::Standard => &self.standard,
            Format::Json => &self.json,
        }
    }
}

/// The node's log fan-out: the binary's tracing layer publishes, monitor
/// streams subscribe.
pub struct LogMonitor {
    lines: broadcast::Sender<Arc<LogLine>>,
    /// Level each open subscription asked for, by subscription number.
    wanted: Mutex<BTreeMap<u64, Level>>,
    /// The most verbose level wanted (as [`level_rank`]); 0: none.
    most_verbose: AtomicU8,
    next_id: AtomicU64,
}

impl std::fmt::Debug for LogMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMonitor")
            .field("subscribers", &self.wanted.lock().len())
            .finish_non_exhaustive()
    }
}

impl Default for LogMonitor {
    fn default() -> Self {
        LogMonitor {
            lines: broadcast::channel(BUFFERED_LINES).0,
            wanted: Mutex::new(BTreeMap::new()),
            most_verbose: AtomicU8::new(0),
            next_id: AtomicU64::new(0),
        }
    }
}

/// 1 (error) to 5 (trace); a level is wanted when its rank is at most the
/// most verbose rank asked for.
pub fn level_rank(level: Level) -> u8 {
    match level {
        Level::Error => 1,
        Level::Warn => 2,
        Level::Info => 3,
        Level::Debug => 4,
        Level::Trace => 5,
    }
}

/// An open monitor stream: its lines, until it is dropped.
pub struct Subscription {
    monitor: Arc<LogMonitor>,
    id: u64,
    level: Level,
    /// The lines published since it opened.
    pub lines: broadcast::Receiver<Arc<LogLine>>,
}

impl Subscription {
    /// Whether `line` is at the level this subscription asked for or above.
    pub fn wants(&self, line: &LogLine) -> bool {
        level_rank(line.level) <= level_rank(self.level)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.monitor.wanted.lock().remove(&self.id);
        self.monitor.recompute();
    }
}

impl LogMonitor {
    /// Whether any subscriber wants events of `level` now (the tracing
    /// layer's filter asks this for every event).
    pub fn wants(&self, level: Level) -> bool {
        level_rank(level) <= self.most_verbose.load(Ordering::Relaxed)
    }

    /// The most verbose level any subscriber wants, if any.
    pub fn most_verbose(&self) -> Option<Level> {
        match self.most_verbose.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(Level::Error),
            2 => Some(Level::Warn),
            3 => Some(Level::Info),
            4 => Some(Level::Debug),
            _ => Some(Level::Trace),
        }
    }

    /// Sends `line` to every subscriber (none listening: dropped).
    pub fn publish(&self, line: LogLine) {
        let _ = self.lines.send(Arc::new(line));
    }

    /// Opens a stream of the lines at `level` or above; an error when
    /// [`MAX_SUBSCRIBERS`] are open.
    pub fn subscribe(self: &Arc<Self>, level: Level) -> Result<Subscription> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut wanted = self.wanted.lock();
            if wanted.len() >= MAX_SUBSCRIBERS {
                return Err(Error::RateLimited {
                    message: format!(
                        "too many log monitors open on this node (at most {MAX_SUBSCRIBERS})"
                    ),
                    retry_after: 5,
                });
            }
            wanted.insert(id, level);
        }
        let lines = self.lines.subscribe();
        self.recompute();
        Ok(Subscription {
            monitor: Arc::clone(self),
            id,
            level,
            lines,
        })
    }

    fn recompute(&self) {
        let most = self
            .wanted
            .lock()
            .values()
            .map(|l| level_rank(*l))
            .max()
            .unwrap_or(0);
        if self.most_verbose.swap(most, Ordering::Relaxed) != most {
            // Callsites cache whether they are enabled: make them ask again.
            tracing::callsite::rebuild_interest_cache();
        }
    }
}

/// The parameters of a monitor request.
#[derive(Debug, Clone, Copy)]
pub struct MonitorParams {
    /// `log_level` (default `info`).
    pub level: Level,
    /// `log_format` (default `standard`).
    pub format: Format,
}

/// Parses `log_level` and `log_format` as Vault does.
pub fn params(req: &Request) -> Result<MonitorParams> {
    let p = Params(&req.data);
    let level = match p.str("log_level")? {
        None => Level::Info,
        Some(s) => Level::parse(s).map_err(|_| Error::bad("unknown log level"))?,
    };
    let format = Format::parse(p.str("log_format")?.unwrap_or("")).map_err(Error::bad)?;
    Ok(MonitorParams { level, format })
}

/// How often an open stream re-checks its token.
const TOKEN_CHECK: Duration = Duration::from_secs(5);
/// Lines queued for the connection before the monitor's buffer takes over.
const QUEUED_CHUNKS: usize = 64;

/// `GET sys/monitor`: a stream of this node's log lines at `log_level` or
/// above, in `log_format`, until the client leaves, its token stops being
/// valid (checked every 5 s), or the server stops.
pub(crate) fn handle(core: &Core, req: &Request) -> Result<Response> {
    let p = params(req)?;
    let token = req.token.clone().ok_or(Error::PermissionDenied)?;
    let mut sub = core.log_monitor().subscribe(p.level)?;
    let (tx, stream) = ByteStream::channel(QUEUED_CHUNKS);
    let alive: Weak<Core> = core.this.clone();
    let addr = req.client_addr;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TOKEN_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                got = sub.lines.recv() => match got {
                    Ok(line) if sub.wants(&line) => {
                        let bytes = line.text(p.format).as_bytes().to_vec();
                        if tx.send(Ok(bytes)).await.is_err() {
                            return;
                        }
                    }
                    // Too slow a reader loses lines, as Vault documents.
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let Some(core) = alive.upgrade() else { return };
                    if core.live_token(&token, addr).await.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
    });
    Ok(Response::stream(TEXT, stream))
}

/// The stream's content type (both formats are lines of text).
const TEXT: &str = "text/plain; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(level: Level) -> LogLine {
        LogLine {
            level,
            standard: format!("[{}]\n", level.as_str()),
            json: "{}\n".into(),
        }
    }

    #[tokio::test]
    async fn subscribers_get_their_levels_and_the_filter_follows_them() {
        let m = Arc::new(LogMonitor::default());
        assert!(
            !m.wants(Level::Error),
            "nothing is wanted without a subscriber"
        );
        {
            let mut info = m.subscribe(Level::Info).unwrap();
            assert!(m.wants(Level::Info) && !m.wants(Level::Debug));
            {
                let debug = m.subscribe(Level::Debug).unwrap();
                assert!(m.wants(Level::Debug) && !m.wants(Level::Trace));
                m.publish(line(Level::Debug));
                drop(debug);
            }
            assert!(!m.wants(Level::Debug), "the debug subscriber left");
            m.publish(line(Level::Warn));
            let first = info.lines.recv().await.unwrap();
            assert!(!info.wants(&first), "info does not want debug lines");
            let second = info.lines.recv().await.unwrap();
            assert!(info.wants(&second));
            assert_eq!(second.text(Format::Standard), "[warn]\n");
        }
        assert_eq!(m.most_verbose(), None);
    }

    #[test]
    fn subscriptions_are_bounded() {
        let m = Arc::new(LogMonitor::default());
        let open: Vec<_> = (0..MAX_SUBSCRIBERS)
            .map(|_| m.subscribe(Level::Error).unwrap())
            .collect();
        assert!(matches!(
            m.subscribe(Level::Error),
            Err(Error::RateLimited { .. })
        ));
        drop(open);
        assert!(m.subscribe(Level::Error).is_ok());
    }

    #[test]
    fn parameters_parse_as_vault_does() {
        let req = |data: serde_json::Value| {
            Request::new(crate::Operation::Read, "sys/monitor").with_data(data)
        };
        let p = params(&req(json!({}))).unwrap();
        assert_eq!((p.level, p.format), (Level::Info, Format::Standard));
        let p = params(&req(json!({"log_level": "DEBUG", "log_format": "json"}))).unwrap();
        assert_eq!((p.level, p.format), (Level::Debug, Format::Json));
        let e = params(&req(json!({"log_level": "bogus"}))).unwrap_err();
        assert!(e.to_string().contains("unknown log level"));
        let e = params(&req(json!({"log_format": "xml"}))).unwrap_err();
        assert!(e.to_string().contains("unknown log format"));
    }
}
