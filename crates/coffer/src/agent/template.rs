//! Templates in consul-template's syntax, as Vault Agent renders them.
//!
//! The engine is `gtmpl`, a Rust implementation of Go's `text/template`,
//! which is what consul-template (and so Vault Agent) is built on: `with`,
//! `range`, `if`, pipelines and variables behave as in Go. Coffer adds
//! consul-template's functions: `secret` (a read, or a write when given
//! `key=value` arguments), `toJSON`, `toJSONPretty`, `base64Encode`,
//! `base64Decode`, `base64URLEncode`, `base64URLDecode`, `toLower`,
//! `toUpper` and `trimSpace`.
//!
//! gtmpl's functions are plain `fn` pointers, so the state a render needs
//! (the connection, the token, the secrets read so far) sits in a
//! thread-local for the duration of one render pass, which runs on one
//! blocking thread.
//!
//! Secrets with a lease (dynamic credentials) are kept in a [`Store`]
//! between passes and reused until their lease must be replaced; secrets
//! without one (KV) are read once per pass.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::RandomState;
use std::sync::OnceLock;
use std::time::Instant;

use base64::Engine as _;
use gtmpl::{Context, Func, FuncError, Template, Value};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::api::{Api, ApiError};

/// A secret with a lease, kept between render passes.
#[derive(Clone)]
pub struct Leased {
    /// The whole answer.
    pub body: Json,
    /// Its lease.
    pub lease_id: String,
    /// Seconds the lease lasts from `since`.
    pub lease_duration: u64,
    /// Whether it may be renewed.
    pub renewable: bool,
    /// When the lease was obtained or last renewed.
    pub since: Instant,
    /// The duration asked for at each renewal (the first lease's).
    pub increment: u64,
    /// Renewal stopped giving the full increment: fetch a new secret at the
    /// next due time instead of renewing.
    pub replace: bool,
}

impl Leased {
    /// When the next renewal (or replacement) is due: two thirds into the lease.
    pub fn due(&self) -> Instant {
        self.since + std::time::Duration::from_millis((self.lease_duration * 2000 / 3).max(1000))
    }
}

/// Dynamic secrets kept between passes, by path (and write arguments).
#[derive(Default, Clone)]
pub struct Store {
    /// The kept secrets.
    pub leased: BTreeMap<String, Leased>,
}

/// Why a render pass could not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server refused the token (403).
    Denied,
    /// The server could not be reached.
    Unavailable,
    /// Anything else (missing secret, template error), with a message
    /// that holds no secret value.
    Other(String),
}

/// The outcome of rendering one template.
pub struct Rendered {
    /// The text, or why there is none.
    pub output: Result<Zeroizing<String>, Failure>,
    /// The paths the template read.
    pub deps: BTreeSet<String>,
    /// The version of each KV v2 secret it read, by path.
    pub versions: BTreeMap<String, u64>,
}

struct Ctx {
    api: Api,
    token: Zeroizing<String>,
    store: Store,
    pass: HashMap<String, Json>,
    deps: BTreeSet<String>,
    versions: BTreeMap<String, u64>,
    pending: BTreeSet<String>,
    failure: Option<Failure>,
}

thread_local! {
    static CTX: RefCell<Option<Ctx>> = const { RefCell::new(None) };
}

/// The functions added to Go's built-ins.
fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("secret", secret as Func),
        ("toJSON", to_json as Func),
        ("toJSONPretty", to_json_pretty as Func),
        ("base64Encode", base64_encode as Func),
        ("base64Decode", base64_decode as Func),
        ("base64URLEncode", base64_url_encode as Func),
        ("base64URLDecode", base64_url_decode as Func),
        ("toLower", to_lower as Func),
        ("toUpper", to_upper as Func),
        ("trimSpace", trim_space as Func),
    ]
}

/// Parses `text`, so that a syntax error (or a template that calls itself,
/// which would recurse until the stack overflows) stops the agent at start.
pub fn check(text: &str) -> Result<(), String> {
    refuse_recursion(text)?;
    let mut t = Template::default();
    t.add_funcs(&functions());
    t.parse(text).map_err(|e| e.to_string())
}

