//! `coffer read|write|delete|list|patch PATH`: any API path, as `vault read`
//! and friends reach it, plus the helpers the other access and lifecycle
//! commands share (data arguments, secret rendering, multi-column tables).

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::client::{Client, ConnectArgs};
use crate::output::{self, Format, FormatArgs};

/// Content type of a PATCH (a JSON merge patch, as `vault patch` sends it).
const MERGE_PATCH: &str = "application/merge-patch+json";

/// Arguments of `coffer read`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer read sys/mounts\n  \
    coffer read -field=password database/creds/readonly\n  \
    coffer read -format=json secret/data/app")]
pub struct ReadArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    /// Print only this field of the answer's data (or auth).
    #[arg(long)]
    field: Option<String>,
    /// The API path, without the leading /v1/.
    path: String,
    /// Query parameters as key=value.
    params: Vec<String>,
}

/// Arguments of `coffer write` and `coffer patch`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer write sys/policies/acl/app policy=@app.hcl\n  \
    coffer write auth/userpass/users/ana password=- < pw.txt\n  \
    echo '{\"ttl\": \"1h\"}' | coffer write auth/token/roles/ci -")]
pub struct WriteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    /// Print only this field of the answer's data (or auth).
    #[arg(long)]
    field: Option<String>,
    /// Send the request even without data (an empty JSON object).
    #[arg(long, short = 'f')]
    force: bool,
    /// The API path, without the leading /v1/.
    path: String,
    /// The data: key=value, key=@file, key=- (stdin), @file.json, or - (a JSON object on stdin).
    #[arg(allow_hyphen_values = true)]
    data: Vec<String>,
}

/// Arguments of `coffer delete`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer delete secret/data/app\n  \
    coffer delete auth/userpass/users/ana")]
pub struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    /// The API path, without the leading /v1/.
    path: String,
}

/// Arguments of `coffer list`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer list secret/metadata/\n  \
    coffer list -format=json auth/userpass/users")]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    /// The API path, without the leading /v1/.
    path: String,
}

/// Reports a usage error and returns `vault`'s exit code for it (1).
pub(crate) fn usage(message: impl std::fmt::Display) -> anyhow::Result<i32> {
    eprintln!("{message}");
    Ok(1)
}

/// `coffer read`: GET the path; exit 2 when nothing is there.
pub fn read(a: ReadArgs) -> anyhow::Result<i32> {
    let client = a.connect.client()?;
    let path = clean_path(&a.path);
    let query = match query_string(&a.params) {
        Ok(q) => q,
        Err(e) => return usage(format!("Failed to parse parameters: {e}")),
    };
    let full = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let Some(body) = client
        .read(&full)
        .with_context(|| format!("reading {path}"))?
    else {
        eprintln!("No value found at {path}");
        return Ok(2);
    };
    Ok(print_answer(&body, a.field.as_deref(), a.output.format))
}

/// `coffer write`: POST the data.
pub fn write(a: WriteArgs) -> anyhow::Result<i32> {
    send_data(a, Method::POST)
}

/// `coffer patch`: PATCH the data as a JSON merge patch.
pub fn patch(a: WriteArgs) -> anyhow::Result<i32> {
    send_data(a, Method::PATCH)
}

fn send_data(a: WriteArgs, method: Method) -> anyhow::Result<i32> {
    if a.data.is_empty() && !a.force {
        return usage("Must supply data or use -force");
    }
    let data = match parse_data(&a.data) {
        Ok(d) => d,
        Err(e) => return usage(format!("Failed to parse data: {e}")),
    };
    let client = a.connect.client()?;
    let path = clean_path(&a.path);
    let content_type = (method == Method::PATCH).then_some(MERGE_PATCH);
    let resp = client
        .send(method, path, Some(&Value::Object(data)), content_type)?
        .error_for_status()
        .with_context(|| format!("writing data to {path}"))?;
    match resp.body {
        Some(body) if !body.is_null() => {
            Ok(print_answer(&body, a.field.as_deref(), a.output.format))
        }
        _ => {
            if a.output.format == Format::Table {
                println!("Success! Data written to: {path}");
            }
            Ok(0)
        }
    }
}

/// `coffer delete`: DELETE the path.
pub fn delete(a: DeleteArgs) -> anyhow::Result<i32> {
    let client = a.connect.client()?;
    let path = clean_path(&a.path);
    let body = client
        .delete(path)
        .with_context(|| format!("deleting {path}"))?;
    match body {
        Some(body) if a.output.format == Format::Json => print!("{}", output::json(&body)),
        _ => println!("Success! Data deleted (if it existed) at: {path}"),
    }
    Ok(0)
}

/// `coffer list`: LIST the path; exit 2 when there is nothing.
pub fn list(a: ListArgs) -> anyhow::Result<i32> {
    let client = a.connect.client()?;
    let path = clean_path(&a.path);
    let keys = client
        .list(path)
        .with_context(|| format!("listing {path}"))?;
    print_keys(path, &keys, a.output.format)
}

