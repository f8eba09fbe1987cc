//! What Coffer records about a secret beyond its value: owner, type, origin,
//! rotation policy and the state of its rotations.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::util::{format_duration, rfc3339};
use crate::{Error, Result};

/// Kinds of secret.
pub const SECRET_TYPES: [&str; 7] = [
    "api_key",
    "token",
    "certificate",
    "db_credential",
    "password",
    "ssh_key",
    "other",
];

/// Rotators Coffer can run.
pub const ROTATORS: [&str; 6] = [
    "generate", "postgres", "command", "webhook", "pki", "manual",
];

/// Default lead time before a certificate's expiry at which rotation falls due.
pub const DEFAULT_CERT_LEAD: u64 = 30 * 86_400;
/// A due secret counts as overdue this long after its due time.
pub const OVERDUE_GRACE: i64 = 86_400;
/// History entries kept per secret.
const HISTORY: usize = 20;

/// How and when a secret is rotated.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Rotation {
    /// Period in seconds (e.g. 90 days).
    #[serde(default)]
    pub period: Option<u64>,
    /// Cron expression (UTC), instead of a period.
    #[serde(default)]
    pub cron: Option<String>,
    /// Allowed window of the day, `HH:MM-HH:MM` UTC (may wrap midnight).
    #[serde(default)]
    pub window: Option<String>,
    /// Rotator name: generate, postgres, command, webhook, pki or manual.
    pub rotator: String,
    /// Rotator settings.
    #[serde(default)]
    pub settings: Map<String, Value>,
    /// How long the `set` step waits for every live consumer to confirm the
    /// pending version (seconds); `None`: it does not wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_wait: Option<u64>,
    /// How recent a consumer's last report must be for the wait to count it
    /// (seconds; default [`super::consumers::DEFAULT_FRESHNESS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_freshness: Option<u64>,
}

/// Prints the settings' names only (a connection URL or header may hold a
/// credential).
impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("period", &self.period)
            .field("cron", &self.cron)
            .field("window", &self.window)
            .field("rotator", &self.rotator)
            .field("settings", &crate::redact::Keys(&self.settings))
            .field("consumer_wait", &self.consumer_wait)
            .field("consumer_freshness", &self.consumer_freshness)
            .finish()
    }
}

/// One rotation that is running: persisted before each step, so a restart
/// finds it and rolls it back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InFlight {
    /// The step being run: create, set, test, finish.
    pub step: String,
    /// The version that was current when it started.
    pub current_version: u64,
    /// The pending version, once created.
    pub pending_version: Option<u64>,
    /// When it started.
    pub started: DateTime<Utc>,
}

/// One past rotation attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RotationRecord {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// "success" or "failure".
    pub result: String,
    /// The step that failed, if any.
    #[serde(default)]
    pub step: Option<String>,
    /// Why it failed or ran (never a secret value).
    #[serde(default)]
    pub reason: String,
    /// The version current before.
    pub old_version: u64,
    /// The version current after (equal to old on failure).
    pub new_version: u64,
    /// The rotator that ran.
    pub rotator: String,
}

/// Rotation state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RotationState {
    /// Last successful rotation.
    #[serde(default)]
    pub last_rotated: Option<DateTime<Utc>>,
    /// Consecutive failures.
    #[serde(default)]
    pub failures: u32,
    /// The last failure's reason.
    #[serde(default)]
    pub last_error: Option<String>,
    /// No retry before this time (backoff).
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
    /// A rotation in progress.
    #[serde(default)]
    pub in_flight: Option<InFlight>,
    /// Recent attempts, newest last.
    #[serde(default)]
    pub history: Vec<RotationRecord>,
    /// The epoch second of the record's due-index entry, if it has one
    /// (kept by `store::save`; not part of the API's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_index: Option<i64>,
}

/// A secret's lifecycle metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Lifecycle {
    /// The owning team or person.
    #[serde(default)]
    pub owner: String,
    /// One of [`SECRET_TYPES`].
    #[serde(default)]
    pub secret_type: String,
    /// "internal" or "third_party".
    #[serde(default)]
    pub origin: String,
    /// The vendor of a third-party secret.
    #[serde(default)]
    pub vendor: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Rotation policy, if managed.
    #[serde(default)]
    pub rotation: Option<Rotation>,
    /// A hard expiry of the credential (e.g. a vendor key's end date).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Lease prefixes to revoke when the secret is compromised
    /// (e.g. `database/creds/app`).
    #[serde(default)]
    pub lease_prefixes: Vec<String>,
    /// Seconds before a certificate's NotAfter at which rotation falls due.
    #[serde(default)]
    pub certificate_lead_time: Option<u64>,
    /// When the lifecycle record was created (the first due time counts from here).
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    /// Rotation state.
    #[serde(default)]
    pub state: RotationState,
}

