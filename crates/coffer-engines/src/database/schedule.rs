//! When a static role is next rotated: every `rotation_period`, or at the
//! times of a cron `rotation_schedule` (UTC, five fields as Vault's) within
//! an optional `rotation_window`.

use chrono::{DateTime, Duration, Utc};
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Vault's smallest rotation period.
pub const MIN_PERIOD: u64 = 5;
/// Vault's smallest rotation window.
pub const MIN_WINDOW: u64 = 3600;

/// A static role's rotation cadence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cadence {
    /// Every so many seconds after the last rotation.
    Period(u64),
    /// At the times of a cron expression; `window` seconds (0: no limit)
    /// after each time in which the rotation may still run.
    Schedule {
        /// The cron expression.
        cron: String,
        /// Seconds after a scheduled time during which it may run (0: unbounded).
        window: u64,
    },
}

/// Parses a cron expression (five fields, or `@hourly`-style aliases).
pub fn parse_cron(expr: &str) -> Result<Cron> {
    let fields = expr.split_whitespace().count();
    if !(expr.trim_start().starts_with('@') || fields == 5) {
        return Err(Error::bad(
            "rotation_schedule: expected a standard cron expression with five fields",
        ));
    }
    Cron::new(expr)
        .parse()
        .map_err(|e| Error::bad(format!("rotation_schedule: invalid cron expression: {e}")))
}

/// Longest span added to a time (100 years): larger inputs are capped so
/// date arithmetic can never overflow.
const MAX_SPAN: u64 = 100 * 365 * 86_400;

/// `t` plus `s` seconds, with `s` capped at [`MAX_SPAN`]; saturates at the
/// latest representable time.
pub fn add_secs(t: DateTime<Utc>, s: u64) -> DateTime<Utc> {
    let span = Duration::seconds(i64::try_from(s.min(MAX_SPAN)).unwrap_or(0));
    t.checked_add_signed(span)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Cadence {
    /// Checks Vault's limits.
    pub fn validate(&self) -> Result<()> {
        match self {
            Cadence::Period(p) if *p < MIN_PERIOD => Err(Error::bad(format!(
                "rotation_period must be {MIN_PERIOD} seconds or more"
            ))),
            Cadence::Period(_) => Ok(()),
            Cadence::Schedule { cron, window } => {
                parse_cron(cron)?;
                if *window != 0 && *window < MIN_WINDOW {
                    return Err(Error::bad(format!(
                        "rotation_window must be {MIN_WINDOW} seconds or more"
                    )));
                }
                Ok(())
            }
        }
    }

    /// The next rotation after a rotation at `last`.
    pub fn next_after(&self, last: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Cadence::Period(p) => add_secs(last, *p),
            Cadence::Schedule { cron, .. } => parse_cron(cron)
                .ok()
                .and_then(|c| c.find_next_occurrence(&last, false).ok())
                // An expression that never fires again: push it far away.
                .unwrap_or_else(|| add_secs(last, 3650 * 86_400)),
        }
    }

    /// Whether a rotation due at `due` may still run at `at` (inside the window).
    pub fn in_window(&self, due: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        match self {
            Cadence::Schedule { window, .. } if *window > 0 => at <= add_secs(due, *window),
            _ => true,
        }
    }

    /// The seconds of a period (0 for a schedule), as `rotation_period` reads.
    pub fn period(&self) -> u64 {
        match self {
            Cadence::Period(p) => *p,
            Cadence::Schedule { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn periods() {
        let c = Cadence::Period(3600);
        assert!(c.validate().is_ok());
        assert_eq!(
            c.next_after(t("2026-01-01T00:00:00Z")),
            t("2026-01-01T01:00:00Z")
        );
        assert!(Cadence::Period(4).validate().is_err());
    }

    #[test]
    fn huge_spans_do_not_overflow() {
        let c = Cadence::Period(u64::MAX);
        assert!(c.next_after(t("2026-01-01T00:00:00Z")) > t("2100-01-01T00:00:00Z"));
        assert_eq!(
            add_secs(DateTime::<Utc>::MAX_UTC, 10),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn schedules() {
        let c = Cadence::Schedule {
            cron: "0 3 * * SAT".into(),
            window: 7200,
        };
        assert!(c.validate().is_ok());
        // 2026-01-01 is a Thursday; the next Saturday 03:00 is the 3rd.
        let next = c.next_after(t("2026-01-01T00:00:00Z"));
        assert_eq!(next, t("2026-01-03T03:00:00Z"));
        assert!(c.in_window(next, t("2026-01-03T04:00:00Z")));
        assert!(!c.in_window(next, t("2026-01-03T05:30:00Z")));
        let short = Cadence::Schedule {
            cron: "* * * * *".into(),
            window: 60,
        };
        assert!(short.validate().is_err());
        let bad = Cadence::Schedule {
            cron: "not a cron".into(),
            window: 0,
        };
        assert!(bad.validate().is_err());
        let six = Cadence::Schedule {
            cron: "0 0 3 * * SAT".into(),
            window: 0,
        };
        assert!(six.validate().is_err());
    }
}
