//! The rotators: what each step of a staged rotation does for each kind of
//! secret. A step either succeeds or fails with a reason that never holds a
//! secret value.
//!
//! - `generate`: a new random value from a password policy;
//! - `postgres`: a real PostgreSQL role's password (single or alternating
//!   users), through an admin connection declared by the operator;
//! - `command`: an external program declared by the operator
//!   (`[rotator.NAME]` in the server configuration, see [`super::registry`]),
//!   run once per step without a shell, in a cleared environment (step name
//!   as last argument, JSON on stdin, exit status as the result);
//! - `webhook`: a POST per step to a URL declared by the operator;
//! - `pki`: a certificate reissued from a pki mount's role declared by the
//!   operator (see [`super::pki`]);
//! - `manual`: no automatic rotation (only due reminders).

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

use super::registry::{CommandRotator, Declared, RotatorRegistry, WebhookRotator};
use crate::password::{self, CharsetRule, PasswordPolicies, PasswordPolicy};
use crate::util::Params;
use crate::{Error, Result};

/// The steps of a staged rotation.
pub const STEPS: [&str; 4] = ["create", "set", "test", "finish"];
/// Longest output read from a command or webhook.
const MAX_OUTPUT: usize = 1 << 20;

/// What a step sees.
pub struct StepInput<'a> {
    /// Step name.
    pub step: &'a str,
    /// `mount/path` of the secret.
    pub path: &'a str,
    /// The current value (empty object when the secret is new).
    pub current: &'a Value,
    /// The pending value (null during create).
    pub pending: &'a Value,
    /// Lifecycle metadata (owner, type, ...) without state.
    pub metadata: &'a Value,
    /// Rotator settings.
    pub settings: &'a Map<String, Value>,
    /// The stored password policies `settings.password_policy` may name.
    pub passwords: &'a PasswordPolicies,
    /// The mount table, for rotators that act on another mount (`pki`).
    pub router: Option<&'a parking_lot::RwLock<crate::mounts::Router>>,
}

/// Settings a `postgres` lifecycle record may carry besides the password policy.
const POSTGRES_SETTINGS: [&str; 6] = [
    "name",
    "strategy",
    "role",
    "roles",
    "username_field",
    "password_field",
];
/// Inline password settings (`generate` and `postgres`); `password_policy`
/// names a stored policy instead.
const POLICY_SETTINGS: [&str; 6] = [
    "length",
    "format",
    "lowercase",
    "uppercase",
    "digits",
    "symbols",
];

/// The declared rotator a record's settings name (`settings.name`).
fn declared<'r>(
    registry: &'r RotatorRegistry,
    rotator: &str,
    settings: &Map<String, Value>,
) -> Result<&'r Declared> {
    let p = Params(settings);
    let name = p.str("name")?.filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::bad(format!(
            "rotation.settings.name is required for the {rotator} rotator: it names a \
                 [rotator.NAME] section of the server configuration"
        ))
    })?;
    registry.lookup(rotator, name)
}