/// Refuses a template whose `define`/`block` templates call one another in
/// a cycle (`{{define "x"}}{{template "x"}}{{end}}`). Go stops such a
/// recursion at a depth limit; the template engine here would overflow the
/// stack, so a cycle is refused before anything renders.
fn refuse_recursion(text: &str) -> Result<(), String> {
    let quoted = |s: &str| -> Option<String> {
        let s = s.trim_start();
        let rest = s.strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_string())
    };
    // The stack of open actions: `Some(name)` for define/block, `None`
    // for if/range/with; calls are recorded against the innermost name.
    let mut open: Vec<Option<String>> = Vec::new();
    let mut calls: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let action = after[..end].trim_start_matches('-').trim();
        rest = &after[end + 2..];
        let word = action.split_whitespace().next().unwrap_or("");
        let args = action[word.len()..].trim_start();
        let current = open
            .iter()
            .rev()
            .find_map(|o| o.clone())
            .unwrap_or_default();
        match word {
            "define" | "block" => {
                let name = quoted(args).unwrap_or_default();
                if word == "block" {
                    calls.entry(current).or_default().insert(name.clone());
                }
                open.push(Some(name));
            }
            "if" | "range" | "with" => open.push(None),
            "end" => {
                open.pop();
            }
            "template" => {
                if let Some(name) = quoted(args) {
                    calls.entry(current).or_default().insert(name);
                }
            }
            _ => {}
        }
    }
    // Depth-first search for a cycle among the named templates.
    fn visit(
        n: &str,
        calls: &HashMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        if path.iter().any(|p| p == n) {
            return Err(format!(
                "template {n:?} calls itself (recursion is not supported)"
            ));
        }
        if done.contains(n) {
            return Ok(());
        }
        path.push(n.to_string());
        for next in calls.get(n).into_iter().flatten() {
            visit(next, calls, path, done)?;
        }
        path.pop();
        done.insert(n.to_string());
        Ok(())
    }
    let mut done = BTreeSet::new();
    for name in calls.keys() {
        visit(name, &calls, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

/// Renders every template in one pass with `token`; returns the outcomes
/// and the store, updated with the leases obtained. Reads of the paths in
/// `pending` take their `pending` stage (a rotation waits for its
/// consumers). Blocking.
pub fn render_pass(
    api: &Api,
    token: &Zeroizing<String>,
    store: Store,
    texts: &[String],
    pending: &BTreeSet<String>,
) -> (Vec<Rendered>, Store) {
    CTX.with(|c| {
        *c.borrow_mut() = Some(Ctx {
            api: api.clone(),
            token: token.clone(),
            store,
            pass: HashMap::new(),
            deps: BTreeSet::new(),
            versions: BTreeMap::new(),
            pending: pending.clone(),
            failure: None,
        })
    });
    let mut out = Vec::with_capacity(texts.len());
    for text in texts {
        let mut t = Template::default();
        t.add_funcs(&functions());
        let result = refuse_recursion(text)
            .and_then(|()| t.parse(text).map_err(|e| e.to_string()))
            .and_then(|()| t.render(&Context::empty()).map_err(|e| e.to_string()));
        let (deps, versions, failure) = CTX.with(|c| {
            let mut c = c.borrow_mut();
            let ctx = c.as_mut().expect("render context set above");
            (
                std::mem::take(&mut ctx.deps),
                std::mem::take(&mut ctx.versions),
                ctx.failure.take(),
            )
        });
        let output = match (result, failure) {
            (_, Some(f)) => Err(f),
            (Ok(s), None) => Ok(Zeroizing::new(s)),
            // gtmpl's messages name the template position, never data.
            (Err(e), None) => Err(Failure::Other(e)),
        };
        out.push(Rendered {
            output,
            deps,
            versions,
        });
    }
    let store = CTX.with(|c| c.borrow_mut().take().map(|c| c.store).unwrap_or_default());
    (out, store)
}

fn generic(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

/// `secret "path"` reads; `secret "path" "k=v" ...` writes and returns the answer.
fn secret(args: &[Value]) -> Result<Value, FuncError> {
    let Some(Value::String(path)) = args.first() else {
        return Err(generic("secret: expected a path"));
    };
    let path = path.trim_matches('/').to_string();
    let mut data = serde_json::Map::new();
    for a in &args[1..] {
        let Value::String(kv) = a else {
            return Err(generic("secret: expected key=value arguments"));
        };
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| generic("secret: expected key=value arguments"))?;
        data.insert(k.to_string(), Json::String(v.to_string()));
    }
    let key = if data.is_empty() {
        path.clone()
    } else {
        // Kept in memory only, never logged.
        let mut keys: Vec<_> = data.iter().map(|(k, v)| format!("{k}={v}")).collect();
        keys.sort();
        format!("{path}?{}", keys.join("&"))
    };
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = c
            .as_mut()
            .ok_or_else(|| generic("secret: no render context"))?;
        ctx.deps.insert(path.clone());
        if let Some(l) = ctx.store.leased.get(&key) {
            return Ok(secret_value(&l.body));
        }
        if let Some(body) = ctx.pass.get(&key) {
            if let Some(v) = kv2_version(body) {
                ctx.versions.insert(path.clone(), v);
            }
            return Ok(secret_value(body));
        }
        let data = (!data.is_empty()).then(|| Json::Object(data));
        let read_path = if data.is_none() && ctx.pending.contains(&path) {
            format!("{path}?stage=pending")
        } else {
            path.clone()
        };
        match ctx
            .api
            .secret_blocking(&ctx.token, &read_path, data.as_ref())
        {
            Ok(Some(body)) => {
                let value = secret_value(&body);
                if let (None, Some(v)) = (&data, kv2_version(&body)) {
                    ctx.versions.insert(path.clone(), v);
                }
                let lease_id = body
                    .get("lease_id")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string();
                if lease_id.is_empty() {
                    ctx.pass.insert(key, body);
                } else {
                    let lease_duration = body
                        .get("lease_duration")
                        .and_then(Json::as_u64)
                        .unwrap_or(0);
                    ctx.store.leased.insert(
                        key,
                        Leased {
                            lease_id,
                            lease_duration,
                            renewable: body
                                .get("renewable")
                                .and_then(Json::as_bool)
                                .unwrap_or(false),
                            since: Instant::now(),
                            increment: lease_duration,
                            replace: false,
                            body,
                        },
                    );
                }
                Ok(value)
            }
            Ok(None) => {
                ctx.failure
                    .get_or_insert(Failure::Other(format!("no secret at {path}")));
                Err(generic(format!("no secret at {path}")))
            }
            Err(e) => {
                let f = match &e {
                    ApiError::Denied(_) => Failure::Denied,
                    ApiError::Unavailable(_) => Failure::Unavailable,
                    ApiError::Refused { status: 404, .. } => {
                        Failure::Other(format!("no secret at {path}"))
                    }
                    ApiError::Refused { status, .. } => {
                        Failure::Other(format!("reading {path}: {status}"))
                    }
                };
                ctx.failure.get_or_insert(f);
                Err(generic(format!("reading {path}: {e}")))
            }
        }
    })
}

