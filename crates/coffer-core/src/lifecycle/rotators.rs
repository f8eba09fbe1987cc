//! The rotators: what each step of a staged rotation does for each kind of
//! secret. A step either succeeds or fails with a reason that never holds a
//! secret value.
//!
//! - `generate`: a new random value from a password policy;
//! - `postgres`: a real PostgreSQL role's password (single or alternating users);
//! - `command`: an external program run once per step (step name as argument,
//!   JSON on stdin, exit status as the result);
//! - `webhook`: a POST per step to a URL;
//! - `manual`: no automatic rotation (only due reminders).

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::util::{parse_duration, Params};
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
}

/// Checks a rotator's settings when a policy is written.
pub fn validate(rotator: &str, settings: &Map<String, Value>) -> Result<()> {
    let p = Params(settings);
    match rotator {
        "generate" | "manual" => {
            if rotator == "generate" {
                policy_from(settings)?;
            }
            Ok(())
        }
        "command" => {
            command_argv(settings)?;
            if let Some(t) = p.str("timeout")? {
                parse_duration(t).ok_or_else(|| Error::bad("rotation.settings.timeout: invalid duration"))?;
            }
            Ok(())
        }
        "webhook" => {
            let url = p.str("url")?.ok_or_else(|| Error::bad("rotation.settings.url is required for the webhook rotator"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::bad("rotation.settings.url must be an http or https URL"));
            }
            Ok(())
        }
        "postgres" => {
            p.str("connection_url")?.filter(|s| !s.is_empty()).ok_or_else(|| Error::bad("rotation.settings.connection_url is required for the postgres rotator"))?;
            match p.str("strategy")?.unwrap_or("single") {
                "single" => {
                    p.str("role")?.filter(|s| !s.is_empty()).ok_or_else(|| Error::bad("rotation.settings.role is required for the postgres rotator"))?;
                }
                "alternating" => {
                    let roles = p.str_list("roles")?.unwrap_or_default();
                    if roles.len() != 2 {
                        return Err(Error::bad("rotation.settings.roles must name exactly two roles for the alternating strategy"));
                    }
                }
                other => return Err(Error::bad(format!("rotation.settings.strategy: unknown strategy {other:?} (single or alternating)"))),
            }
            policy_from(settings)?;
            Ok(())
        }
        other => Err(Error::bad(format!(
            "unknown rotator {other:?}: expected one of generate, postgres, command, webhook, manual"
        ))),
    }
}

/// A password policy for generated values.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    /// Length in characters (or bytes for hex/base64).
    pub length: usize,
    /// "chars", "hex" or "base64".
    pub format: String,
    /// Character classes to draw from and require.
    pub classes: Vec<&'static str>,
}

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const SYMBOLS: &str = "!#%*+-.:=?@^_~";

/// The password policy in rotator settings.
pub fn policy_for(settings: &Map<String, Value>) -> Result<PasswordPolicy> {
    policy_from(settings)
}

fn policy_from(settings: &Map<String, Value>) -> Result<PasswordPolicy> {
    let p = Params(settings);
    let length = p.u64("length")?.unwrap_or(32);
    if !(8..=1024).contains(&length) {
        return Err(Error::bad(
            "rotation.settings.length must be between 8 and 1024",
        ));
    }
    let format = p.str("format")?.unwrap_or("chars").to_string();
    if !matches!(format.as_str(), "chars" | "hex" | "base64") {
        return Err(Error::bad(
            "rotation.settings.format must be chars, hex or base64",
        ));
    }
    let mut classes = Vec::new();
    for (name, set, default) in [
        ("lowercase", LOWER, true),
        ("uppercase", UPPER, true),
        ("digits", DIGITS, true),
        ("symbols", SYMBOLS, false),
    ] {
        if p.bool(name)?.unwrap_or(default) {
            classes.push(set);
        }
    }
    if classes.is_empty() {
        return Err(Error::bad(
            "rotation.settings: at least one character class is needed",
        ));
    }
    Ok(PasswordPolicy {
        length: length as usize,
        format,
        classes,
    })
}