/// Checks a rotator's settings when a policy is written. Command, webhook
/// and postgres rotators are only named (`settings.name`); a program,
/// argument, URL or connection string given inline is refused.
pub fn validate(
    registry: &RotatorRegistry,
    rotator: &str,
    settings: &Map<String, Value>,
) -> Result<()> {
    let p = Params(settings);
    match rotator {
        "generate" | "manual" => {
            if rotator == "generate" {
                policy_from(settings)?;
            }
            Ok(())
        }
        "command" | "webhook" => {
            if let Some(k) = settings.keys().find(|k| k.as_str() != "name") {
                return Err(Error::bad(format!(
                    "rotation.settings.{k}: {rotator} rotators are declared by the operator in \
                     the server configuration ([rotator.NAME]); a lifecycle record only names \
                     one with settings.name"
                )));
            }
            declared(registry, rotator, settings).map(|_| ())
        }
        "postgres" => {
            if let Some(k) = settings.keys().find(|k| {
                !POSTGRES_SETTINGS.contains(&k.as_str())
                    && !POLICY_SETTINGS.contains(&k.as_str())
                    && k.as_str() != "password_policy"
            }) {
                return Err(Error::bad(format!(
                    "rotation.settings.{k}: not a postgres rotator setting (the admin connection \
                     is declared by the operator as [rotator.NAME] with type = \"postgres\" and \
                     named with settings.name)"
                )));
            }
            let Declared::Postgres(pg) = declared(registry, rotator, settings)? else {
                return Err(Error::bad("rotation.settings.name: not a postgres rotator"));
            };
            let roles = match p.str("strategy")?.unwrap_or("single") {
                "single" => vec![p
                    .str("role")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        Error::bad("rotation.settings.role is required for the postgres rotator")
                    })?
                    .to_string()],
                "alternating" => {
                    let roles = p.str_list("roles")?.unwrap_or_default();
                    if roles.len() != 2 {
                        return Err(Error::bad("rotation.settings.roles must name exactly two roles for the alternating strategy"));
                    }
                    roles
                }
                other => return Err(Error::bad(format!("rotation.settings.strategy: unknown strategy {other:?} (single or alternating)"))),
            };
            if let Some(r) = roles.iter().find(|r| !pg.allows(r)) {
                return Err(Error::bad(format!(
                    "rotation.settings: role {r:?} is not in the allowed_roles of this postgres rotator"
                )));
            }
            policy_from(settings)?;
            Ok(())
        }
        "pki" => {
            if let Some(k) = settings
                .keys()
                .find(|k| !super::pki::SETTINGS.contains(&k.as_str()))
            {
                return Err(Error::bad(format!(
                    "rotation.settings.{k}: not a pki rotator setting (the mount and role are \
                     declared by the operator as [rotator.NAME] with type = \"pki\" and named \
                     with settings.name)"
                )));
            }
            declared(registry, rotator, settings)?;
            super::pki::validate(settings)
        }
        other => Err(Error::bad(format!(
            "unknown rotator {other:?}: expected one of generate, postgres, command, webhook, pki, manual"
        ))),
    }
}

/// How a rotator makes a new value: from a stored password policy, from
/// inline character classes (both through [`crate::password`]), or as
/// random bytes encoded in hex or base64.
#[derive(Debug, Clone)]
pub enum ValueRecipe {
    /// `settings.password_policy`: the stored `sys/policies/password/<name>`.
    Named(String),
    /// Inline `length` and classes: every class at least once.
    Chars(PasswordPolicy),
    /// `format = "hex"`: `length` random bytes, hex-encoded.
    Hex(usize),
    /// `format = "base64"`: `length` random bytes, base64-encoded.
    Base64(usize),
}

const SYMBOLS: &str = "!#%*+-.:=?@^_~";

/// The recipe in rotator settings.
pub fn policy_for(settings: &Map<String, Value>) -> Result<ValueRecipe> {
    policy_from(settings)
}

fn policy_from(settings: &Map<String, Value>) -> Result<ValueRecipe> {
    let p = Params(settings);
    if let Some(name) = p.str("password_policy")? {
        if let Some(k) = POLICY_SETTINGS.iter().find(|k| settings.contains_key(**k)) {
            return Err(Error::bad(format!(
                "rotation.settings.{k}: the named password policy decides the value; \
                 give password_policy or inline settings, not both"
            )));
        }
        if name.is_empty() {
            return Err(Error::bad(
                "rotation.settings.password_policy must name a password policy",
            ));
        }
        return Ok(ValueRecipe::Named(name.to_string()));
    }
    let length = p.u64("length")?.unwrap_or(32);
    if !(8..=1024).contains(&length) {
        return Err(Error::bad(
            "rotation.settings.length must be between 8 and 1024",
        ));
    }
    let length = length as usize;
    match p.str("format")?.unwrap_or("chars") {
        "hex" => return Ok(ValueRecipe::Hex(length)),
        "base64" => return Ok(ValueRecipe::Base64(length)),
        "chars" => {}
        _ => {
            return Err(Error::bad(
                "rotation.settings.format must be chars, hex or base64",
            ))
        }
    }
    let mut rules = Vec::new();
    for (name, set, default) in [
        ("lowercase", password::LOWER, true),
        ("uppercase", password::UPPER, true),
        ("digits", password::DIGITS, true),
        ("symbols", SYMBOLS, false),
    ] {
        if p.bool(name)?.unwrap_or(default) {
            rules.push(CharsetRule::new(set, 1));
        }
    }
    if rules.is_empty() {
        return Err(Error::bad(
            "rotation.settings: at least one character class is needed",
        ));
    }
    Ok(ValueRecipe::Chars(PasswordPolicy::new(length, rules)?))
}