/// Prints a list of keys as `vault list` does; exit 2 (and a message) when empty.
pub(crate) fn print_keys(path: &str, keys: &[String], format: Format) -> anyhow::Result<i32> {
    if format == Format::Json {
        print!("{}", output::json(&Value::from(keys.to_vec())));
        return Ok(if keys.is_empty() { 2 } else { 0 });
    }
    if keys.is_empty() {
        eprintln!("No value found at {path}");
        return Ok(2);
    }
    print!("{}", output::key_list(keys));
    Ok(0)
}

/// An API path as typed, without a leading slash or `v1/`.
pub(crate) fn clean_path(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    p.strip_prefix("v1/").unwrap_or(p)
}

/// Prints a server answer: one field, the whole JSON, or a `vault`-style table.
pub(crate) fn print_answer(body: &Value, field: Option<&str>, format: Format) -> i32 {
    if let Some(field) = field {
        return print_field(body, field, format);
    }
    print_warnings(body);
    if format == Format::Json {
        print!("{}", output::json(body));
    } else {
        print!("{}", render_secret(body));
    }
    0
}

/// Prints `field` from the answer's data (or its auth block, with the names
/// `vault` uses: `token`, `token_accessor`, ...). No trailing newline when
/// stdout is not a terminal, as `vault` does.
pub(crate) fn print_field(body: &Value, field: &str, format: Format) -> i32 {
    let from_data = body
        .get("data")
        .and_then(|d| d.get(field))
        .or_else(|| body.get(field).filter(|_| !is_envelope(body)));
    let from_auth = || {
        let rows = auth_rows(body.get("auth")?);
        rows.into_iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| Value::String(v))
    };
    let value = from_data.cloned().or_else(from_auth);
    let Some(value) = value else {
        eprintln!("Field {field:?} not present in secret");
        return 1;
    };
    let text = output::raw_field(&value, format);
    let mut out = std::io::stdout();
    let newline = if out.is_terminal() { "\n" } else { "" };
    // A closed stdout (e.g. `| head`) is not an error worth reporting.
    let _ = write!(out, "{text}{newline}");
    let _ = out.flush();
    0
}

/// Whether a body is Vault's response envelope (rather than bare data).
fn is_envelope(body: &Value) -> bool {
    ["request_id", "lease_id", "data", "auth"]
        .iter()
        .any(|k| body.get(k).is_some())
}

/// Prints the answer's warnings on stderr (stdout stays parseable).
pub(crate) fn print_warnings(body: &Value) {
    let Some(warnings) = body.get("warnings").and_then(Value::as_array) else {
        return;
    };
    for w in warnings.iter().filter_map(Value::as_str) {
        eprintln!("WARNING! {w}");
    }
}

/// An answer as `vault read` shows it: lease rows, token rows for an auth
/// block, then the data's keys in order.
pub(crate) fn render_secret(body: &Value) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let lease_id = body.get("lease_id").and_then(Value::as_str).unwrap_or("");
    let lease_duration = body
        .get("lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if !lease_id.is_empty() {
        rows.push(("lease_id".into(), lease_id.to_owned()));
        rows.push(("lease_duration".into(), human_duration(lease_duration)));
        let renewable = body
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        rows.push(("lease_renewable".into(), renewable.to_string()));
    } else if lease_duration > 0 {
        rows.push(("refresh_interval".into(), human_duration(lease_duration)));
    }
    if let Some(auth) = body.get("auth").filter(|a| !a.is_null()) {
        rows.extend(auth_rows(auth));
    }
    let data = if is_envelope(body) {
        body.get("data").filter(|d| !d.is_null())
    } else {
        Some(body)
    };
    match data {
        Some(Value::Object(map)) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            rows.extend(keys.into_iter().map(|k| (k.clone(), cell(&map[k]))));
        }
        Some(other) => rows.push(("value".into(), cell(other))),
        None => {}
    }
    if rows.is_empty() {
        return String::new();
    }
    output::table(&rows)
}

/// A table cell: Go's `%v`, with `n/a` for an empty string.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "n/a".into(),
        other => output::value_text(other),
    }
}

/// The rows `vault` prints for a login or token-create answer's auth block.
pub(crate) fn auth_rows(auth: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let text = |k: &str| auth.get(k).filter(|v| !v.is_null()).map(output::value_text);
    if let Some(t) = text("client_token") {
        rows.push(("token".into(), t));
    }
    if let Some(a) = text("accessor") {
        rows.push(("token_accessor".into(), a));
    }
    let duration = auth
        .get("lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    rows.push((
        "token_duration".into(),
        if duration == 0 {
            "∞".into()
        } else {
            human_duration(duration)
        },
    ));
    if let Some(r) = text("renewable") {
        rows.push(("token_renewable".into(), r));
    }
    for (key, label) in [
        ("token_policies", "token_policies"),
        ("identity_policies", "identity_policies"),
        ("policies", "policies"),
    ] {
        if let Some(v) = auth.get(key).filter(|v| !v.is_null()) {
            rows.push((label.into(), output::value_text(v)));
        }
    }
    if let Some(meta) = auth.get("metadata").and_then(Value::as_object) {
        let mut keys: Vec<&String> = meta.keys().collect();
        keys.sort();
        for k in keys {
            rows.push((format!("token_meta_{k}"), cell(&meta[k])));
        }
    }
    rows
}

