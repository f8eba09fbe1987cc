//! Audit entries in Vault's JSON shape (`type`, `time`, `auth`, `request`,
//! `response`, `error`), built for one device (its salt and options).

use serde_json::{json, Map, Value};

use super::config::Options;
use super::hashing::Hasher;
use super::AuditContext;
use crate::util::{now, rfc3339};
use crate::{Operation, Response, Result};
use coffer_engine::caller::TokenEntry;
use coffer_engine::request::WrapInfo;

/// The mount that answered a request, in the audit entry's words:
/// `mount_type`, `mount_point`, `mount_accessor`, `mount_class` and the
/// built-in version (under `version_key`, which Vault names differently in
/// the request and the response block).
fn mount_fields(out: &mut Value, ctx: &AuditContext<'_>, version_key: &str) {
    let Some(m) = ctx.mount else {
        return;
    };
    out["mount_type"] = json!(m.kind);
    out["mount_point"] = json!(m.path);
    out["mount_accessor"] = json!(m.accessor);
    out["mount_class"] = json!(if m.path.starts_with("auth/") {
        "auth"
    } else {
        "secret"
    });
    out[version_key] = json!(crate::mounts::BUILTIN_VERSION);
}

/// Vault's client id: the token's entity, or for a token without one the
/// base64 SHA-256 of its sorted policies and its namespace (each policy
/// after a DEL byte, the namespace after a NUL, the first byte dropped), so
/// client counts agree with Vault's for the same tokens.
pub fn client_id(token: &TokenEntry) -> String {
    if !token.entity_id.is_empty() {
        return token.entity_id.clone();
    }
    let mut policies: Vec<&str> = token.policies.iter().map(String::as_str).collect();
    policies.sort_unstable();
    let mut input = String::new();
    for p in policies {
        input.push('\u{7f}');
        input.push_str(p);
    }
    input.push('\0');
    input.push_str("root");
    let input = &input[1..];
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(coffer_crypto::hash::sha256(input.as_bytes()))
}

/// How one device renders entries.
pub struct Renderer<'a> {
    /// The device's hasher.
    pub hasher: &'a Hasher,
    /// The device's options.
    pub options: &'a Options,
}

