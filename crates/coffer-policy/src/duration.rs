//! Go-style durations, as Vault reads and prints them: the one parser of
//! every duration Coffer accepts (TTLs in requests, policies'
//! `min_wrapping_ttl` / `max_wrapping_ttl`, configuration files).
//!
//! Accepts what Vault accepts: a number of seconds (`300`, `"300"`) or a
//! duration string made of `<number><unit>` terms (`"90s"`, `"1h30m"`,
//! `"1.5h"`, `"7d"`), with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`, `d`
//! (Go's `time.ParseDuration` plus Vault's `d`).

use std::time::Duration;

/// Parses a duration string; a bare number means seconds. `None` if invalid,
/// negative or overflowing.
pub fn parse(input: &str) -> Option<Duration> {
    let s = input.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok().map(Duration::from_secs);
    }
    let mut rest = s;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return None,
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut nanos = int.checked_mul(unit_nanos)?;
        // Fractions: keep at most 18 digits, enough for nanosecond precision.
        let frac_digits = &frac_part[..frac_part.len().min(18)];
        if !frac_digits.is_empty() {
            let frac: u128 = frac_digits.parse().ok()?;
            let scale = 10u128.pow(frac_digits.len() as u32);
            nanos = nanos.checked_add(frac.checked_mul(unit_nanos)? / scale)?;
        }
        total_nanos = total_nanos.checked_add(nanos)?;
        rest = tail;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

/// Formats a duration in the canonical form `parse` reads back: `1h30m`,
/// `45s`, `0s`, or `1500ms` / `10ns` when not a whole number of seconds.
pub fn format(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        let nanos = d.as_nanos();
        return if nanos.checked_rem(1_000_000) == Some(0) {
            format!("{}ms", nanos / 1_000_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Parses a duration in whole seconds (a fraction of a second is dropped,
/// as Vault's `parseutil.ParseDurationSecond` drops it). `None` if invalid.
pub fn parse_secs(input: &str) -> Option<u64> {
    parse(input).map(|d| d.as_secs())
}

/// Formats whole seconds as Go's `time.Duration` prints them, zero units
/// included: `"0s"`, `"1m30s"`, `"1h0m0s"` (Vault's `ttl` fields in reads).
pub fn format_go(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases = [
            ("300", Some(300)),
            ("300s", Some(300)),
            ("5m", Some(300)),
            ("1h30m", Some(5400)),
            ("1.5h", Some(5400)),
            ("2d", Some(172_800)),
            ("", None),
            ("-5s", None),
            ("5x", None),
            ("h", None),
            ("1..5h", None),
            ("99999999999999999999999h", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), want.map(Duration::from_secs), "{input:?}");
        }
        assert_eq!(parse("1500ms"), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::from_secs(0),
            Duration::from_secs(45),
            Duration::from_secs(5400),
            Duration::from_secs(90_061),
            Duration::from_millis(1500),
            Duration::from_nanos(10),
        ] {
            assert_eq!(parse(&format(d)), Some(d), "{d:?}");
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn whole_seconds_and_go_form() {
        // The cases of the former second-valued parser, unchanged.
        assert_eq!(parse_secs("90d"), Some(90 * 86400));
        assert_eq!(parse_secs("720h"), Some(720 * 3600));
        assert_eq!(parse_secs("1h30m"), Some(5400));
        assert_eq!(parse_secs("45"), Some(45));
        assert_eq!(parse_secs("0s"), Some(0));
        assert_eq!(parse_secs("1.5h"), Some(5400));
        assert_eq!(parse_secs(" 10 "), Some(10));
        assert_eq!(parse_secs("abc"), None);
        assert_eq!(parse_secs("10x"), None);
        assert_eq!(parse_secs("h"), None);
        assert_eq!(parse_secs("1h30"), None);
        assert_eq!(parse_secs("1h 30m"), None);
        assert_eq!(parse_secs("-1s"), None);
        assert_eq!(parse_secs("+1s"), None);
        // Sub-second terms add up before the fraction is dropped, as in Vault.
        assert_eq!(parse_secs("1500ms"), Some(1));
        assert_eq!(parse_secs("500ms500ms"), Some(1));
        assert_eq!(format_go(0), "0s");
        assert_eq!(format_go(5400), "1h30m0s");
        assert_eq!(format_go(90), "1m30s");
        // The short form drops zero units (Vault's warnings).
        assert_eq!(format(Duration::from_secs(7201)), "2h1s");
        assert_eq!(format(Duration::from_secs(2_764_800)), "768h");
    }
}