/// The version of a KV v2 read's answer (`data.metadata.version`).
fn kv2_version(body: &Json) -> Option<u64> {
    body.get("data")?.get("metadata")?.get("version")?.as_u64()
}

/// The answer as consul-template's `Secret`: `.Data`, `.LeaseID`, ...
fn secret_value(body: &Json) -> Value {
    let field = |k: &str| body.get(k).cloned().unwrap_or(Json::Null);
    let mut m = new_map();
    m.insert("RequestID".into(), from_json(&field("request_id")));
    m.insert("LeaseID".into(), from_json(&field("lease_id")));
    m.insert("LeaseDuration".into(), from_json(&field("lease_duration")));
    m.insert("Renewable".into(), from_json(&field("renewable")));
    m.insert("Data".into(), from_json(&field("data")));
    m.insert("Warnings".into(), from_json(&field("warnings")));
    m.insert("Auth".into(), from_json(&field("auth")));
    m.insert("WrapInfo".into(), from_json(&field("wrap_info")));
    Value::Map(m)
}

/// One hasher for every map, so that ranging over the same map gives the
/// same order in every pass of this process (gtmpl's maps are hash maps;
/// Go's `range` sorts the keys, which gtmpl does not).
fn new_map() -> HashMap<String, Value> {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    HashMap::with_hasher(STATE.get_or_init(RandomState::new).clone())
}

/// JSON to a template value.
fn from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        Json::Object(o) => {
            let mut m = new_map();
            for (k, v) in o {
                m.insert(k.clone(), from_json(v));
            }
            Value::Map(m)
        }
    }
}

/// A template value to JSON, with keys sorted as Go's encoder sorts them.
fn to_json_value(v: &Value) -> Json {
    match v {
        Value::Nil | Value::NoValue => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Json::from(u)
            } else if let Some(i) = n.as_i64() {
                Json::from(i)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
                    .unwrap_or(Json::Null)
            }
        }
        Value::Array(a) => Json::Array(a.iter().map(to_json_value).collect()),
        Value::Map(m) | Value::Object(m) => {
            let sorted: BTreeMap<&String, Json> =
                m.iter().map(|(k, v)| (k, to_json_value(v))).collect();
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(k.clone(), v);
            }
            Json::Object(out)
        }
        Value::Function(_) => Json::Null,
    }
}

/// Go's `json.Marshal` escapes `<`, `>`, `&`, U+2028 and U+2029.
fn go_escape(s: String) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn one_arg<'a>(name: &str, args: &'a [Value]) -> Result<&'a Value, FuncError> {
    match args {
        [v] => Ok(v),
        _ => Err(FuncError::ExactlyXArgs(name.into(), 1)),
    }
}