impl Renderer<'_> {
    fn accessor(&self, accessor: &str) -> Value {
        if self.options.hmac_accessor {
            self.hasher.string(accessor)
        } else {
            Value::from(accessor)
        }
    }

    /// The `auth` block of the token that made a request.
    fn auth(&self, ctx: &AuditContext<'_>) -> Value {
        let mut out = self.token_auth(ctx);
        if let Some(results) = ctx.policy.to_json() {
            out["policy_results"] = results;
        }
        out
    }

    /// The token's part of the `auth` block.
    fn token_auth(&self, ctx: &AuditContext<'_>) -> Value {
        let Some(t) = ctx.token else {
            return json!({"token_type": "", "policies": null, "metadata": null, "display_name": ""});
        };
        let client_token = ctx
            .request
            .token
            .as_ref()
            .map(|tok| self.hasher.string(tok))
            .unwrap_or(Value::from(""));
        // As Vault: `policies` is what the request was judged with (the
        // token's and its entity's), `identity_policies` the entity's part.
        let mut policies = t.policies.clone();
        for p in &ctx.identity_policies {
            if !policies.contains(p) {
                policies.push(p.clone());
            }
        }
        let mut out = json!({
            "client_token": client_token,
            "accessor": self.accessor(&t.accessor),
            "display_name": t.display_name,
            "policies": policies,
            "token_policies": t.policies,
            "metadata": if t.meta.is_empty() { Value::Null } else { json!(t.meta) },
            "entity_id": t.entity_id,
            "token_type": t.token_type(),
            "token_ttl": t.ttl,
            "token_issue_time": chrono::DateTime::from_timestamp(t.creation_time, 0)
                .map(|d| rfc3339(&d)).unwrap_or_default(),
        });
        if !ctx.identity_policies.is_empty() {
            out["identity_policies"] = json!(ctx.identity_policies);
        }
        out
    }

    /// The `request` block.
    fn request(&self, ctx: &AuditContext<'_>) -> Value {
        let r = ctx.request;
        let data = if r.data.is_empty() {
            Value::Null
        } else {
            Value::Object(self.hasher.map(&r.data))
        };
        let mut out = json!({
            "id": r.id,
            "operation": r.operation.as_str(),
            "namespace": {"id": "root"},
            "path": r.path,
            "data": data,
            "remote_address": r.client_addr.map(|a| a.to_string()).unwrap_or_default(),
        });
        if let Some(port) = r.client_port {
            out["remote_port"] = json!(port);
        }
        if let Some(h) = super::headers::render(&r.audited_headers, |v| self.hasher.string(v)) {
            out["headers"] = h;
        }
        if let Some(t) = ctx.token {
            out["client_id"] = json!(client_id(t));
        }
        mount_fields(&mut out, ctx, "mount_running_version");
        if let (Some(tok), Some(t)) = (&r.token, ctx.token) {
            out["client_token"] = self.hasher.string(tok);
            out["client_token_accessor"] = self.accessor(&t.accessor);
        }
        out
    }

    /// A request entry.
    pub fn request_entry(
        &self,
        ctx: &AuditContext<'_>,
        error: Option<&crate::Error>,
    ) -> Map<String, Value> {
        entry([
            ("type", json!("request")),
            ("auth", self.auth(ctx)),
            ("request", self.request(ctx)),
            (
                "error",
                json!(error.map(|e| e.to_string()).unwrap_or_default()),
            ),
        ])
    }

    /// A response entry.
    pub fn response_entry(
        &self,
        ctx: &AuditContext<'_>,
        result: &Result<Response>,
    ) -> Map<String, Value> {
        let (response, error) = match result {
            Ok(resp) => (self.response(ctx, resp), String::new()),
            Err(e) => (Value::Null, e.to_string()),
        };
        entry([
            ("type", json!("response")),
            ("auth", self.auth(ctx)),
            ("request", self.request(ctx)),
            ("response", response),
            ("error", json!(error)),
        ])
    }

    /// The `response` block of a successful answer.
    fn response(&self, ctx: &AuditContext<'_>, resp: &Response) -> Value {
        let mut data = resp.data.as_ref().or(resp.raw.as_ref()).cloned();
        if self.options.elide_list_responses && ctx.request.operation == Operation::List {
            if let Some(Value::Object(m)) = &mut data {
                for key in ["keys", "key_info"] {
                    let count = match m.get(key) {
                        Some(Value::Array(a)) => a.len(),
                        Some(Value::Object(o)) => o.len(),
                        _ => continue,
                    };
                    m.insert(key.into(), json!(count));
                }
            }
        }
        let data = data.map(|d| self.hasher.value(&d)).unwrap_or(Value::Null);
        let mut out = json!({"data": data});
        mount_fields(&mut out, ctx, "mount_running_plugin_version");
        if !resp.mount_type.is_empty() {
            out["mount_type"] = json!(resp.mount_type);
        }
        if let Some(auth) = &resp.auth {
            out["auth"] = self.response_auth(auth);
        }
        if !resp.lease_id.is_empty() {
            out["secret"] = json!({"lease_id": resp.lease_id});
        }
        if !resp.warnings.is_empty() {
            out["warnings"] = json!(resp.warnings);
        }
        if let Some(info) = &resp.wrap_info {
            out["wrap_info"] =
                wrap_info_json(info, |t| self.hasher.string(t), |a| self.accessor(a));
        }
        out
    }

    /// A login's or token creation's `auth` block: token and accessor
    /// hashed, the rest (policies, metadata, TTLs) as it is.
    fn response_auth(&self, auth: &Value) -> Value {
        let mut out = auth.clone();
        if let Value::Object(m) = &mut out {
            if let Some(Value::String(t)) = m.get("client_token") {
                let h = self.hasher.string(t);
                m.insert("client_token".into(), h);
            }
            if let Some(Value::String(a)) = m.get("accessor") {
                let h = self.accessor(a);
                m.insert("accessor".into(), h);
            }
        }
        out
    }

    /// A lifecycle event entry: `event` names it, `details` describe it
    /// (names and paths only, never secret values).
    pub fn event_entry(
        &self,
        event: &str,
        actor: Option<&TokenEntry>,
        request: Option<&AuditContext<'_>>,
        details: &Value,
    ) -> Map<String, Value> {
        let auth = match actor {
            Some(t) => json!({
                "accessor": self.accessor(&t.accessor),
                "display_name": t.display_name,
                "policies": t.policies,
            }),
            None => Value::Null,
        };
        let request = match request {
            Some(ctx) => json!({
                "id": ctx.request.id,
                "operation": ctx.request.operation.as_str(),
                "path": ctx.request.path,
                "remote_address": ctx.request.client_addr.map(|a| a.to_string()).unwrap_or_default(),
            }),
            None => Value::Null,
        };
        entry([
            ("type", json!("event")),
            ("event", json!(event)),
            ("auth", auth),
            ("request", request),
            ("details", details.clone()),
        ])
    }
}

/// The `wrap_info` block as an audit entry records it: the token and the
/// accessors HMAC'd like every other token (`hash` for the token,
/// `accessor` for accessors, which follows the device's `hmac_accessor`).
fn wrap_info_json(
    info: &WrapInfo,
    hash: impl Fn(&str) -> Value,
    accessor: impl Fn(&str) -> Value,
) -> Value {
    let mut out = Map::new();
    out.insert("token".into(), hash(&info.token));
    out.insert("accessor".into(), accessor(&info.accessor));
    out.insert("ttl".into(), json!(info.ttl));
    out.insert("creation_time".into(), json!(info.creation_time));
    out.insert("creation_path".into(), json!(info.creation_path));
    if !info.wrapped_accessor.is_empty() {
        out.insert("wrapped_accessor".into(), accessor(&info.wrapped_accessor));
    }
    Value::Object(out)
}

/// A checkpoint entry (before its chain members and signature).
pub fn checkpoint_entry(
    reason: &str,
    device: &str,
    key_id: &str,
    public_key: &str,
) -> Map<String, Value> {
    entry([
        ("type", json!("checkpoint")),
        (
            "checkpoint",
            json!({
                "reason": reason,
                "device": device,
                "algorithm": "ed25519",
                "key_id": key_id,
                "public_key": public_key,
            }),
        ),
    ])
}

/// `time` followed by `members`.
fn entry<const N: usize>(members: [(&str, Value); N]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(&now())));
    for (k, v) in members {
        m.insert(k.into(), v);
    }
    m
}
