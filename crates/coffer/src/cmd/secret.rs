//! `coffer secret show|set|list`: a secret's lifecycle (owner, type, origin,
//! rotation cadence) over `<mount>/lifecycle/<path>`, and the inventory of
//! managed secrets from `sys/coffer/inventory`.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::generic::{self, call, usage};
use crate::client::{Client, ConnectArgs};
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer secret`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Show a secret's lifecycle: owner, type, rotation, status, history.
    #[command(after_help = "Examples:\n  \
        coffer secret show secret/billing/stripe\n  \
        coffer secret show -format=json secret/billing/stripe")]
    Show(Target),
    /// Set (merge) a secret's lifecycle fields and rotation policy.
    #[command(after_help = "Examples:\n  \
        coffer secret set secret/billing/stripe -owner=payments -type=api_key \\\n      \
            -origin=third_party -vendor=Stripe -expires-at=2027-01-31T00:00:00Z\n  \
        coffer secret set secret/app/db -rotate-every=30d -window=02:00-04:00 \\\n      \
            -rotator=postgres -setting name=app-db -setting role=app\n  \
        coffer secret set secret/app/key -rotate-cron=\"0 3 * * 1\" -rotator=command \\\n      \
            -setting name=rotate-key\n  \
        coffer secret set secret/app/db -setting length=40 -unset-setting symbols\n\n\
        -setting and -unset-setting change only the settings they name.\n\
        command, webhook, postgres and pki rotators are declared in the server's \
        configuration ([rotator.NAME]) and named with -setting name=NAME; \
        choosing one needs sudo on the lifecycle path.")]
    Set(Box<SetArgs>),
    /// List managed secrets with their status (the inventory).
    #[command(after_help = "Examples:\n  \
        coffer secret list\n  \
        coffer secret list --due --owner payments\n  \
        coffer secret list --failing -format=json")]
    List(ListArgs),
}

/// A secret named on the command line.
#[derive(clap::Args)]
pub(crate) struct Target {
    /// KV v2 mount; when given, PATH is relative to it.
    #[arg(long, value_name = "MOUNT")]
    mount: Option<String>,
    /// The secret: `<mount>/<path>` (e.g. secret/billing/stripe).
    path: String,
}

impl Target {
    /// The API path `<mount>/<endpoint>/<path>`, or a usage message.
    pub(crate) fn api(&self, endpoint: &str) -> Result<(String, String), String> {
        split(self.mount.as_deref(), &self.path)
            .map(|(m, p)| (format!("{m}/{endpoint}/{p}"), format!("{m}/{p}")))
    }
}

/// Splits a secret path into its mount (first segment, or `mount`) and the
/// path inside it; a `data/` segment after the mount is dropped.
pub(crate) fn split(mount: Option<&str>, path: &str) -> Result<(String, String), String> {
    let path = generic::clean_path(path.trim()).trim_end_matches('/');
    let (m, rest) = match mount.map(|m| m.trim().trim_matches('/')) {
        Some(m) if !m.is_empty() => (m.to_owned(), path.to_owned()),
        Some(_) => return Err("-mount must not be empty".into()),
        None => match path.split_once('/') {
            Some((m, rest)) => (m.to_owned(), rest.to_owned()),
            None => {
                return Err(format!(
                    "{path:?} names no secret: use <mount>/<path>, e.g. secret/billing/stripe"
                ))
            }
        },
    };
    let rest = rest
        .strip_prefix("data/")
        .unwrap_or(&rest)
        .trim_start_matches('/');
    if rest.is_empty() || m.is_empty() {
        return Err(format!("{path:?} names no secret inside the mount {m:?}"));
    }
    Ok((m, rest.to_owned()))
}

/// Arguments of `secret set`.
#[derive(clap::Args)]
struct SetArgs {
    #[command(flatten)]
    target: Target,
    /// The owning team or person.
    #[arg(long)]
    owner: Option<String>,
    /// api_key, token, certificate, db_credential, password, ssh_key or other.
    #[arg(long = "type", value_name = "TYPE")]
    secret_type: Option<String>,
    /// internal, third_party or imported (found by `coffer scan --import`).
    #[arg(long)]
    origin: Option<String>,
    /// The vendor of a third-party secret (implies -origin=third_party).
    #[arg(long)]
    vendor: Option<String>,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// Hard expiry (RFC 3339); empty clears it.
    #[arg(long, value_name = "RFC3339")]
    expires_at: Option<String>,
    /// Rotate this often, e.g. 90d or 720h.
    #[arg(long, value_name = "DURATION", conflicts_with = "rotate_cron")]
    rotate_every: Option<String>,
    /// Rotate on this cron schedule (UTC), e.g. "0 3 * * *".
    #[arg(long, value_name = "CRON")]
    rotate_cron: Option<String>,
    /// Rotate only within this window of the day (UTC), HH:MM-HH:MM.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    window: Option<String>,
    /// generate, postgres, command, webhook, pki or manual.
    #[arg(long)]
    rotator: Option<String>,
    /// Rotator setting key=value (repeatable), merged into the current
    /// settings (other keys are kept; choosing another rotator starts from
    /// none); JSON values are sent as JSON. generate: fields, length, format,
    /// symbols; postgres: name, role or strategy and roles; command and
    /// webhook: name (the rotator declared in the server configuration);
    /// pki: name, common_name, alt_names, ip_sans.
    #[arg(long = "setting", value_name = "K=V")]
    settings: Vec<String>,
    /// Remove this rotator setting (repeatable).
    #[arg(long = "unset-setting", value_name = "K")]
    unset_settings: Vec<String>,
    /// Make a rotation's set step wait this long (e.g. 30s) for every live
    /// consumer (the agents and `coffer run --watch` processes that render
    /// the secret) to confirm the new version; the rotation fails at set
    /// when one does not. 0 turns the wait off.
    #[arg(long, value_name = "DURATION")]
    consumer_wait: Option<String>,
    /// How recent a consumer's last report must be for the wait to count
    /// it (default 5m).
    #[arg(long, value_name = "DURATION")]
    consumer_freshness: Option<String>,
    /// Lease prefix revoked when the secret is compromised (repeatable).
    #[arg(long = "lease-prefix", value_name = "PREFIX")]
    lease_prefixes: Vec<String>,
    /// Stop managing rotation (removes the rotation policy).
    #[arg(long, conflicts_with_all = ["rotate_every", "rotate_cron", "window", "rotator", "settings", "unset_settings"])]
    no_rotation: bool,
}

/// Arguments of `secret list`.
#[derive(clap::Args)]
struct ListArgs {
    /// Only secrets due for rotation (overdue ones included).
    #[arg(long)]
    due: bool,
    /// Only overdue secrets.
    #[arg(long)]
    overdue: bool,
    /// Only secrets whose last rotation failed.
    #[arg(long)]
    failing: bool,
    /// Only this owner's secrets.
    #[arg(long)]
    owner: Option<String>,
    /// Only secrets of this type.
    #[arg(long = "type", value_name = "TYPE")]
    secret_type: Option<String>,
    /// Only internal, third_party or imported secrets.
    #[arg(long)]
    origin: Option<String>,
}

/// Runs a secret subcommand, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let client = args.connect.client()?;
    let format = args.output.format;
    match args.command {
        Command::Show(t) => show(&client, &t, format),
        Command::Set(a) => set(&client, *a),
        Command::List(a) => list(&client, a, format),
    }
}

fn show(client: &Client, t: &Target, format: Format) -> anyhow::Result<i32> {
    let (api, full) = match t.api("lifecycle") {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let Some(body) = client
        .read(&api)
        .with_context(|| format!("reading the lifecycle of {full}"))?
    else {
        eprintln!("No lifecycle recorded for {full} (set one with `coffer secret set`)");
        return Ok(2);
    };
    if format == Format::Json {
        print!("{}", output::json(&body));
        return Ok(0);
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    print!("{}", output::path_block("Secret", &full));
    print!("{}", render_lifecycle(&data));
    Ok(0)
}

/// The lifecycle record as a Key/Value table (nested fields dotted), then
/// the rotation history as a table.
fn render_lifecycle(data: &Value) -> String {
    let mut rows = Vec::new();
    let mut history = &Value::Null;
    let mut consumers = &Value::Null;
    if let Some(map) = data.as_object() {
        for (k, v) in map {
            match (k.as_str(), v) {
                ("consumers", _) => consumers = v,
                ("state", Value::Object(state)) => {
                    for (sk, sv) in state {
                        match sk.as_str() {
                            "history" => history = sv,
                            _ => rows.push((format!("state.{sk}"), generic::cell(sv))),
                        }
                    }
                }
                (_, Value::Object(inner)) if !inner.is_empty() => {
                    for (ik, iv) in inner {
                        rows.push((format!("{k}.{ik}"), generic::cell(iv)));
                    }
                }
                _ => rows.push((k.clone(), generic::cell(v))),
            }
        }
    }
    rows.sort();
    let mut out = output::table(&rows);
    if let Some(entries) = consumers.as_array().filter(|c| !c.is_empty()) {
        let field = |e: &Value, k: &str| {
            e.get(k)
                .map(|v| short_time(&generic::cell(v)))
                .unwrap_or_else(|| "-".into())
        };
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    field(e, "consumer_id"),
                    field(e, "kind"),
                    field(e, "version"),
                    field(e, "reported_at"),
                    field(e, "live"),
                    field(e, "owner"),
                ]
            })
            .collect();
        out.push_str("\nConsumers (the versions they hold)\n");
        out.push_str(&generic::grid(
            &["CONSUMER", "KIND", "VERSION", "REPORTED", "LIVE", "OWNER"],
            &rows,
        ));
    }
    if let Some(entries) = history.as_array().filter(|h| !h.is_empty()) {
        let field = |e: &Value, k: &str| {
            e.get(k)
                .map(|v| short_time(&generic::cell(v)))
                .unwrap_or_else(|| "-".into())
        };
        let rows: Vec<Vec<String>> = entries
            .iter()
            .rev()
            .map(|e| {
                vec![
                    field(e, "at"),
                    field(e, "result"),
                    format!("{} -> {}", field(e, "old_version"), field(e, "new_version")),
                    field(e, "rotator"),
                    field(e, "reason"),
                ]
            })
            .collect();
        out.push_str("\nRotation history (newest first)\n");
        out.push_str(&generic::grid(
            &["AT", "RESULT", "VERSIONS", "ROTATOR", "REASON"],
            &rows,
        ));
    }
    out
}

fn set(client: &Client, a: SetArgs) -> anyhow::Result<i32> {
    let (api, full) = match a.target.api("lifecycle") {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let body = match set_body(&a) {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    if body.is_empty() {
        return usage("Nothing to set: give at least one of -owner, -type, -origin, -vendor, -description, -expires-at, -rotate-every, -rotate-cron, -window, -rotator, -setting, -unset-setting, -consumer-wait, -consumer-freshness, -lease-prefix or -no-rotation");
    }
    let creates_value = a.rotator.as_deref().is_some_and(|r| r != "manual");
    if !creates_value && is_absent(client, &a.target)? {
        eprintln!(
            "Error: no secret at {full}: write it first with `coffer kv put {full} KEY=VALUE`, \
             then describe it with `coffer secret set`.\n\
             (To have a rotator create its first value, give -rotator=NAME, then run \
             `coffer rotate {full}`.)"
        );
        return Ok(2);
    }
    call(
        client,
        Method::POST,
        &api,
        Some(&Value::Object(body)),
        &format!("writing the lifecycle of {full}"),
    )?;
    println!("Success! Lifecycle of {full} updated");
    Ok(0)
}

/// Whether neither a KV secret nor a lifecycle record is at the target (a
/// typo, most likely). An answer other than 404 (say, no permission to read
/// metadata) is not taken as absence: the write goes ahead.
fn is_absent(client: &Client, target: &Target) -> anyhow::Result<bool> {
    for endpoint in ["metadata", "lifecycle"] {
        let Ok((api, _)) = target.api(endpoint) else {
            return Ok(false);
        };
        if client.request(Method::GET, &api, None)?.status != 404 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The JSON body of a lifecycle write: only the fields given.
fn set_body(a: &SetArgs) -> Result<Map<String, Value>, String> {
    let mut body = Map::new();
    for (key, v) in [
        ("owner", &a.owner),
        ("secret_type", &a.secret_type),
        ("origin", &a.origin),
        ("vendor", &a.vendor),
        ("description", &a.description),
        ("expires_at", &a.expires_at),
    ] {
        if let Some(v) = v {
            body.insert(key.into(), json!(v));
        }
    }
    if !a.lease_prefixes.is_empty() {
        body.insert("lease_prefixes".into(), json!(a.lease_prefixes));
    }
    if a.no_rotation {
        body.insert("rotation".into(), Value::Null);
        return Ok(body);
    }
    let mut rotation = Map::new();
    for (key, v) in [
        ("period", &a.rotate_every),
        ("cron", &a.rotate_cron),
        ("window", &a.window),
        ("rotator", &a.rotator),
        ("consumer_wait", &a.consumer_wait),
        ("consumer_freshness", &a.consumer_freshness),
    ] {
        if let Some(v) = v {
            rotation.insert(key.into(), json!(v));
        }
    }
    if !a.settings.is_empty() || !a.unset_settings.is_empty() {
        let mut settings = parse_settings(&a.settings)?;
        for k in &a.unset_settings {
            let k = k.trim();
            if k.is_empty() {
                return Err("-unset-setting needs a setting name".into());
            }
            if settings.contains_key(k) {
                return Err(format!("-setting and -unset-setting both name {k:?}"));
            }
            // The server removes a setting sent as null.
            settings.insert(k.to_owned(), Value::Null);
        }
        rotation.insert("settings".into(), Value::Object(settings));
    }
    if !rotation.is_empty() {
        body.insert("rotation".into(), Value::Object(rotation));
    }
    Ok(body)
}

/// `key=value` rotator settings; a value that parses as JSON (a list, an
/// object, a number, a boolean) is sent as that JSON, anything else as a
/// string. Errors name the key, never the value.
fn parse_settings(items: &[String]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (i, item) in items.iter().enumerate() {
        let Some((k, v)) = item.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(format!(
                "-setting number {} is not of the form key=value",
                i + 1
            ));
        };
        let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| json!(v));
        out.insert(k.trim().to_owned(), value);
    }
    Ok(out)
}

fn list(client: &Client, a: ListArgs, format: Format) -> anyhow::Result<i32> {
    let mut params = Vec::new();
    for (flag, on) in [
        ("due", a.due),
        ("overdue", a.overdue),
        ("failing", a.failing),
    ] {
        if on {
            params.push(format!("{flag}=true"));
        }
    }
    for (key, v) in [
        ("owner", &a.owner),
        ("type", &a.secret_type),
        ("origin", &a.origin),
    ] {
        if let Some(v) = v {
            params.push(format!("{key}={v}"));
        }
    }
    let query = match generic::query_string(&params) {
        Ok(q) => q,
        Err(e) => return usage(e),
    };
    let path = if query.is_empty() {
        "sys/coffer/inventory".to_owned()
    } else {
        format!("sys/coffer/inventory?{query}")
    };
    let body =
        call(client, Method::GET, &path, None, "reading the inventory")?.unwrap_or(Value::Null);
    if format == Format::Json {
        print!("{}", output::json(&body));
        return Ok(0);
    }
    let secrets = body
        .pointer("/data/secrets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if secrets.is_empty() {
        eprintln!("No managed secrets match");
        return Ok(0);
    }
    print!("{}", render_inventory(&secrets));
    Ok(0)
}

/// An RFC 3339 time without its fractional seconds (tables stay narrow);
/// any other text unchanged.
fn short_time(text: &str) -> String {
    let looks_like_time = text.len() > 20
        && text.as_bytes().get(10) == Some(&b'T')
        && text.as_bytes().get(19) == Some(&b'.');
    match (looks_like_time, text.get(..19), text.find(['Z', '+'])) {
        (true, Some(head), Some(zone)) if zone > 19 => format!("{head}{}", &text[zone..]),
        _ => text.to_owned(),
    }
}

/// The live consumers of an inventory row by version held, newest first:
/// `v3:2 v2:1`; `-` when none is live.
fn consumers_summary(consumers: Option<&Value>) -> String {
    let mut by_version: std::collections::BTreeMap<u64, usize> = Default::default();
    for c in consumers.and_then(Value::as_array).into_iter().flatten() {
        if c.get("live").and_then(Value::as_bool) == Some(true) {
            if let Some(v) = c.get("version").and_then(Value::as_u64) {
                *by_version.entry(v).or_default() += 1;
            }
        }
    }
    if by_version.is_empty() {
        return "-".into();
    }
    by_version
        .iter()
        .rev()
        .map(|(v, n)| format!("v{v}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The inventory as a table, one secret per row.
fn render_inventory(secrets: &[Value]) -> String {
    let field = |s: &Value, k: &str| match s.get(k) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(v)) if v.is_empty() => "-".to_owned(),
        Some(Value::String(v)) => short_time(v),
        Some(v) => output::value_text(v),
    };
    let rows: Vec<Vec<String>> = secrets
        .iter()
        .map(|s| {
            let origin = match (field(s, "origin").as_str(), field(s, "vendor")) {
                (o @ ("third_party" | "imported"), vendor) if vendor != "-" => {
                    format!("{o} ({vendor})")
                }
                (o, _) => o.to_owned(),
            };
            // A secret nobody owns is flagged, not left blank.
            let owner = match field(s, "owner") {
                o if o == "-" => "(unknown)".to_owned(),
                o => o,
            };
            vec![
                field(s, "path"),
                owner,
                field(s, "secret_type"),
                origin,
                field(s, "status"),
                field(s, "next_due"),
                field(s, "last_rotated"),
                consumers_summary(s.get("consumers")),
            ]
        })
        .collect();
    generic::grid(
        &[
            "PATH",
            "OWNER",
            "TYPE",
            "ORIGIN",
            "STATUS",
            "NEXT DUE",
            "LAST ROTATED",
            "CONSUMERS",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_the_mount() {
        assert_eq!(
            split(None, "secret/billing/stripe").unwrap(),
            ("secret".into(), "billing/stripe".into())
        );
        assert_eq!(
            split(None, "/secret/data/app").unwrap(),
            ("secret".into(), "app".into())
        );
        assert_eq!(
            split(Some("kv/"), "app/db").unwrap(),
            ("kv".into(), "app/db".into())
        );
        assert!(split(None, "secret").is_err());
        assert!(split(None, "secret/").is_err());
    }

    #[test]
    fn settings_keep_json_values() {
        let s = parse_settings(&[
            r#"command=["/bin/x","arg"]"#.into(),
            "length=32".into(),
            "url=https://h/x".into(),
        ])
        .unwrap();
        assert_eq!(s["command"], json!(["/bin/x", "arg"]));
        assert_eq!(s["length"], json!(32));
        assert_eq!(s["url"], json!("https://h/x"));
        let err = parse_settings(&["s3cr3t-lookalike".into()]).unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn times_lose_their_fractions() {
        assert_eq!(
            short_time("2027-02-26T13:50:18.338757745Z"),
            "2027-02-26T13:50:18Z"
        );
        assert_eq!(
            short_time("2027-02-26T13:50:18.5+02:00"),
            "2027-02-26T13:50:18+02:00"
        );
        assert_eq!(short_time("2027-02-26T13:50:18Z"), "2027-02-26T13:50:18Z");
        assert_eq!(short_time("payments"), "payments");
    }

    #[test]
    fn inventory_rows_show_vendor_and_dashes() {
        let rows = [
            json!({"path": "secret/a", "owner": "pay", "secret_type": "api_key",
                           "origin": "third_party", "vendor": "Stripe", "status": "ok",
                           "next_due": null, "last_rotated": ""}),
        ];
        let text = render_inventory(&rows);
        assert!(text.starts_with("PATH        OWNER"), "{text}");
        assert!(text.contains("third_party (Stripe)"), "{text}");
        let last = text.trim_end().lines().last().unwrap_or("");
        let cells: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 4..], ["ok", "-", "-", "-"], "{text}");
    }

    #[test]
    fn consumers_are_summed_by_version_live_only() {
        let c = json!([
            {"version": 2, "live": true}, {"version": 2, "live": true},
            {"version": 1, "live": true}, {"version": 1, "live": false}
        ]);
        assert_eq!(consumers_summary(Some(&c)), "v2:2 v1:1");
        assert_eq!(consumers_summary(None), "-");
    }
}
