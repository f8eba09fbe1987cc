//! Telemetry: the metrics `sys/metrics` serves, in Prometheus' text format
//! or in Vault's JSON shape (`Timestamp`, `Gauges`, `Counters`, `Samples`).
//!
//! Recording goes through the `metrics` crate into one process-wide
//! `metrics-exporter-prometheus` recorder. Each metric's handle is
//! registered once and kept in a `static` ([`Metric`]), so recording on the
//! hot path is an atomic update with no lookup and no lock. Timings are in
//! milliseconds and render as summaries, as Vault's do. Names are Vault's
//! where Vault has one (`vault.core.handle_request`, `vault.barrier.get`,
//! `vault.expire.num_leases`, ...); Coffer's own start with `coffer.`.
//! Gauges that count stored things (tokens, leases, lifecycle states) are
//! computed when `sys/metrics` is read, not on the request path.

use std::sync::{LazyLock, OnceLock};
use std::time::Instant;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{json, Map, Value};

/// Time of a request (ms), Vault's `vault.core.handle_request`.
pub const HANDLE_REQUEST: &str = "vault.core.handle_request";
/// Time of a login request (ms), Vault's `vault.core.handle_login_request`.
pub const HANDLE_LOGIN_REQUEST: &str = "vault.core.handle_login_request";
/// Requests answered, by status class (Coffer's).
pub const REQUESTS: &str = "coffer.core.requests";
/// Barrier reads (ms).
pub const BARRIER_GET: &str = "vault.barrier.get";
/// Barrier writes (ms).
pub const BARRIER_PUT: &str = "vault.barrier.put";
/// Barrier deletes (ms).
pub const BARRIER_DELETE: &str = "vault.barrier.delete";
/// Barrier lists (ms).
pub const BARRIER_LIST: &str = "vault.barrier.list";
/// Requests no audit device recorded.
pub const AUDIT_REQUEST_FAILURE: &str = "vault.audit.log_request_failure";
/// Responses no audit device recorded.
pub const AUDIT_RESPONSE_FAILURE: &str = "vault.audit.log_response_failure";
/// Requests a rate-limit quota refused (Vault's name).
pub const QUOTA_RATE_LIMIT_VIOLATION: &str = "vault.quota.rate_limit.violation";
/// Tokens in the token store (Vault's `vault.token.count`).
pub const TOKEN_COUNT: &str = "vault.token.count";
/// Leases held by the expiration manager.
pub const NUM_LEASES: &str = "vault.expire.num_leases";
/// Whether the core is unsealed (1) or sealed (0).
pub const UNSEALED: &str = "vault.core.unsealed";
/// Secrets whose rotation is due (Coffer's lifecycle).
pub const SECRETS_DUE: &str = "coffer.lifecycle.secrets_due";
/// Secrets whose rotation is overdue.
pub const SECRETS_OVERDUE: &str = "coffer.lifecycle.secrets_overdue";
/// Secrets whose last rotation failed.
pub const SECRETS_FAILING: &str = "coffer.lifecycle.secrets_failing";
/// Rotations run, by result (`success`, `failure`).
pub const ROTATIONS: &str = "coffer.lifecycle.rotations";
/// Time of one rotation scheduler pass (ms).
pub const SCHEDULER_PASS: &str = "coffer.lifecycle.scheduler_pass";

/// Every metric name, so the JSON form can give back Vault's dotted names
/// (the Prometheus form writes `_` for `.`).
const NAMES: [&str; 18] = [
    HANDLE_REQUEST,
    HANDLE_LOGIN_REQUEST,
    REQUESTS,
    BARRIER_GET,
    BARRIER_PUT,
    BARRIER_DELETE,
    BARRIER_LIST,
    AUDIT_REQUEST_FAILURE,
    AUDIT_RESPONSE_FAILURE,
    QUOTA_RATE_LIMIT_VIOLATION,
    TOKEN_COUNT,
    NUM_LEASES,
    UNSEALED,
    SECRETS_DUE,
    SECRETS_OVERDUE,
    SECRETS_FAILING,
    ROTATIONS,
    SCHEDULER_PASS,
];

struct Installed {
    handle: PrometheusHandle,
    started: Instant,
}

static RECORDER: OnceLock<Option<Installed>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls are no-ops).
/// Returns `false` when another recorder was installed first, in which case
/// `sys/metrics` has nothing to render.
pub fn install() -> bool {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_quantiles(&[0.0, 0.5, 0.9, 0.99, 1.0])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(Installed {
                handle,
                started: Instant::now(),
            })
        })
        .is_some()
}

/// A metric handle registered once, on first use, after the recorder.
pub struct Metric<T>(LazyLock<T>);

/// A timing (summary) in milliseconds.
pub type Timing = Metric<metrics::Histogram>;
/// A monotonically increasing count.
pub type Count = Metric<metrics::Counter>;

