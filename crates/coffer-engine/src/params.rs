//! Typed access to request parameters, with Vault's lenient coercions.

use serde_json::{Map, Value};

use crate::time::parse_duration;
use crate::{Error, Result};

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

    /// The page a paginated LIST asks for (OpenBao's `after` and `limit`):
    /// the entry to start after (empty: the start) and the most entries to
    /// return (`None` when `limit` is absent or not above zero: all).
    pub fn page(&self) -> Result<(String, Option<usize>)> {
        let after = self.str("after")?.unwrap_or_default().to_string();
        let limit = self
            .i64("limit")?
            .filter(|n| *n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        Ok((after, limit))
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