fn one_str<'a>(name: &str, args: &'a [Value]) -> Result<&'a str, FuncError> {
    match one_arg(name, args)? {
        Value::String(s) => Ok(s),
        _ => Err(generic(format!("{name}: expected a string"))),
    }
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    let v = to_json_value(one_arg("toJSON", args)?);
    let s = serde_json::to_string(&sorted(v)).map_err(|_| generic("toJSON: cannot encode"))?;
    Ok(Value::String(go_escape(s)))
}

fn to_json_pretty(args: &[Value]) -> Result<Value, FuncError> {
    let v = to_json_value(one_arg("toJSONPretty", args)?);
    let s = serde_json::to_string_pretty(&sorted(v))
        .map_err(|_| generic("toJSONPretty: cannot encode"))?;
    Ok(Value::String(go_escape(s)))
}

/// serde_json keeps insertion order here (preserve_order): sort every level.
fn sorted(v: Json) -> Json {
    match v {
        Json::Object(o) => {
            let mut pairs: Vec<(String, Json)> =
                o.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(pairs.into_iter().collect())
        }
        Json::Array(a) => Json::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn base64_encode(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_str("base64Encode", args)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(s),
    ))
}

fn base64_decode(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_str("base64Decode", args)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| generic("base64Decode: not valid base64"))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| generic("base64Decode: the decoded bytes are not UTF-8"))
}

fn base64_url_encode(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_str("base64URLEncode", args)?;
    Ok(Value::String(
        base64::engine::general_purpose::URL_SAFE.encode(s),
    ))
}

fn base64_url_decode(args: &[Value]) -> Result<Value, FuncError> {
    let s = one_str("base64URLDecode", args)?;
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(s.trim())
        .map_err(|_| generic("base64URLDecode: not valid base64"))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| generic("base64URLDecode: the decoded bytes are not UTF-8"))
}

fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(one_str("toLower", args)?.to_lowercase()))
}

fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(one_str("toUpper", args)?.to_uppercase()))
}

fn trim_space(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        one_str("trimSpace", args)?.trim().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursive_templates_are_refused() {
        assert!(check(r#"{{define "x"}}{{template "x"}}{{end}}{{template "x"}}"#).is_err());
        assert!(check(r#"{{define "a"}}{{if .}}{{template "b"}}{{end}}{{end}}{{define "b"}}{{template "a"}}{{end}}"#).is_err());
        assert!(check(r#"{{define "a"}}x{{end}}{{template "a"}}{{template "a"}}"#).is_ok());
        assert!(check(r#"{{ with secret "secret/data/a" }}{{ .Data.data.k }}{{ end }}"#).is_ok());
    }

    fn render(text: &str, data: Json) -> String {
        let mut t = Template::default();
        t.add_funcs(&functions());
        t.parse(text).unwrap();
        t.render(&Context::from(secret_value(&data))).unwrap()
    }

    #[test]
    fn consul_template_forms_render_as_go_does() {
        let body = serde_json::json!({"lease_id": "", "lease_duration": 0, "renewable": false,
            "data": {"data": {"password": "p<w>&", "user": "ana", "b64": "aGVsbG8="},
                     "metadata": {"version": 3}}});
        assert_eq!(
            render(
                "{{ with .Data.data }}{{ .password }}{{ end }}",
                body.clone()
            ),
            "p<w>&"
        );
        assert_eq!(render("{{ .Data.metadata.version }}", body.clone()), "3");
        assert_eq!(
            render("{{ .Data.data | toJSON }}", body.clone()),
            r#"{"b64":"aGVsbG8=","password":"p\u003cw\u003e\u0026","user":"ana"}"#
        );
        assert_eq!(
            render("{{ .Data.data.b64 | base64Decode }}", body.clone()),
            "hello"
        );
        let ranged = render(
            "{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }};{{ end }}",
            body.clone(),
        );
        let mut parts: Vec<&str> = ranged.split(';').filter(|p| !p.is_empty()).collect();
        parts.sort();
        assert_eq!(parts, ["b64=aGVsbG8=", "password=p<w>&", "user=ana"]);
        // The same map ranges in the same order every time in one process.
        assert_eq!(
            ranged,
            render(
                "{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }};{{ end }}",
                body
            )
        );
        assert!(check("{{ with secret \"a\" }}").is_err());
        assert!(check("{{ with secret \"secret/data/a\" }}{{ .Data.data.x }}{{ end }}").is_ok());
    }
}