macro_rules! timing {
    ($name:expr) => {
        Metric(LazyLock::new(|| {
            install();
            metrics::histogram!($name)
        }))
    };
}
macro_rules! count {
    ($name:expr $(, $k:literal => $v:literal)*) => {
        Metric(LazyLock::new(|| {
            install();
            metrics::counter!($name $(, $k => $v)*)
        }))
    };
}

/// Request timings.
pub static T_HANDLE_REQUEST: Timing = timing!(HANDLE_REQUEST);
/// Login request timings.
pub static T_HANDLE_LOGIN: Timing = timing!(HANDLE_LOGIN_REQUEST);
/// Rotation scheduler pass timings.
pub static T_SCHEDULER_PASS: Timing = timing!(SCHEDULER_PASS);
/// Barrier read timings.
pub static T_BARRIER_GET: Timing = timing!(BARRIER_GET);
/// Barrier write timings.
pub static T_BARRIER_PUT: Timing = timing!(BARRIER_PUT);
/// Barrier delete timings.
pub static T_BARRIER_DELETE: Timing = timing!(BARRIER_DELETE);
/// Barrier list timings.
pub static T_BARRIER_LIST: Timing = timing!(BARRIER_LIST);
static C_2XX: Count = count!(REQUESTS, "status" => "2xx");
static C_4XX: Count = count!(REQUESTS, "status" => "4xx");
static C_5XX: Count = count!(REQUESTS, "status" => "5xx");
/// Requests no audit device recorded.
pub static C_AUDIT_REQUEST_FAILURE: Count = count!(AUDIT_REQUEST_FAILURE);
/// Responses no audit device recorded.
pub static C_AUDIT_RESPONSE_FAILURE: Count = count!(AUDIT_RESPONSE_FAILURE);
/// Requests a rate-limit quota refused.
pub static C_QUOTA_RATE_LIMIT_VIOLATION: Count = count!(QUOTA_RATE_LIMIT_VIOLATION);
static C_ROTATION_OK: Count = count!(ROTATIONS, "result" => "success");
static C_ROTATION_FAILED: Count = count!(ROTATIONS, "result" => "failure");

impl Metric<metrics::Histogram> {
    /// Records the time since `start`.
    pub fn since(&self, start: Instant) {
        self.0.record(start.elapsed().as_secs_f64() * 1000.0);
    }

    /// A guard recording the time until it is dropped.
    pub fn time(&'static self) -> TimingGuard {
        TimingGuard {
            metric: self,
            start: Instant::now(),
        }
    }
}

impl Metric<metrics::Counter> {
    /// Adds one.
    pub fn incr(&self) {
        self.0.increment(1);
    }
}

/// Records a [`Timing`] when dropped.
pub struct TimingGuard {
    metric: &'static Timing,
    start: Instant,
}

impl Drop for TimingGuard {
    fn drop(&mut self) {
        self.metric.since(self.start);
    }
}

/// Records one answered request: its time and its status class.
pub fn request_done(start: Instant, login: bool, status: u16) {
    if login {
        T_HANDLE_LOGIN.since(start);
    } else {
        T_HANDLE_REQUEST.since(start);
    }
    match status {
        500.. => C_5XX.incr(),
        400..=499 => C_4XX.incr(),
        _ => C_2XX.incr(),
    }
}

/// Records a finished rotation.
pub fn rotation_done(success: bool) {
    if success {
        C_ROTATION_OK.incr();
    } else {
        C_ROTATION_FAILED.incr();
    }
}

/// Gauges computed when `sys/metrics` is read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    /// Tokens stored.
    pub tokens: u64,
    /// Leases held.
    pub leases: u64,
    /// Whether unsealed.
    pub unsealed: bool,
    /// Lifecycle secrets due.
    pub due: u64,
    /// Lifecycle secrets overdue.
    pub overdue: u64,
    /// Lifecycle secrets whose rotation failed.
    pub failing: u64,
}

fn set_gauges(s: &Snapshot) {
    metrics::gauge!(TOKEN_COUNT).set(s.tokens as f64);
    metrics::gauge!(NUM_LEASES).set(s.leases as f64);
    metrics::gauge!(UNSEALED).set(if s.unsealed { 1.0 } else { 0.0 });
    metrics::gauge!(SECRETS_DUE).set(s.due as f64);
    metrics::gauge!(SECRETS_OVERDUE).set(s.overdue as f64);
    metrics::gauge!(SECRETS_FAILING).set(s.failing as f64);
}

/// The metrics in Prometheus' text exposition format.
pub fn prometheus(s: &Snapshot) -> String {
    install();
    set_gauges(s);
    match RECORDER.get().and_then(Option::as_ref) {
        Some(r) => r.handle.render(),
        None => String::new(),
    }
}

