//! Small shared helpers: times, Go-style durations and request parameters.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The current time.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// RFC 3339 with sub-second precision, as Vault prints times.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses a Go-style duration ("90d", "720h", "1h30m", "45s", "0") or a
/// plain number of seconds, as Vault accepts in its inputs.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit: String = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms".into()
        } else {
            c.to_string()
        };
        let value: f64 = num.parse().ok()?;
        num.clear();
        let secs = match unit.as_str() {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            "d" => value * 86400.0,
            _ => return None,
        };
        if !secs.is_finite() || secs < 0.0 || secs > u64::MAX as f64 / 2.0 {
            return None;
        }
        total = total.checked_add(secs as u64)?;
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(total)
}

/// Formats seconds as Go's `time.Duration` prints them ("0s", "1h0m0s", "90m" → "1h30m0s").
pub fn format_duration(secs: u64) -> String {
    let h = secs / 3600;
    let m = (secs % 3600) / 60;
    let s = secs % 60;
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Formats seconds as Vault prints durations in its warnings: Go's
/// `time.Duration` form without zero units ("2h", "2h1s", "1h30m", "0s").
pub fn format_duration_short(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Typed access to request parameters with Vault's lenient coercions
/// (numbers given as strings, booleans as "true"), and clear errors.
pub struct Params<'a>(pub &'a Map<String, Value>);

impl Params<'_> {
    /// Whether `name` is present and not null.
    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_null())
    }

    /// An unsigned integer parameter.
    pub fn u64(&self, name: &str) -> Result<Option<u64>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or_else(|| Error::bad(format!("{name}: expected a non-negative integer"))),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| Error::bad(format!("{name}: expected a non-negative integer"))),
            Some(_) => Err(Error::bad(format!(
                "{name}: expected a non-negative integer"
            ))),
        }
    }

    /// A signed integer parameter.
    pub fn i64(&self, name: &str) -> Result<Option<i64>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Error::bad(format!("{name}: expected an integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Error::bad(format!("{name}: expected an integer"))),
            Some(_) => Err(Error::bad(format!("{name}: expected an integer"))),
        }
    }

    /// A boolean parameter.
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" | "" => Ok(Some(false)),
                _ => Err(Error::bad(format!("{name}: expected a boolean"))),
            },
            Some(Value::Number(n)) => Ok(Some(n.as_f64() != Some(0.0))),
            Some(_) => Err(Error::bad(format!("{name}: expected a boolean"))),
        }
    }

    /// A string parameter.
    pub fn str(&self, name: &str) -> Result<Option<&str>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::bad(format!("{name}: expected a string"))),
        }
    }

    /// A duration parameter: seconds as a number, or a Go-style string.
    pub fn duration(&self, name: &str) -> Result<Option<u64>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| Error::bad(format!("{name}: expected a duration"))),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => parse_duration(s)
                .map(Some)
                .ok_or_else(|| Error::bad(format!("{name}: invalid duration {s:?}"))),
            Some(_) => Err(Error::bad(format!("{name}: expected a duration"))),
        }
    }

    /// A list of strings: a JSON array, or a comma-separated string.
    pub fn str_list(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Error::bad(format!("{name}: expected a list of strings"))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(Error::bad(format!("{name}: expected a list of strings"))),
        }
    }

    /// A list of integers: a JSON array of numbers or numeric strings, or a comma-separated string.
    pub fn u64_list(&self, name: &str) -> Result<Option<Vec<u64>>> {
        let bad = || Error::bad(format!("{name}: expected a list of integers"));
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| p.parse::<u64>().map_err(|_| bad()))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Number(n) => n.as_u64().ok_or_else(bad),
                    Value::String(s) => s.trim().parse::<u64>().map_err(|_| bad()),
                    _ => Err(bad()),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(Value::Number(n)) => n.as_u64().map(|v| Some(vec![v])).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// A JSON object parameter.
    pub fn object(&self, name: &str) -> Result<Option<&Map<String, Value>>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(Error::bad(format!("{name}: expected an object"))),
        }
    }
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

    #[test]
    fn params_coerce() {
        let m: Map<String, Value> = serde_json::from_str(
            r#"{"a": "3", "b": 4, "c": "true", "d": [1, "2"], "e": "1,2", "f": -1, "g": {}}"#,
        )
        .unwrap();
        let p = Params(&m);
        assert_eq!(p.u64("a").unwrap(), Some(3));
        assert_eq!(p.u64("b").unwrap(), Some(4));
        assert_eq!(p.bool("c").unwrap(), Some(true));
        assert_eq!(p.u64_list("d").unwrap(), Some(vec![1, 2]));
        assert_eq!(p.u64_list("e").unwrap(), Some(vec![1, 2]));
        assert!(p.u64("f").is_err());
        assert!(p.str("b").is_err());
        assert!(p.object("g").unwrap().is_some());
        assert_eq!(p.u64("missing").unwrap(), None);
    }
}

/// A list as Vault's reads show it: `null` when empty (Go's nil slice),
/// else the strings.
pub fn list_or_null(items: &[String]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items.iter().cloned().map(Value::String).collect())
    }
}

/// Applies an RFC 7396 JSON merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod merge_tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn rfc7396_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1]});
        merge_patch(&mut t, &json!({"a": {"b": "c"}}));
        assert_eq!(t, json!({"a": {"b": "c"}}));
        let mut t = json!("x");
        merge_patch(&mut t, &json!({"a": null, "b": 1}));
        assert_eq!(t, json!({"b": 1}));
    }
}
