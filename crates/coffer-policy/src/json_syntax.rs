//! The JSON front-end: `{"path": {"<pattern>": {...}, ...}}` → `path` blocks.
//!
//! `path` may also be a list of such objects (HCL1's JSON form of repeated
//! blocks), and a top-level `name` is ignored. JSON values carry no position,
//! so each block's line is that of the first occurrence of its pattern string
//! in the text (good enough to point at the block).

use serde_json::Value;

use super::parse::{quote, Node, NodeValue, PolicyError, RawBlock};

/// Parses JSON policy text into raw `path` blocks.
pub(crate) fn parse(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| PolicyError::new(Some(e.line()), format!("invalid JSON: {e}")))?;
    let Value::Object(top) = root else {
        return Err(PolicyError::new(Some(1), "a JSON policy must be an object"));
    };
    let mut blocks = Vec::new();
    for (key, value) in &top {
        match key.as_str() {
            "name" => {}
            "path" => match value {
                Value::Object(_) => collect_paths(text, value, &mut blocks)?,
                Value::Array(items) => {
                    for item in items {
                        collect_paths(text, item, &mut blocks)?;
                    }
                }
                _ => return Err(PolicyError::new(None, "\"path\" must be an object")),
            },
            other => {
                return Err(PolicyError::new(
                    line_of(text, key),
                    format!("unknown key {}", quote(other)),
                ))
            }
        }
    }
    Ok(blocks)
}

fn collect_paths(text: &str, value: &Value, out: &mut Vec<RawBlock>) -> Result<(), PolicyError> {
    let Value::Object(paths) = value else {
        return Err(PolicyError::new(None, "\"path\" must be an object"));
    };
    for (path, body) in paths {
        let line = line_of(text, path);
        let bodies: Vec<&Value> = match body {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for body in bodies {
            let Value::Object(fields) = body else {
                return Err(PolicyError::new(
                    line,
                    format!("path {} must map to an object", quote(path)),
                ));
            };
            let entries = fields
                .iter()
                .map(|(k, v)| (k.clone(), line, node(v, line)))
                .collect();
            out.push(RawBlock {
                path: path.clone(),
                line,
                entries,
            });
        }
    }
    Ok(())
}

fn node(value: &Value, line: Option<usize>) -> Node {
    let value = match value {
        Value::Null => NodeValue::Null,
        Value::Bool(b) => NodeValue::Bool(*b),
        Value::Number(n) => NodeValue::Number(n.clone()),
        Value::String(s) => NodeValue::String(s.clone()),
        Value::Array(items) => NodeValue::List(items.iter().map(|v| node(v, line)).collect()),
        Value::Object(map) => NodeValue::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), line, node(v, line)))
                .collect(),
        ),
    };
    Node { line, value }
}

/// The line of the first occurrence of `key` as a JSON string.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let needle = serde_json::to_string(key).ok()?;
    let offset = text.find(&needle)?;
    Some(text[..offset].bytes().filter(|b| *b == b'\n').count() + 1)
}
