//! The tracing layer behind `sys/monitor`: formats each event the node's
//! [`LogMonitor`] subscribers want, in Vault's standard and JSON shapes,
//! and hands it to the monitor. Its filter is its own (not the server's
//! `--log-level`): it passes the most verbose level a subscriber asked
//! for, the HTTP and TLS libraries only from `warn` (a stream's own writes
//! must not feed it), and nothing when no one listens.

use std::fmt::Write as _;
use std::sync::Arc;

use coffer_core::sys_loggers::{self, Level};
use coffer_core::sys_monitor::{LogLine, LogMonitor};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};

/// Libraries heard only from `warn`: the transport and TLS stacks, whose
/// debug lines a monitor stream's own writes would produce.
const QUIET_BELOW_WARN: &[&str] = &["hyper", "h2", "rustls", "tokio", "tower", "axum", "mio"];

/// The layer; pair it with [`MonitorFilter`].
pub(crate) struct MonitorLayer(pub(crate) Arc<LogMonitor>);

/// What the layer hears: the levels the monitor's subscribers want.
pub(crate) struct MonitorFilter(pub(crate) Arc<LogMonitor>);

fn level_of(l: &tracing::Level) -> Level {
    match *l {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        tracing::Level::DEBUG => Level::Debug,
        _ => Level::Trace,
    }
}

fn quiet(target: &str) -> bool {
    QUIET_BELOW_WARN.iter().any(|lib| {
        target
            .strip_prefix(lib)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

impl<S: Subscriber> Filter<S> for MonitorFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        let level = level_of(meta.level());
        self.0.wants(level) && (level >= Level::Warn || !quiet(meta.target()))
    }

    fn callsite_enabled(&self, _meta: &'static Metadata<'static>) -> Interest {
        // Subscribers come and go: ask each time (the hint below bounds it).
        Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(match self.0.most_verbose() {
            None => LevelFilter::OFF,
            Some(Level::Error) => LevelFilter::ERROR,
            Some(Level::Warn) => LevelFilter::WARN,
            Some(Level::Info) => LevelFilter::INFO,
            Some(Level::Debug) => LevelFilter::DEBUG,
            Some(Level::Trace) => LevelFilter::TRACE,
        })
    }
}

/// An event's message and fields, in recording order.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name().starts_with("log.") {
            // The `log` bridge's own fields (target, file, line).
        } else if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

/// `value` as hclog's standard format writes it: bare when it has no
/// space, quote or `=`, else quoted.
fn standard_value(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.is_empty() || text.contains([' ', '"', '=', '\n', '\t']) {
        format!("{text:?}")
    } else {
        text
    }
}

/// Formats one event both ways.
fn format_event(event: &Event<'_>) -> LogLine {
    use tracing_log::NormalizeEvent as _;
    // A record from the `log` bridge: its own target, not `log`.
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    let level = level_of(meta.level());
    let mut f = Fields::default();
    event.record(&mut f);
    let now = chrono::Utc::now();
    let module = sys_loggers::logger_of(meta.target()).unwrap_or(meta.target());
    let mut standard = format!(
        "{} {:<7} {module}: {}",
        now.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        format!("[{}]", level.as_str().to_ascii_uppercase()),
        f.message
    );
    if !f.fields.is_empty() {
        standard.push(':');
        for (k, v) in &f.fields {
            let _ = write!(standard, " {k}={}", standard_value(v));
        }
    }
    standard.push('\n');
    let mut obj = Map::new();
    obj.insert("@level".into(), Value::from(level.as_str()));
    obj.insert("@message".into(), Value::from(f.message));
    obj.insert("@module".into(), Value::from(module));
    obj.insert(
        "@timestamp".into(),
        Value::from(now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    );
    for (k, v) in f.fields {
        obj.entry(k.to_string()).or_insert(v);
    }
    let mut json = Value::Object(obj).to_string();
    json.push('\n');
    LogLine {
        level,
        standard,
        json,
    }
}

impl<S: Subscriber> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        if self.0.wants(level_of(event.metadata().level())) {
            self.0.publish(format_event(event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn events_reach_subscribers_at_their_level_in_both_formats() {
        let monitor = Arc::new(LogMonitor::default());
        let subscriber = tracing_subscriber::registry()
            .with(MonitorLayer(monitor.clone()).with_filter(MonitorFilter(monitor.clone())));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("nobody listens yet");
            let mut sub = monitor.subscribe(Level::Debug).unwrap();
            tracing::callsite::rebuild_interest_cache();
            tracing::debug!(target: "coffer_core::expiration", path = "foo/", total_keys = 0, "clearing view");
            tracing::trace!("too verbose");
            tracing::debug!(target: "hyper::proto", "a library's chatter");
            tracing::warn!(target: "coffer_core::core", name = "a b", "mounted");
            let first = sub.lines.try_recv().unwrap();
            assert!(
                first
                    .standard
                    .contains("[DEBUG] expiration: clearing view: path=foo/ total_keys=0\n"),
                "{}",
                first.standard
            );
            let j: Value = serde_json::from_str(first.json.trim_end()).unwrap();
            assert_eq!(j["@level"], "debug");
            assert_eq!(j["@module"], "expiration");
            assert_eq!(j["@message"], "clearing view");
            assert_eq!(j["total_keys"], 0);
            let second = sub.lines.try_recv().unwrap();
            assert!(
                second
                    .standard
                    .contains("[WARN]  core: mounted: name=\"a b\"\n"),
                "{}",
                second.standard
            );
            assert!(
                sub.lines.try_recv().is_err(),
                "trace and library debug lines are not sent"
            );
        });
    }
}
