//! Times and durations as Vault prints and reads them. The duration grammar
//! itself is written once, in [`coffer_policy::duration`].

use chrono::{DateTime, SecondsFormat, Utc};
use coffer_policy::duration;

/// The current time.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// RFC 3339 with sub-second precision, as Vault prints times.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses a Go-style duration ("90d", "720h", "1h30m", "45s", "0") or a
/// plain number of seconds, as Vault accepts in its inputs, in whole seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    duration::parse_secs(s)
}

/// Formats seconds as Go's `time.Duration` prints them ("0s", "1h0m0s", "90m" → "1h30m0s").
pub fn format_duration(secs: u64) -> String {
    duration::format_go(secs)
}

/// Formats seconds as Vault prints durations in its warnings: Go's
/// `time.Duration` form without zero units ("2h", "2h1s", "1h30m", "0s").
pub fn format_duration_short(secs: u64) -> String {
    duration::format(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Some(90 * 86400));
        assert_eq!(parse_duration("720h"), Some(720 * 3600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("45"), Some(45));
        assert_eq!(parse_duration("0s"), Some(0));
        assert_eq!(parse_duration("1.5h"), Some(5400));
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("10"), Some(10));
        assert_eq!(parse_duration("h"), None);
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(5400), "1h30m0s");
        assert_eq!(format_duration(90), "1m30s");
        // Vault's warning form drops zero units.
        assert_eq!(format_duration_short(7201), "2h1s");
        assert_eq!(format_duration_short(5400), "1h30m");
        assert_eq!(format_duration_short(2_764_800), "768h");
        assert_eq!(format_duration_short(0), "0s");
    }
}