/// Generates a value from the recipe; a named policy is read from
/// `passwords` (a 400 when it does not exist).
pub async fn generate(
    recipe: &ValueRecipe,
    passwords: &PasswordPolicies,
) -> Result<Zeroizing<String>> {
    use base64::Engine as _;
    match recipe {
        ValueRecipe::Hex(n) => Ok(Zeroizing::new(hex::encode(coffer_crypto::random::bytes(
            *n,
        )))),
        ValueRecipe::Base64(n) => Ok(Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(coffer_crypto::random::bytes(*n)),
        )),
        ValueRecipe::Chars(policy) => policy.generate(),
        ValueRecipe::Named(name) => passwords.named(name).await?.generate(),
    }
}

fn fields(settings: &Map<String, Value>, current: &Value, default: &str) -> Result<Vec<String>> {
    if let Some(f) = Params(settings).str_list("fields")? {
        if !f.is_empty() {
            return Ok(f);
        }
    }
    if let Some(f) = Params(settings).str("field")? {
        return Ok(vec![f.to_string()]);
    }
    let _ = current;
    Ok(vec![default.to_string()])
}

/// Runs one step of `rotator`; for `create`, returns the pending value.
/// Command, webhook and postgres rotators run only as `registry` declares them.
pub async fn run_step(
    registry: &RotatorRegistry,
    rotator: &str,
    input: &StepInput<'_>,
) -> Result<Option<Value>> {
    match rotator {
        "generate" => generate_step(input).await,
        "command" | "webhook" | "postgres" | "pki" => {
            validate(registry, rotator, input.settings)?;
            match declared(registry, rotator, input.settings)? {
                Declared::Command(c) => command_step(c, input).await,
                Declared::Webhook(w) => webhook_step(w, input).await,
                Declared::Postgres(pg) => super::pg::step(pg, input).await,
                Declared::Pki(p) => super::pki::step(p, input).await,
            }
        }
        "manual" => Err(Error::bad(
            "the manual rotator cannot rotate: write a new version by hand",
        )),
        other => Err(Error::bad(format!("unknown rotator {other:?}"))),
    }
}

