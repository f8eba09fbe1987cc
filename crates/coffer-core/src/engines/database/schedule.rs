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

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 4_000))
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
            Cadence::Period(p) => last + secs(*p),
            Cadence::Schedule { cron, .. } => parse_cron(cron)
                .ok()
                .and_then(|c| c.find_next_occurrence(&last, false).ok())
                // An expression that never fires again: push it far away.
                .unwrap_or_else(|| last + Duration::days(3650)),
        }
    }

    /// Whether a rotation due at `due` may still run at `at` (inside the window).
    pub fn in_window(&self, due: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        match self {
            Cadence::Schedule { window, .. } if *window > 0 => at <= due + secs(*window),
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
