//! Output formatting shared by the client commands: `vault`-style tables and JSON.

use serde_json::{Map, Value};

/// How a command prints data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable Key/Value tables, as `vault` prints them.
    #[default]
    Table,
    /// The JSON the server answered (pretty-printed).
    Json,
}

/// The `--format` flag shared by every command that prints data.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table, env = "COFFER_FORMAT")]
    pub format: Format,
}

/// Spaces between table columns (vault's columnize glue).
const GLUE: &str = "    ";

/// Pretty JSON with two-space indentation and a final newline.
pub fn json(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

/// A value as Go's `%v` prints it, which is what `vault` shows in tables:
/// `<nil>` for null, `[a b]` for lists, `map[k:v]` for objects (sorted keys).
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_text).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", value_text(&map[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// A table cell: like [`value_text`], but an empty string shows as `n/a`.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "n/a".into(),
        other => value_text(other),
    }
}

/// Rows under a header, columns aligned, joined by four spaces.
pub fn columns(header: (&str, &str), rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .chain([header.0.chars().count()])
        .max()
        .unwrap_or(0);
    let rule = |s: &str| "-".repeat(s.chars().count());
    let mut out = String::new();
    let all = [
        (header.0.to_owned(), header.1.to_owned()),
        (rule(header.0), rule(header.1)),
    ];
    for (k, v) in all.iter().chain(rows) {
        let pad = width - k.chars().count();
        let line = format!("{k}{}{GLUE}{v}", " ".repeat(pad));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A Key/Value table of explicit rows (kept in the given order).
pub fn table(rows: &[(String, String)]) -> String {
    columns(("Key", "Value"), rows)
}

/// A Key/Value table of a JSON object, keys sorted.
pub fn map_table(map: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let rows: Vec<(String, String)> = keys
        .into_iter()
        .map(|k| (k.clone(), cell(&map[k])))
        .collect();
    table(&rows)
}

/// A Key/Value table of any value: objects as [`map_table`], anything else
/// as a single `value` row.
pub fn value_table(value: &Value) -> String {
    match value {
        Value::Object(map) => map_table(map),
        other => table(&[("value".into(), cell(other))]),
    }
}

/// `header` centred in equal signs to `total` characters (vault's padEqualSigns).
pub fn pad_equal_signs(header: &str, total: usize) -> String {
    let mut signs = total.saturating_sub(header.chars().count() + 2);
    if signs == 0 {
        signs = 4;
    }
    if !signs.is_multiple_of(2) {
        signs += 1;
    }
    let side = "=".repeat(signs / 2);
    format!("{side} {header} {side}")
}

/// The section header vault prints above a map's table.
pub fn header_for_map(header: &str, map: Option<&Map<String, Value>>) -> String {
    let max_key = map
        .map(|m| m.keys().map(|k| k.chars().count()).max().unwrap_or(0))
        .unwrap_or(0);
    // Four for the column glue, five for "Value".
    pad_equal_signs(header, max_key + 4 + 5)
}

/// The `== Secret Path ==` block: header, path, blank line.
pub fn path_block(title: &str, path: &str) -> String {
    format!(
        "{}\n{path}\n\n",
        pad_equal_signs(title, path.chars().count())
    )
}

/// A `Keys` list, as `vault list` prints it.
pub fn key_list(keys: &[String]) -> String {
    let rows: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), String::new())).collect();
    columns(("Keys", ""), &rows)
}

/// A single field for `-field`: strings raw, other values as JSON in JSON
/// format and as `%v` text otherwise.
pub fn raw_field(value: &Value, format: Format) -> String {
    match (value, format) {
        (Value::String(s), _) => s.clone(),
        (other, Format::Json) => json(other).trim_end().to_owned(),
        (other, Format::Table) => value_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_like_vault() {
        let m = json!({"version": 1, "created_time": "t", "deletion_time": "", "custom_metadata": null});
        let text = map_table(m.as_object().unwrap());
        assert_eq!(
            text,
            "Key                Value\n\
             ---                -----\n\
             created_time       t\n\
             custom_metadata    <nil>\n\
             deletion_time      n/a\n\
             version            1\n"
        );
    }

    #[test]
    fn headers_pad_like_vault() {
        // vault: "== Secret Path ==" above "secret/data/creds" (17 chars).
        assert_eq!(pad_equal_signs("Secret Path", 17), "== Secret Path ==");
        assert_eq!(pad_equal_signs("Secret Path", 15), "= Secret Path =");
        // Width below the header: two signs a side.
        assert_eq!(pad_equal_signs("Data", 3), "== Data ==");
        let m = json!({"custom_metadata": 1});
        assert_eq!(
            header_for_map("Metadata", m.as_object()),
            "======= Metadata ======="
        );
    }

    #[test]
    fn go_style_values() {
        assert_eq!(value_text(&json!(["a", 1, true])), "[a 1 true]");
        assert_eq!(
            value_text(&json!({"b": "2", "a": null})),
            "map[a:<nil> b:2]"
        );
        assert_eq!(
            raw_field(&json!({"a": 1}), Format::Json),
            "{\n  \"a\": 1\n}"
        );
        assert_eq!(raw_field(&json!("s p"), Format::Table), "s p");
    }

    #[test]
    fn key_lists() {
        assert_eq!(
            key_list(&["a".into(), "dir/".into()]),
            "Keys\n----\na\ndir/\n"
        );
    }
}