async fn generate_step(input: &StepInput<'_>) -> Result<Option<Value>> {
    match input.step {
        "create" => {
            let recipe = policy_from(input.settings)?;
            let mut data = match input.current {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            for f in fields(input.settings, input.current, "value")? {
                let value = generate(&recipe, input.passwords).await?;
                data.insert(f, Value::String(value.to_string()));
            }
            Ok(Some(Value::Object(data)))
        }
        "test" => {
            let ok = fields(input.settings, input.current, "value")?
                .iter()
                .all(|f| {
                    input
                        .pending
                        .get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                });
            if ok {
                Ok(None)
            } else {
                Err(Error::bad(
                    "generated value missing from the pending version",
                ))
            }
        }
        _ => Ok(None),
    }
}

/// The step's JSON for commands and webhooks; the current value only when
/// the rotator is declared with `needs_current_value = true`.
pub fn step_document(input: &StepInput<'_>, with_current: bool) -> Value {
    let mut doc = json!({
        "step": input.step,
        "path": input.path,
        "pending": input.pending,
        "metadata": input.metadata,
    });
    if with_current {
        doc["current"] = input.current.clone();
    }
    doc
}

fn pending_from_output(step: &str, out: &[u8]) -> Result<Option<Value>> {
    if step != "create" {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(out)
        .map_err(|_| Error::bad("the create step must print the pending value as a JSON object"))?;
    let data = match v {
        Value::Object(mut m) => match m.remove("data") {
            Some(Value::Object(d)) => Value::Object(d),
            Some(_) => {
                return Err(Error::bad(
                    "the create step's \"data\" must be a JSON object",
                ))
            }
            None => Value::Object(m),
        },
        _ => return Err(Error::bad("the create step must print a JSON object")),
    };
    if data.as_object().is_some_and(Map::is_empty) {
        return Err(Error::bad("the create step printed an empty pending value"));
    }
    Ok(Some(data))
}

/// Most bytes of a command's standard error kept while it runs (the tail is
/// redacted before it is cut to [`STDERR_TAIL`]).
const STDERR_KEEP: usize = 64 << 10;
/// Most bytes of a command's standard error shown in a failure.
pub const STDERR_TAIL: usize = 2 << 10;
/// Values shorter than this are not searched for in a command's standard
/// error (replacing every `a` or `1` would leave nothing readable).
const MIN_REDACTED: usize = 4;

async fn command_step(c: &CommandRotator, input: &StepInput<'_>) -> Result<Option<Value>> {
    let timeout = c.timeout;
    let mut cmd = tokio::process::Command::new(&c.program);
    // No shell, and nothing of the server's environment but what the
    // operator named.
    cmd.args(&c.args)
        .arg(input.step)
        .env_clear()
        .current_dir("/");
    for (k, v) in &c.vars {
        cmd.env(k, v.as_str());
    }
    for k in &c.pass_through {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::bad(format!(
                "cannot start rotation command {}: {}",
                c.program.display(),
                e.kind()
            ))
        })?;
    let doc = Zeroizing::new(
        serde_json::to_vec(&step_document(input, c.needs_current_value)).unwrap_or_default(),
    );
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    // Shared with the caller so that a timeout still shows what was said.
    let err_tail = std::sync::Arc::new(std::sync::Mutex::new(Zeroizing::new(Vec::new())));
    let err_sink = std::sync::Arc::clone(&err_tail);
    let out = std::sync::Arc::new(std::sync::Mutex::new(Zeroizing::new(Vec::new())));
    let out_sink = std::sync::Arc::clone(&out);
    let run = async {
        let feed = async {
            if let Some(mut s) = stdin.take() {
                // A command that does not read its input is fine.
                let _ = s.write_all(&doc).await;
                drop(s);
            }
        };
        let read_out = async {
            let mut buf = Zeroizing::new(Vec::new());
            if let Some(o) = stdout.as_mut() {
                let _ = o.take(MAX_OUTPUT as u64).read_to_end(&mut buf).await;
            }
            if let Ok(mut o) = out_sink.lock() {
                *o = buf;
            }
        };
        let read_err = async {
            if let Some(e) = stderr.as_mut() {
                keep_tail(e, &err_sink).await;
            }
        };
        tokio::join!(feed, read_out, read_err);
        child.wait().await
    };
    let result = tokio::time::timeout(timeout, run).await;
    let out = out.lock().map(|o| o.clone()).unwrap_or_default();
    let fail = |why: String| {
        let said = err_tail
            .lock()
            .map(|e| stderr_tail(&e, input, &out))
            .unwrap_or_default();
        if said.is_empty() {
            Error::bad(why)
        } else {
            Error::bad(format!("{why}; its standard error ends with: {said}"))
        }
    };
    match result {
        Err(_) => Err(fail(format!(
            "rotation command timed out after {}s",
            timeout.as_secs()
        ))),
        Ok(Err(e)) => Err(fail(format!("rotation command failed: {e}"))),
        Ok(Ok(status)) => {
            if !status.success() {
                return Err(fail(format!(
                    "rotation command exited with {}",
                    status
                        .code()
                        .map(|c| format!("status {c}"))
                        .unwrap_or_else(|| "a signal".into()),
                )));
            }
            pending_from_output(input.step, &out).map_err(|e| fail(e.to_string()))
        }
    }
}

/// Reads `r` to its end, keeping at most the last [`STDERR_KEEP`] bytes in
/// `sink`.
async fn keep_tail<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    sink: &std::sync::Mutex<Zeroizing<Vec<u8>>>,
) {
    let mut chunk = Zeroizing::new(vec![0u8; 8192]);
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Ok(mut buf) = sink.lock() else { return };
        buf.extend_from_slice(&chunk[..n]);
        let extra = buf.len().saturating_sub(STDERR_KEEP);
        if extra > 0 {
            buf.drain(..extra);
        }
    }
}

/// The end of a command's standard error as shown in a failure: every
/// value of the current and pending versions (and of what the command
/// printed on standard output) replaced by `<redacted>`, control characters
/// as spaces, then cut to its last [`STDERR_TAIL`] bytes.
pub fn stderr_tail(raw: &[u8], input: &StepInput<'_>, stdout: &[u8]) -> String {
    let mut text = Zeroizing::new(String::from_utf8_lossy(raw).into_owned());
    let mut values: Vec<Zeroizing<String>> = Vec::new();
    collect_values(input.current, &mut values);
    collect_values(input.pending, &mut values);
    if let Ok(printed) = serde_json::from_slice::<Value>(stdout) {
        collect_values(&printed, &mut values);
    }
    // Longest first, so that a value containing another goes whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in &values {
        if text.contains(v.as_str()) {
            text = Zeroizing::new(text.replace(v.as_str(), "<redacted>"));
        }
    }
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    let mut start = clean.len().saturating_sub(STDERR_TAIL);
    while !clean.is_char_boundary(start) {
        start += 1;
    }
    let tail = &clean[start..];
    if start > 0 {
        format!("...{tail}")
    } else {
        tail.to_string()
    }
}

