//! The HCL front-end: HCL text → `path` blocks of [`Node`]s with lines.
//!
//! Parsing uses `hcl-edit` (re-exported by `hcl-rs`), which keeps byte spans,
//! so errors can name lines. Besides `path` blocks, the top level may hold a
//! `name` attribute (ignored, as Vault does). Inside a `path` block,
//! `allowed_parameters { ... }` written as a nested block (HCL1 style) is read
//! like `allowed_parameters = { ... }`.

use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Body, Structure};
use hcl::edit::Span;

use super::parse::{quote, Node, NodeValue, PolicyError, RawBlock};

/// Maps byte offsets to 1-based line numbers.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        let offset = span?.start;
        Some(self.starts.partition_point(|s| *s <= offset))
    }
}

/// Parses HCL policy text into raw `path` blocks.
pub(crate) fn parse(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    let body = hcl::edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        PolicyError::new(
            Some(loc.line()),
            format!("syntax error at column {}: {}", loc.column(), e.message()),
        )
    })?;
    let lines = Lines::new(text);
    let mut blocks = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) if attr.key.as_str() == "name" => {}
            Structure::Attribute(attr) => {
                return Err(PolicyError::new(
                    lines.of(attr.span()),
                    format!("unknown key {}", quote(attr.key.as_str())),
                ))
            }
            Structure::Block(block) if block.ident.as_str() == "path" => {
                let line = lines.of(block.span());
                let [label] = block.labels.as_slice() else {
                    return Err(PolicyError::new(
                        line,
                        "a path block needs exactly one label: path \"<pattern>\" { ... }",
                    ));
                };
                blocks.push(RawBlock {
                    path: label.as_str().to_string(),
                    line,
                    entries: block_entries(&block.body, &lines)?,
                });
            }
            Structure::Block(block) => {
                return Err(PolicyError::new(
                    lines.of(block.span()),
                    format!("unknown key {}", quote(block.ident.as_str())),
                ))
            }
        }
    }
    Ok(blocks)
}

/// The attributes of a `path` block body (and HCL1-style parameter blocks).
fn block_entries(
    body: &Body,
    lines: &Lines,
) -> Result<Vec<(String, Option<usize>, Node)>, PolicyError> {
    let mut entries = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => entries.push((
                attr.key.as_str().to_string(),
                lines.of(attr.span()),
                node(&attr.value, lines)?,
            )),
            Structure::Block(block)
                if block.labels.is_empty()
                    && matches!(
                        block.ident.as_str(),
                        "allowed_parameters" | "denied_parameters"
                    ) =>
            {
                let line = lines.of(block.span());
                let inner = block_entries(&block.body, lines)?;
                entries.push((
                    block.ident.as_str().to_string(),
                    line,
                    Node {
                        line,
                        value: NodeValue::Map(inner),
                    },
                ));
            }
            Structure::Block(block) => {
                return Err(PolicyError::new(
                    lines.of(block.span()),
                    format!("unknown key {}", quote(block.ident.as_str())),
                ))
            }
        }
    }
    Ok(entries)
}

/// Converts a literal HCL expression; anything computed is refused.
fn node(expr: &Expression, lines: &Lines) -> Result<Node, PolicyError> {
    let line = lines.of(expr.span());
    let value = match expr {
        Expression::Null(_) => NodeValue::Null,
        Expression::Bool(b) => NodeValue::Bool(*b.value()),
        Expression::Number(n) => {
            let n = n.value();
            let json = if let Some(u) = n.as_u64() {
                Some(serde_json::Number::from(u))
            } else if let Some(i) = n.as_i64() {
                Some(serde_json::Number::from(i))
            } else {
                n.as_f64().and_then(serde_json::Number::from_f64)
            };
            NodeValue::Number(json.ok_or_else(|| PolicyError::new(line, "invalid number"))?)
        }
        Expression::String(s) => NodeValue::String(s.value().clone()),
        Expression::Array(items) => NodeValue::List(
            items
                .iter()
                .map(|e| node(e, lines))
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(object) => {
            let mut entries = Vec::with_capacity(object.len());
            for (key, value) in object.iter() {
                let key_line = lines.of(key.span());
                let key = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_string(),
                    ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                    ObjectKey::Expression(_) => {
                        return Err(PolicyError::new(key_line, "object keys must be strings"))
                    }
                };
                entries.push((key, key_line, node(value.expr(), lines)?));
            }
            NodeValue::Map(entries)
        }
        Expression::Parenthesis(p) => return node(p.inner(), lines),
        Expression::StringTemplate(_) => {
            return Err(PolicyError::new(
                line,
                "template interpolation (${...} or %{...}) is not supported; \
                 write $${ for a literal ${",
            ))
        }
        Expression::HeredocTemplate(_) => {
            return Err(PolicyError::new(
                line,
                "heredoc strings are not supported; use a quoted string",
            ))
        }
        _ => {
            return Err(PolicyError::new(
                line,
                "expressions are not supported; use a literal value",
            ))
        }
    };
    Ok(Node { line, value })
}