/// The metrics in Vault's JSON shape. Values are cumulative since the
/// server started (Vault's cover its last 10 s interval); `Rate` is the sum
/// per second over that time.
pub fn vault_json(s: &Snapshot) -> Value {
    let text = prometheus(s);
    let elapsed = RECORDER
        .get()
        .and_then(Option::as_ref)
        .map(|r| r.started.elapsed().as_secs_f64().max(1.0))
        .unwrap_or(1.0);
    let parsed = parse_exposition(&text);
    let mut gauges = Vec::new();
    let mut counters = Vec::new();
    let mut samples = Vec::new();
    for (family, kind, series) in parsed {
        let name = dotted(&family);
        for (labels, values) in series {
            let labels = Value::Object(labels);
            match kind.as_str() {
                "gauge" => gauges.push(json!({
                    "Name": name, "Value": values.get("").copied().unwrap_or(0.0), "Labels": labels,
                })),
                "counter" => {
                    let n = values.get("").copied().unwrap_or(0.0);
                    counters.push(json!({
                        "Name": name, "Count": n, "Rate": n / elapsed, "Sum": n,
                        "Min": 1, "Max": 1, "Mean": 1, "Stddev": 0, "Labels": labels,
                    }))
                }
                "summary" => {
                    let count = values.get("_count").copied().unwrap_or(0.0);
                    let sum = values.get("_sum").copied().unwrap_or(0.0);
                    let q = |k: &str| {
                        values
                            .get(k)
                            .copied()
                            .filter(|v| v.is_finite())
                            .unwrap_or(0.0)
                    };
                    samples.push(json!({
                        "Name": name, "Count": count, "Rate": sum / elapsed, "Sum": sum,
                        "Min": q("0"), "Max": q("1"),
                        "Mean": if count > 0.0 { sum / count } else { 0.0 },
                        "Stddev": 0, "Labels": labels,
                    }))
                }
                _ => {}
            }
        }
    }
    json!({
        "Timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": samples,
    })
}

/// Vault's dotted name for a Prometheus family name.
fn dotted(family: &str) -> String {
    NAMES
        .iter()
        .find(|n| n.replace('.', "_") == family)
        .map(|n| n.to_string())
        .unwrap_or_else(|| family.to_string())
}

/// One family's series: labels, and values keyed by suffix (`""`, `_sum`,
/// `_count`) or quantile.
type Series = Vec<(Map<String, Value>, std::collections::BTreeMap<String, f64>)>;

/// Reads the text format back into families: (name, type, series).
fn parse_exposition(text: &str) -> Vec<(String, String, Series)> {
    let mut out: Vec<(String, String, Series)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(t)) = (it.next(), it.next()) {
                out.push((n.to_string(), t.to_string(), Vec::new()));
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let Some((family, _, list)) = out.last_mut() else {
            continue;
        };
        let Some(suffix) = name.strip_prefix(family.as_str()) else {
            continue;
        };
        let mut map = Map::new();
        let mut key = suffix.to_string();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once('=') {
                let v = v.trim_matches('"').to_string();
                if k == "quantile" {
                    key = v;
                } else {
                    map.insert(k.to_string(), Value::String(v));
                }
            }
        }
        match list.iter_mut().find(|(l, _)| *l == map) {
            Some((_, values)) => {
                values.insert(key, value);
            }
            None => list.push((map, [(key, value)].into_iter().collect())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_metrics_render_in_both_shapes() {
        assert!(install());
        let start = Instant::now();
        request_done(start, false, 200);
        request_done(start, false, 404);
        {
            let _t = T_BARRIER_GET.time();
        }
        C_AUDIT_REQUEST_FAILURE.incr();
        let snap = Snapshot {
            tokens: 3,
            leases: 2,
            unsealed: true,
            due: 1,
            overdue: 0,
            failing: 4,
        };
        let text = prometheus(&snap);
        assert!(text.contains("vault_core_handle_request_count"), "{text}");
        assert!(text.contains("vault_expire_num_leases 2"), "{text}");
        assert!(
            text.contains("coffer_lifecycle_secrets_failing 4"),
            "{text}"
        );
        let j = vault_json(&snap);
        let gauge = |n: &str| {
            j["Gauges"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["Name"] == n)
                .cloned()
        };
        assert_eq!(gauge("vault.token.count").unwrap()["Value"], 3.0);
        let sample = j["Samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Name"] == "vault.barrier.get")
            .cloned()
            .unwrap();
        assert!(sample["Count"].as_f64().unwrap() >= 1.0);
        let failures = j["Counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == "vault.audit.log_request_failure")
            .cloned()
            .unwrap();
        assert!(failures["Count"].as_f64().unwrap() >= 1.0);
        let requests: Vec<&Value> = j["Counters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["Name"] == "coffer.core.requests")
            .collect();
        assert!(requests.iter().any(|c| c["Labels"]["status"] == "4xx"));
    }
}