/// Every string (and number) in `v` at least [`MIN_REDACTED`] bytes long.
fn collect_values(v: &Value, out: &mut Vec<Zeroizing<String>>) {
    match v {
        Value::String(s) if s.len() >= MIN_REDACTED => out.push(Zeroizing::new(s.clone())),
        Value::Number(n) => {
            let s = n.to_string();
            if s.len() >= MIN_REDACTED {
                out.push(Zeroizing::new(s));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_values(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_values(x, out)),
        _ => {}
    }
}

async fn webhook_step(w: &WebhookRotator, input: &StepInput<'_>) -> Result<Option<Value>> {
    let mut req = w
        .client
        .post(w.url.clone())
        .json(&step_document(input, w.needs_current_value));
    for (k, v) in &w.headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| Error::bad(format!("webhook request failed: {}", e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::bad(format!("webhook answered {}", status.as_u16())));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|_| Error::bad("webhook answer could not be read"))?;
    if body.len() > MAX_OUTPUT {
        return Err(Error::bad("webhook answer too large"));
    }
    pending_from_output(input.step, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty password-policy store over an unsealed in-memory barrier.
    fn passwords() -> PasswordPolicies {
        use std::sync::Arc;
        let barrier = Arc::new(crate::barrier::Barrier::new(Arc::new(
            coffer_storage::MemoryBackend::new(),
        )));
        barrier.unseal(coffer_crypto::Keyring::new(0));
        PasswordPolicies::new(crate::barrier::View::new(barrier, "sys/password_policy/"))
    }

    #[tokio::test]
    async fn generated_values_follow_the_policy() {
        let pw = passwords();
        let mut s = Map::new();
        s.insert("length".into(), json!(24));
        s.insert("symbols".into(), json!(true));
        let p = policy_from(&s).unwrap();
        let v = generate(&p, &pw).await.unwrap();
        assert_eq!(v.len(), 24);
        assert!(v.chars().any(|c| SYMBOLS.contains(c)));
        assert!(v.chars().any(|c| password::DIGITS.contains(c)));
        assert_ne!(generate(&p, &pw).await.unwrap().as_str(), v.as_str());
        s.insert("format".into(), json!("hex"));
        s.insert("length".into(), json!(16));
        assert_eq!(
            generate(&policy_from(&s).unwrap(), &pw)
                .await
                .unwrap()
                .len(),
            32
        );
    }

    #[tokio::test]
    async fn a_named_password_policy_decides_the_value() {
        let pw = passwords();
        pw.write(
            "pins",
            "length = 12\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 12\n}\n",
        )
        .await
        .unwrap();
        let recipe = policy_from(&settings(json!({"password_policy": "pins"}))).unwrap();
        let v = generate(&recipe, &pw).await.unwrap();
        assert_eq!(v.len(), 12);
        assert!(v.bytes().all(|b| b.is_ascii_digit()));
        // Unknown names fail at generation; mixing with inline settings at validation.
        let missing = policy_from(&settings(json!({"password_policy": "nope"}))).unwrap();
        let e = generate(&missing, &pw).await.unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(policy_from(&settings(json!({"password_policy": "pins", "length": 9}))).is_err());
    }

    fn registry() -> RotatorRegistry {
        let specs: std::collections::BTreeMap<String, super::super::registry::RotatorSpec> =
            serde_json::from_value(json!({
                "hook": {"type": "command", "program": "/bin/sh", "args": ["-c", "if [ \"$0\" = create ]; then echo '{\"data\":{\"k\":\"new\"}}'; fi; [ \"$0\" != test ]"]},
                "db": {"type": "postgres", "connection_url": "postgres://admin@127.0.0.1/x", "allowed_roles": ["app"]},
            }))
            .unwrap();
        RotatorRegistry::from_specs(specs, std::path::Path::new(".")).unwrap()
    }

    fn settings(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn settings_are_validated() {
        let r = registry();
        assert!(validate(&r, "nope", &Map::new()).is_err());
        assert!(validate(&r, "command", &Map::new()).is_err());
        assert!(validate(&r, "command", &settings(json!({"name": "hook"}))).is_ok());
        assert!(validate(&r, "webhook", &settings(json!({"name": "hook"}))).is_err());
        // Inline programs, URLs and connection strings are refused.
        let e = validate(
            &r,
            "command",
            &settings(json!({"name": "hook", "command": ["/bin/sh"]})),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("declared by the operator"), "{e}");
        assert!(validate(&r, "webhook", &settings(json!({"url": "https://x"}))).is_err());
        assert!(validate(
            &r,
            "postgres",
            &settings(json!({"connection_url": "postgres://x", "role": "app"}))
        )
        .is_err());
        assert!(validate(
            &r,
            "postgres",
            &settings(json!({"name": "db", "role": "app"}))
        )
        .is_ok());
        assert!(validate(
            &r,
            "postgres",
            &settings(json!({"name": "db", "role": "other"}))
        )
        .is_err());
        assert!(validate(
            &r,
            "postgres",
            &settings(json!({"name": "db", "strategy": "alternating", "roles": ["app"]}))
        )
        .is_err());
        assert!(validate(&r, "generate", &settings(json!({"length": 4}))).is_err());
        assert!(validate(&r, "generate", &Map::new()).is_ok());
    }

    #[tokio::test]
    async fn command_rotator_reads_output_and_status() {
        let r = registry();
        let pw = passwords();
        let settings = settings(json!({"name": "hook"}));
        let cur = json!({"k": "old"});
        let md = json!({});
        let mk = |step| StepInput {
            step,
            path: "secret/x",
            current: &cur,
            pending: &Value::Null,
            metadata: &md,
            settings: &settings,
            passwords: &pw,
            router: None,
        };
        let created = run_step(&r, "command", &mk("create"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(created, json!({"k": "new"}));
        assert!(run_step(&r, "command", &mk("set")).await.unwrap().is_none());
        let err = run_step(&r, "command", &mk("test"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited with status 1"), "{err}");
    }

    /// A failing command's standard error reaches the error, bounded, with
    /// the old and new values redacted even when the program echoes them.
    #[tokio::test]
    async fn a_failing_command_says_why_without_the_values() {
        let old = format!("old-{}", hex::encode(coffer_crypto::random::bytes(12)));
        let new = format!("new-{}", hex::encode(coffer_crypto::random::bytes(12)));
        let script = format!(
            "cat >/dev/null; if [ \"$0\" = create ]; then echo '{{\"k\":\"{new}\"}}'; \
             echo \"made {new}\" >&2; exit 3; fi; \
             head -c 5000 /dev/zero | tr '\\0' x >&2; echo \" was {old} now {new}\" >&2; \
             echo 'vendor said no' >&2; exit 4"
        );
        let specs: std::collections::BTreeMap<String, super::super::registry::RotatorSpec> =
            serde_json::from_value(json!({"hook": {"type": "command", "program": "/bin/sh",
                "args": ["-c", script], "env": {"PATH": "/usr/bin:/bin"}}}))
            .unwrap();
        let r = RotatorRegistry::from_specs(specs, std::path::Path::new(".")).unwrap();
        let settings = settings(json!({"name": "hook"}));
        let cur = json!({"k": old});
        let pending = json!({"k": new});
        let md = json!({});
        let pw = passwords();
        let mk = |step, pending| StepInput {
            step,
            path: "secret/x",
            current: &cur,
            pending,
            metadata: &md,
            settings: &settings,
            passwords: &pw,
            router: None,
        };
        // create: the value it printed on stdout is redacted from stderr.
        let err = run_step(&r, "command", &mk("create", &Value::Null))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited with status 3"), "{err}");
        assert!(err.contains("made <redacted>"), "{err}");
        assert!(!err.contains(&new) && !err.contains("step"), "{err}");
        // test: old and new redacted, the tail bounded, the reason kept.
        let err = run_step(&r, "command", &mk("test", &pending))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited with status 4"), "{err}");
        assert!(
            err.ends_with("was <redacted> now <redacted> vendor said no"),
            "{err}"
        );
        assert!(!err.contains(&new) && !err.contains(&old), "{err}");
        assert!(err.len() < STDERR_TAIL + 200, "{} bytes", err.len());
    }

    #[test]
    fn the_current_value_is_sent_only_when_declared() {
        let cur = json!({"k": "old"});
        let (md, s) = (json!({}), Map::new());
        let pw = passwords();
        let input = StepInput {
            step: "set",
            path: "secret/x",
            current: &cur,
            pending: &Value::Null,
            metadata: &md,
            settings: &s,
            passwords: &pw,
            router: None,
        };
        assert!(step_document(&input, false).get("current").is_none());
        assert_eq!(step_document(&input, true)["current"], cur);
    }
}