/// Seconds as a Go-style duration without zero parts: `768h`, `1h30m`, `45s`.
pub(crate) fn human_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// A table of any number of columns under upper-case headers, aligned and
/// joined by four spaces, as `vault auth list` prints one.
pub(crate) fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("    ");
            }
            s.push_str(c);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(c.chars().count());
            s.push_str(&" ".repeat(pad));
        }
        format!("{}\n", s.trim_end())
    };
    let mut out = line(headers.iter().map(|h| (*h).to_owned()).collect());
    out.push_str(&line(
        headers
            .iter()
            .map(|h| "-".repeat(h.chars().count()))
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// Parses `vault write` data arguments from the real files and stdin.
pub(crate) fn parse_data(args: &[String]) -> Result<Map<String, Value>, String> {
    crate::input::parse(args, &mut crate::input::Real)
}

/// `key=value` arguments as a URL query string (percent-encoded).
pub(crate) fn query_string(params: &[String]) -> Result<String, String> {
    let mut parts = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let Some((k, v)) = p.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!("parameter {} is not of the form key=value", i + 1));
        };
        parts.push(format!("{}={}", encode(k), encode(v)));
    }
    Ok(parts.join("&"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends a request and turns an error status into an error naming `what`.
pub(crate) fn call(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
    what: &str,
) -> anyhow::Result<Option<Value>> {
    Ok(client
        .request(method, path, body)?
        .error_for_status()
        .with_context(|| what.to_owned())?
        .body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fake(String);

    impl crate::input::Source for Fake {
        fn file(&mut self, path: &str) -> std::io::Result<String> {
            match path {
                "obj.json" => Ok(r#"{"a": "1", "n": 2}"#.into()),
                "pem" => Ok("PEM\n".into()),
                _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "nope")),
            }
        }
        fn stdin(&mut self) -> std::io::Result<String> {
            Ok(std::mem::take(&mut self.0))
        }
    }

    fn parse(args: &[&str], stdin: &str) -> Result<Value, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        crate::input::parse(&args, &mut Fake(stdin.into())).map(Value::Object)
    }

    #[test]
    fn data_arguments_parse_like_vault_write() {
        assert_eq!(
            parse(&["a=b=c", "cert=@pem", "note=-"], "in").unwrap(),
            json!({"a": "b=c", "cert": "PEM\n", "note": "in"})
        );
        assert_eq!(
            parse(&["@obj.json"], "").unwrap(),
            json!({"a": "1", "n": 2})
        );
        assert_eq!(parse(&["-"], r#"{"x": true}"#).unwrap(), json!({"x": true}));
        assert_eq!(
            parse(&["k=1", "k=2"], "").unwrap(),
            json!({"k": ["1", "2"]})
        );
        let err = parse(&["s3cr3t-lookalike"], "").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(parse(&["=v"], "").is_err());
        assert!(parse(&["a=-", "b=-"], "x").is_err());
        assert!(parse(&["-"], "[1]").is_err());
    }

    #[test]
    fn durations_tables_and_queries() {
        assert_eq!(human_duration(2_764_800), "768h");
        assert_eq!(human_duration(5400), "1h30m");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(
            grid(&["PATH", "TYPE"], &[vec!["token/".into(), "token".into()]]),
            "PATH      TYPE\n----      ----\ntoken/    token\n"
        );
        assert_eq!(
            query_string(&["a=b c".into(), "x=1&2".into()]).unwrap(),
            "a=b%20c&x=1%262"
        );
        assert!(query_string(&["nope".into()]).is_err());
    }

    #[test]
    fn secrets_render_leases_auth_and_data() {
        let body = json!({"lease_id": "db/creds/r/abc", "lease_duration": 3600, "renewable": true,
                          "data": {"username": "u", "empty": ""}, "auth": null});
        let text = render_secret(&body);
        assert!(text.contains("lease_duration     1h\n"), "{text}");
        assert!(text.contains("empty              n/a\n"), "{text}");
        let login = json!({"auth": {"client_token": "t", "accessor": "a", "lease_duration": 0,
                                    "renewable": false, "policies": ["default"],
                                    "metadata": {"user": "ana"}}, "data": null});
        let text = render_secret(&login);
        assert!(text.contains("token_duration     ∞\n"), "{text}");
        assert!(text.contains("token_meta_user    ana\n"), "{text}");
    }
}
