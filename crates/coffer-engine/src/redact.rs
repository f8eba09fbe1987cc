//! Helpers for `Debug` impls of types that hold secrets: they print the
//! shape of a value (present or not, its keys) but never the value itself.

use std::fmt;

use serde_json::{Map, Value};

/// Prints `<redacted>` in place of a secret.
#[derive(Clone, Copy)]
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `Some(<redacted>)` or `None`: whether an optional secret is set.
pub fn opt<T>(value: &Option<T>) -> Option<Redacted> {
    value.as_ref().map(|_| Redacted)
}

/// Prints the keys of a JSON object, each with `<redacted>` for its value.
pub struct Keys<'a>(pub &'a Map<String, Value>);

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Redacted)))
            .finish()
    }
}