/// Generates a value from the policy; for "chars", every class appears at least once.
pub fn generate(policy: &PasswordPolicy) -> Zeroizing<String> {
    use base64::Engine as _;
    match policy.format.as_str() {
        "hex" => Zeroizing::new(hex::encode(coffer_crypto::random::bytes(policy.length))),
        "base64" => Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .encode(coffer_crypto::random::bytes(policy.length)),
        ),
        _ => {
            let alphabet: Vec<char> = policy.classes.iter().flat_map(|c| c.chars()).collect();
            loop {
                let mut out = Zeroizing::new(String::with_capacity(policy.length));
                while out.len() < policy.length {
                    // Rejection sampling keeps the draw uniform.
                    let b = coffer_crypto::random::bytes(1)[0] as usize;
                    let limit = 256 - 256 % alphabet.len();
                    if b < limit {
                        out.push(alphabet[b % alphabet.len()]);
                    }
                }
                if policy
                    .classes
                    .iter()
                    .all(|c| out.chars().any(|ch| c.contains(ch)))
                {
                    return out;
                }
            }
        }
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
pub async fn run_step(rotator: &str, input: &StepInput<'_>) -> Result<Option<Value>> {
    match rotator {
        "generate" => generate_step(input),
        "command" => command_step(input).await,
        "webhook" => webhook_step(input).await,
        "postgres" => super::pg::step(input).await,
        "manual" => Err(Error::bad(
            "the manual rotator cannot rotate: write a new version by hand",
        )),
        other => Err(Error::bad(format!("unknown rotator {other:?}"))),
    }
}

fn generate_step(input: &StepInput<'_>) -> Result<Option<Value>> {
    match input.step {
        "create" => {
            let policy = policy_from(input.settings)?;
            let mut data = match input.current {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            for f in fields(input.settings, input.current, "value")? {
                data.insert(f, Value::String(generate(&policy).to_string()));
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

/// The step's JSON for commands and webhooks.
pub fn step_document(input: &StepInput<'_>) -> Value {
    json!({
        "step": input.step,
        "path": input.path,
        "current": input.current,
        "pending": input.pending,
        "metadata": input.metadata,
    })
}

fn command_argv(settings: &Map<String, Value>) -> Result<Vec<String>> {
    let argv = match settings.get("command") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::bad("rotation.settings.command must be a list of strings"))?,
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => {
            return Err(Error::bad(
                "rotation.settings.command is required for the command rotator",
            ))
        }
    };
    if argv.is_empty() {
        return Err(Error::bad("rotation.settings.command is empty"));
    }
    Ok(argv)
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

async fn command_step(input: &StepInput<'_>) -> Result<Option<Value>> {
    let argv = command_argv(input.settings)?;
    let timeout = Params(input.settings)
        .str("timeout")?
        .and_then(parse_duration)
        .unwrap_or(30)
        .max(1);
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .arg(input.step)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::bad(format!("cannot start rotation command {:?}: {e}", argv[0])))?;
    let doc = Zeroizing::new(serde_json::to_vec(&step_document(input)).unwrap_or_default());
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let run = async {
        if let Some(mut s) = stdin.take() {
            // A command that does not read its input is fine.
            let _ = s.write_all(&doc).await;
            drop(s);
        }
        let mut out = Zeroizing::new(Vec::new());
        if let Some(o) = stdout.as_mut() {
            let _ = o.take(MAX_OUTPUT as u64).read_to_end(&mut out).await;
        }
        let status = child.wait().await;
        (status, out)
    };
    match tokio::time::timeout(Duration::from_secs(timeout), run).await {
        Err(_) => Err(Error::bad(format!(
            "rotation command timed out after {timeout}s in step {}",
            input.step
        ))),
        Ok((Err(e), _)) => Err(Error::bad(format!("rotation command failed: {e}"))),
        Ok((Ok(status), out)) => {
            if !status.success() {
                return Err(Error::bad(format!(
                    "rotation command exited with {} in step {}",
                    status
                        .code()
                        .map(|c| format!("status {c}"))
                        .unwrap_or_else(|| "a signal".into()),
                    input.step
                )));
            }
            pending_from_output(input.step, &out)
        }
    }
}

async fn webhook_step(input: &StepInput<'_>) -> Result<Option<Value>> {
    let p = Params(input.settings);
    let url = p
        .str("url")?
        .ok_or_else(|| Error::bad("rotation.settings.url is required"))?;
    let timeout = p
        .str("timeout")?
        .and_then(parse_duration)
        .unwrap_or(30)
        .max(1);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout))
        .build()
        .map_err(|e| Error::Internal(format!("webhook client: {e}")))?;
    let mut req = client.post(url).json(&step_document(input));
    if let Some(h) = p.object("headers")? {
        for (k, v) in h {
            if let Some(v) = v.as_str() {
                req = req.header(k.as_str(), v);
            }
        }
    }
    let resp = req.send().await.map_err(|e| {
        Error::bad(format!(
            "webhook request failed in step {}: {}",
            input.step,
            e.without_url()
        ))
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::bad(format!(
            "webhook answered {} in step {}",
            status.as_u16(),
            input.step
        )));
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

    #[test]
    fn generated_values_follow_the_policy() {
        let mut s = Map::new();
        s.insert("length".into(), json!(24));
        s.insert("symbols".into(), json!(true));
        let p = policy_from(&s).unwrap();
        let v = generate(&p);
        assert_eq!(v.len(), 24);
        assert!(v.chars().any(|c| SYMBOLS.contains(c)));
        assert!(v.chars().any(|c| DIGITS.contains(c)));
        assert_ne!(generate(&p).as_str(), v.as_str());
        s.insert("format".into(), json!("hex"));
        s.insert("length".into(), json!(16));
        assert_eq!(generate(&policy_from(&s).unwrap()).len(), 32);
    }

    #[test]
    fn settings_are_validated() {
        assert!(validate("nope", &Map::new()).is_err());
        assert!(validate("command", &Map::new()).is_err());
        assert!(validate(
            "webhook",
            &serde_json::from_value(json!({"url": "ftp://x"})).unwrap()
        )
        .is_err());
        assert!(validate(
            "postgres",
            &serde_json::from_value(
                json!({"connection_url": "postgres://x", "strategy": "alternating", "roles": ["a"]})
            )
            .unwrap()
        )
        .is_err());
        assert!(validate(
            "generate",
            &serde_json::from_value(json!({"length": 4})).unwrap()
        )
        .is_err());
        assert!(validate("generate", &Map::new()).is_ok());
    }

    #[tokio::test]
    async fn command_rotator_reads_output_and_status() {
        let settings: Map<String, Value> = serde_json::from_value(json!({
            "command": ["sh", "-c", "if [ \"$0\" = create ]; then echo '{\"data\":{\"k\":\"new\"}}'; fi; [ \"$0\" != test ]", ],
        })).unwrap();
        let cur = json!({"k": "old"});
        let md = json!({});
        let mk = |step| StepInput {
            step,
            path: "secret/x",
            current: &cur,
            pending: &Value::Null,
            metadata: &md,
            settings: &settings,
        };
        let created = command_step(&mk("create")).await.unwrap().unwrap();
        assert_eq!(created, json!({"k": "new"}));
        assert!(command_step(&mk("set")).await.unwrap().is_none());
        let err = command_step(&mk("test")).await.unwrap_err().to_string();
        assert!(err.contains("exited with status 1"), "{err}");
    }
}