/// What is known of a certificate held in the secret's value.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// Subject DN.
    pub subject: String,
    /// Subject alternative names.
    pub sans: Vec<String>,
    /// Expiry.
    pub not_after: DateTime<Utc>,
}

impl CertInfo {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({"subject": self.subject, "sans": self.sans, "not_after": rfc3339(&self.not_after)})
    }
}

/// Where a secret stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No rotation policy, no expiry.
    Unmanaged,
    /// Managed and not due.
    Ok,
    /// Due now.
    Due,
    /// Past due by more than a day, expired, or an expired certificate.
    Overdue,
    /// The last rotation failed.
    Failing,
    /// A rotation is running.
    Rotating,
}

impl Status {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unmanaged => "unmanaged",
            Status::Ok => "ok",
            Status::Due => "due",
            Status::Overdue => "overdue",
            Status::Failing => "failing",
            Status::Rotating => "rotating",
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 4_000))
}

impl Lifecycle {
    /// When rotation is next due, from the policy, the certificate and the expiry.
    pub fn next_due(&self, cert: Option<&CertInfo>) -> Option<DateTime<Utc>> {
        let mut due: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| {
            due = Some(match due {
                Some(d) if d <= t => d,
                _ => t,
            })
        };
        if let Some(r) = &self.rotation {
            let base = self.state.last_rotated.or(self.created);
            if let (Some(period), Some(base)) = (r.period, base) {
                consider(base + secs(period));
            }
            if let (Some(expr), Some(base)) = (&r.cron, base) {
                if let Ok(c) = croner::Cron::new(expr).with_seconds_optional().parse() {
                    if let Ok(t) = c.find_next_occurrence(&base, false) {
                        consider(t);
                    }
                }
            }
        }
        if let Some(c) = cert {
            let lead = self.certificate_lead_time.unwrap_or(DEFAULT_CERT_LEAD);
            consider(c.not_after - secs(lead));
        }
        if let Some(e) = self.expires_at {
            consider(e);
        }
        due
    }

    /// The status at `now`.
    pub fn status(&self, now: DateTime<Utc>, cert: Option<&CertInfo>) -> Status {
        if self.state.in_flight.is_some() {
            return Status::Rotating;
        }
        if self.state.failures > 0 {
            return Status::Failing;
        }
        let expired =
            self.expires_at.is_some_and(|e| e <= now) || cert.is_some_and(|c| c.not_after <= now);
        if expired {
            return Status::Overdue;
        }
        // A missed rotation turns overdue after a grace day; a certificate or
        // an expiry date turns overdue only when it has actually expired.
        let policy_only = Lifecycle {
            expires_at: None,
            ..self.clone()
        };
        if policy_only
            .next_due(None)
            .is_some_and(|d| d + Duration::seconds(OVERDUE_GRACE) <= now)
        {
            return Status::Overdue;
        }
        match self.next_due(cert) {
            None if self.rotation.is_none() => Status::Unmanaged,
            None => Status::Ok,
            Some(d) if d <= now => Status::Due,
            Some(_) if self.rotation.is_none() && cert.is_none() && self.expires_at.is_none() => {
                Status::Unmanaged
            }
            Some(_) => Status::Ok,
        }
    }

    /// Appends to the bounded history.
    pub fn record(&mut self, rec: RotationRecord) {
        self.state.history.push(rec);
        let extra = self.state.history.len().saturating_sub(HISTORY);
        self.state.history.drain(..extra);
    }

    /// The record as the API shows it; rotator settings named like secrets are redacted.
    pub fn to_json(&self, now: DateTime<Utc>, cert: Option<&CertInfo>) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(settings) = v
            .get_mut("rotation")
            .and_then(|r| r.get_mut("settings"))
            .and_then(Value::as_object_mut)
        {
            redact(settings);
        }
        if let Some(r) = &self.rotation {
            if let Some(p) = r.period {
                v["rotation"]["period"] = json!(format_duration(p));
            }
            if let Some(w) = r.consumer_wait {
                v["rotation"]["consumer_wait"] = json!(format_duration(w));
            }
            if let Some(f) = r.consumer_freshness {
                v["rotation"]["consumer_freshness"] = json!(format_duration(f));
            }
        }
        if let Some(state) = v.get_mut("state").and_then(Value::as_object_mut) {
            state.remove("due_index");
        }
        v["status"] = json!(self.status(now, cert).as_str());
        v["next_due"] = json!(self.next_due(cert).map(|d| rfc3339(&d)));
        v["certificate"] = cert.map(CertInfo::to_json).unwrap_or(Value::Null);
        v
    }
}

/// Replaces the values of settings whose names suggest secrets.
pub fn redact(settings: &mut Map<String, Value>) {
    for (k, v) in settings.iter_mut() {
        let k = k.to_ascii_lowercase();
        if k.contains("password")
            || k.contains("secret")
            || k.contains("token")
            || k == "connection_url"
                && v.as_str()
                    .is_some_and(|s| s.contains('@') && s.contains(':'))
        {
            *v = json!("<redacted>");
        }
    }
}

/// Checks a `HH:MM-HH:MM` window and tells whether `now` lies in it.
pub fn in_window(window: &str, now: DateTime<Utc>) -> Result<bool> {
    let parse = |s: &str| -> Option<u32> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (a, b) = window
        .split_once('-')
        .and_then(|(a, b)| Some((parse(a)?, parse(b)?)))
        .ok_or_else(|| {
            Error::bad(format!(
                "rotation.window: expected HH:MM-HH:MM (UTC), got {window:?}"
            ))
        })?;
    use chrono::Timelike;
    let m = now.hour() * 60 + now.minute();
    Ok(if a <= b {
        a <= m && m < b
    } else {
        m >= a || m < b
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn period_due_and_overdue() {
        let mut lc = Lifecycle {
            rotation: Some(Rotation {
                period: Some(90 * 86400),
                rotator: "generate".into(),
                ..Default::default()
            }),
            created: Some(at("2026-01-01T00:00:00Z")),
            ..Default::default()
        };
        assert_eq!(lc.status(at("2026-02-01T00:00:00Z"), None), Status::Ok);
        assert_eq!(lc.status(at("2026-04-01T12:00:00Z"), None), Status::Due);
        assert_eq!(lc.status(at("2026-04-05T00:00:00Z"), None), Status::Overdue);
        lc.state.last_rotated = Some(at("2026-04-05T00:00:00Z"));
        assert_eq!(lc.status(at("2026-04-06T00:00:00Z"), None), Status::Ok);
        lc.state.failures = 1;
        assert_eq!(lc.status(at("2026-04-06T00:00:00Z"), None), Status::Failing);
    }

    #[test]
    fn certificates_fall_due_before_expiry() {
        let lc = Lifecycle::default();
        let cert = CertInfo {
            subject: "CN=x".into(),
            sans: vec![],
            not_after: at("2026-06-30T00:00:00Z"),
        };
        assert_eq!(
            lc.status(at("2026-05-01T00:00:00Z"), Some(&cert)),
            Status::Ok
        );
        assert_eq!(
            lc.status(at("2026-06-15T00:00:00Z"), Some(&cert)),
            Status::Due
        );
        assert_eq!(
            lc.status(at("2026-07-01T00:00:00Z"), Some(&cert)),
            Status::Overdue
        );
    }

    #[test]
    fn cron_schedule() {
        let lc = Lifecycle {
            rotation: Some(Rotation {
                cron: Some("0 3 * * *".into()),
                rotator: "generate".into(),
                ..Default::default()
            }),
            created: Some(at("2026-01-01T05:00:00Z")),
            ..Default::default()
        };
        assert_eq!(lc.next_due(None), Some(at("2026-01-02T03:00:00Z")));
    }

    #[test]
    fn windows() {
        assert!(in_window("01:00-05:00", at("2026-01-01T02:00:00Z")).unwrap());
        assert!(!in_window("01:00-05:00", at("2026-01-01T06:00:00Z")).unwrap());
        assert!(in_window("22:00-02:00", at("2026-01-01T23:30:00Z")).unwrap());
        assert!(in_window("22:00-02:00", at("2026-01-01T01:30:00Z")).unwrap());
        assert!(in_window("nonsense", at("2026-01-01T01:30:00Z")).is_err());
    }

    #[test]
    fn history_is_bounded_and_settings_redacted() {
        let mut lc = Lifecycle::default();
        for i in 0..30 {
            lc.record(RotationRecord {
                at: at("2026-01-01T00:00:00Z"),
                result: "success".into(),
                step: None,
                reason: String::new(),
                old_version: i,
                new_version: i + 1,
                rotator: "generate".into(),
            });
        }
        assert_eq!(lc.state.history.len(), 20);
        assert_eq!(lc.state.history[0].old_version, 10);
        let mut m = Map::new();
        m.insert("admin_password".into(), json!("hunter2-not-real"));
        m.insert("length".into(), json!(32));
        redact(&mut m);
        assert_eq!(m["admin_password"], json!("<redacted>"));
        assert_eq!(m["length"], json!(32));
    }
}
