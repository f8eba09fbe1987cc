//! Response wrapping, as Vault's: a request sent with `X-Vault-Wrap-TTL`
//! gets, instead of its answer, the `wrap_info` of a single-use token whose
//! cubbyhole holds the answer; `sys/wrapping/unwrap` gives it back once.
//!
//! - [`wrap_if_asked`] is the pipeline's last step before the response is
//!   audited (`Core::serve`), so every engine, login and sys endpoint is
//!   wrapped the same way. The wrapping token is an orphan with policy
//!   `response-wrapping` only, `num_uses = 1`, TTL and maximum TTL equal to
//!   the wrap TTL; the answer is stored in its cubbyhole under `response`.
//! - One use means one unwrap: the token's use is taken atomically (by
//!   authentication when it is the request's token, by
//!   [`crate::token::TokenStore::take_use`] when it is given in the body), so
//!   of any number of concurrent unwraps exactly one gets the answer; the
//!   token (and with it its cubbyhole) is revoked when that request ends.
//! - `sys/wrapping/lookup` answers without authentication and never takes
//!   the use; `rewrap` moves the answer to a fresh token.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::Core;
use crate::engines::cubbyhole;
use crate::token::{hash_token, TokenEntry};
use crate::token_api::{self, TokenSpec};
use crate::util::rfc3339;
use crate::{Error, Request, Response, Result, WrapFormat};
use zeroize::Zeroizing;

/// The policy of every wrapping token.
pub const POLICY: &str = "response-wrapping";

/// The built-in `response-wrapping` policy: a wrapping token may unwrap
/// itself and revoke itself. Unlike Vault's text it grants nothing on
/// `cubbyhole/response` (Vault refuses that read anyway), so the wrapped
/// answer leaves only through `sys/wrapping/unwrap`.
pub const POLICY_HCL: &str = r#"
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

path "auth/token/revoke-self" {
    capabilities = ["update"]
}
"#;

/// Where a wrapping token's cubbyhole keeps the wrapped answer.
const RESPONSE_KEY: &str = "response";

/// The largest wrap TTL accepted: what Go's `time.Duration` holds, as Vault.
const MAX_WRAP_TTL: u64 = (i64::MAX / 1_000_000_000) as u64;

/// Vault's answer for an unknown, used, expired or non-wrapping token.
fn invalid() -> Error {
    Error::bad("wrapping token is not valid or does not exist")
}

pub use crate::request::WrapInfo;

/// Parses an `X-Vault-Wrap-TTL` value: a Go duration (`90s`, `5m`, `1h`,
/// `1d`) or a number of seconds. `Ok(0)` means "do not wrap". The error is
/// Vault's message.
pub fn parse_wrap_ttl(value: &str) -> std::result::Result<u64, String> {
    let v = value.trim();
    let fail = |why: &str| format!("error parsing X-Vault-Wrap-TTL header: {why}");
    if v.starts_with('-') {
        return Err(fail("requested wrap ttl cannot be negative"));
    }
    let secs =
        crate::util::parse_duration(v).ok_or_else(|| fail(&format!("invalid duration {v:?}")))?;
    if secs > MAX_WRAP_TTL {
        return Err(fail("duration is too large"));
    }
    if secs > crate::token_api::SYSTEM_MAX_TTL {
        // A wrapping token is a token: it lives no longer than any other.
        return Err(fail(&format!(
            "the wrap TTL may be at most {}s (32 days)",
            crate::token_api::SYSTEM_MAX_TTL
        )));
    }
    Ok(secs)
}

/// A wrapped answer as the cubbyhole keeps it.
#[derive(Serialize, Deserialize)]
struct Stored {
    data: Option<Value>,
    auth: Option<Value>,
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
    warnings: Vec<String>,
    mount_type: String,
}

impl Stored {
    fn of(resp: &Response) -> Stored {
        Stored {
            data: resp.data.clone().or_else(|| resp.raw.clone()),
            auth: resp.auth.clone(),
            lease_id: resp.lease_id.clone(),
            lease_duration: resp.lease_duration,
            renewable: resp.renewable,
            warnings: resp.warnings.clone(),
            mount_type: resp.mount_type.clone(),
        }
    }

    fn into_response(self) -> Response {
        Response {
            data: self.data,
            auth: self.auth,
            lease_id: self.lease_id,
            lease_duration: self.lease_duration,
            renewable: self.renewable,
            warnings: self.warnings,
            mount_type: self.mount_type,
            ..Default::default()
        }
    }
}

/// The pipeline step: when the request asked for wrapping and the answer
/// carries something (data, an `auth` block or a raw body; an empty 204 is
/// not wrapped, as in Vault), replaces it by its `wrap_info`.
pub(crate) async fn wrap_if_asked(
    core: &Core,
    req: &Request,
    authenticated: bool,
    resp: &mut Response,
) -> Result<()> {
    let Some(ttl) = req.wrap_ttl.filter(|t| *t > 0) else {
        return Ok(());
    };
    if !authenticated && resp.auth.is_none() {
        // Without a token only a login's answer is wrapped. OpenBao also
        // wraps `sys/wrapping/lookup`, which lets anyone holding one
        // wrapping token mint more without end.
        return Err(Error::bad(
            "response wrapping needs a token, except for logins",
        ));
    }
    if resp.wrap_info.is_some()
        || (resp.data.is_none() && resp.auth.is_none() && resp.raw.is_none())
    {
        return Ok(());
    }
    *resp = wrap(core, Stored::of(resp), ttl, &req.path, req.wrap_format).await?;
    Ok(())
}

/// Mints a wrapping token for `stored` and puts the answer in its cubbyhole.
async fn wrap(
    core: &Core,
    stored: Stored,
    ttl: u64,
    creation_path: &str,
    format: WrapFormat,
) -> Result<Response> {
    let wrapped_accessor = wrapped_accessor(&stored);
    let spec = TokenSpec {
        policies: vec![POLICY.into()],
        no_default_policy: true,
        ttl,
        explicit_max_ttl: ttl,
        mount_max_ttl: ttl,
        num_uses: 1,
        path: creation_path.to_string(),
        ..Default::default()
    };
    let (token, entry) = token_api::mint(core, spec).await?;
    let body =
        serde_json::to_value(&stored).map_err(|e| Error::encode("the wrapped response", e))?;
    let saved = match cubbyhole_view(core, &entry) {
        Ok(view) => view.put_json(RESPONSE_KEY, &body).await,
        Err(e) => Err(e),
    };
    if let Err(e) = saved {
        // A wrapping token without its answer must not outlive this failure.
        core.revoke_token_tree(&entry.id_hash).await?;
        return Err(e);
    }
    let token = match format {
        WrapFormat::Token => token,
        WrapFormat::Jwt => {
            let jwt = core
                .tokens
                .wrapping_jwt()
                .issue(
                    &token,
                    entry.creation_time,
                    entry.ttl,
                    &core.config.api_addr,
                )
                .await;
            match jwt {
                Ok(jwt) => jwt,
                Err(e) => {
                    core.revoke_token_tree(&entry.id_hash).await?;
                    return Err(e);
                }
            }
        }
    };
    Ok(Response {
        wrap_info: Some(WrapInfo {
            token,
            accessor: entry.accessor.clone(),
            ttl: entry.ttl,
            creation_time: creation_time(&entry),
            creation_path: entry.path.clone(),
            wrapped_accessor,
        }),
        ..Default::default()
    })
}

/// The accessor of what is inside: a token's (login, token creation) or an
/// AppRole secret ID's, as Vault reports it.
fn wrapped_accessor(stored: &Stored) -> String {
    let field = |v: &Option<Value>, name: &str| {
        v.as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    field(&stored.auth, "accessor")
        .or_else(|| {
            (stored.mount_type == "approle")
                .then(|| field(&stored.data, "secret_id_accessor"))
                .flatten()
        })
        .unwrap_or_default()
}

fn creation_time(entry: &TokenEntry) -> String {
    chrono::DateTime::from_timestamp(entry.creation_time, 0)
        .map(|t| rfc3339(&t))
        .unwrap_or_default()
}

fn cubbyhole_view(core: &Core, entry: &TokenEntry) -> Result<crate::barrier::View> {
    let router = core.router.read();
    let m = router
        .get(cubbyhole::MOUNT_PATH)
        .ok_or_else(|| Error::Internal("the cubbyhole mount is missing".into()))?;
    Ok(cubbyhole::token_view(&m.view, entry))
}

/// Whether `entry` is a wrapping token.
fn is_wrapping(entry: &TokenEntry) -> bool {
    entry.policies.len() == 1 && entry.policies[0] == POLICY
}

/// The `sys/wrapping/*` paths answered without a token (`lookup`, as Vault).
pub(crate) fn is_unauthenticated(rest: &str) -> bool {
    rest == "wrapping/lookup"
}

/// The error of a request to `sys/wrapping/unwrap` whose token did not
/// authenticate: the token sent is the wrapping token, so Vault answers
/// that it is not valid (400), whether unknown, expired or already
/// unwrapped. Without any token it stays a 403.
pub(crate) fn authentication_error(req: &Request, e: Error) -> Error {
    match e {
        Error::PermissionDenied if req.path == "sys/wrapping/unwrap" && req.token.is_some() => {
            invalid()
        }
        e => e,
    }
}

/// The token the body names, if any (not empty); a wrapping JWT this
/// store signed stands for its token.
async fn body_token(core: &Core, req: &Request) -> Result<Option<Zeroizing<String>>> {
    let named = match req.data.get("token") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(t)) if t.is_empty() => return Ok(None),
        Some(Value::String(t)) => t,
        Some(_) => return Err(Error::bad("token: expected a string")),
    };
    Ok(Some(match opened_jwt(core, named).await? {
        Some(token) => token,
        None => Zeroizing::new(named.clone()),
    }))
}

/// The refusal of a JWT that is not a valid wrapping JWT of this store, in
/// OpenBao's words and status.
fn invalid_jwt() -> Error {
    Error::Status {
        code: 403,
        errors: vec![
            "error validating wrapping token: wrapping token signature could not be validated"
                .into(),
        ],
    }
}

/// The wrapping token a JWT stands for, when `token` has a JWT's shape:
/// refused when it is not a valid wrapping JWT of this store; `None` for
/// anything else (a plain token).
async fn opened_jwt(core: &Core, token: &str) -> Result<Option<Zeroizing<String>>> {
    if !crate::wrapping_jwt::looks_like_jwt(token) {
        return Ok(None);
    }
    core.tokens
        .wrapping_jwt()
        .open(token, crate::util::now().timestamp())
        .await?
        .map(Some)
        .ok_or_else(invalid_jwt)
}

/// The pipeline's step before authentication on `sys/wrapping/{lookup,
/// unwrap,rewrap}` (`rel`, relative to `sys/`): a wrapping JWT sent as
/// the request's token is replaced by the token it stands for; a JWT that
/// is not a valid one of this store is refused (403, as OpenBao), and any
/// other token is left as sent.
pub(crate) async fn open_jwt_token(core: &Core, req: &mut Request, rel: &str) -> Result<()> {
    if !matches!(
        rel,
        "wrapping/lookup" | "wrapping/unwrap" | "wrapping/rewrap"
    ) {
        return Ok(());
    }
    let Some(sent) = req.token.as_deref() else {
        return Ok(());
    };
    if let Some(token) = opened_jwt(core, sent).await? {
        req.token = Some(token);
    }
    Ok(())
}

/// Handles `sys/wrapping/<op>` for an authenticated caller.
pub(crate) async fn handle(
    core: &Core,
    req: &Request,
    op: &str,
    caller: &TokenEntry,
) -> Result<Response> {
    use crate::Operation::*;
    match (op, req.operation) {
        ("wrap", Create | Update) => {
            if req.wrap_ttl.unwrap_or(0) == 0 {
                return Err(Error::bad("endpoint requires response wrapping to be used"));
            }
            if req.data.is_empty() {
                return Err(Error::bad("no data provided"));
            }
            Ok(Response::data(Value::Object(req.data.clone())))
        }
        ("unwrap", Create | Update) => {
            let (entry, stored) = take(core, req, caller).await?;
            if entry.id_hash != caller.id_hash {
                // The caller's own token is revoked by the pipeline when this
                // request ends (it took its last use); another one here.
                core.revoke_token_tree(&entry.id_hash).await?;
            }
            Ok(stored.into_response())
        }
        ("rewrap", Create | Update) => {
            let (entry, stored) = take(core, req, caller).await?;
            let ttl = req.wrap_ttl.filter(|t| *t > 0).unwrap_or(entry.ttl);
            let fresh = wrap(core, stored, ttl, &entry.path, req.wrap_format).await?;
            if entry.id_hash != caller.id_hash {
                core.revoke_token_tree(&entry.id_hash).await?;
            }
            Ok(fresh)
        }
        ("wrap" | "unwrap" | "rewrap", _) => Err(Error::UnsupportedOperation),
        _ => Err(Error::UnsupportedPath(format!(
            "no handler for route \"sys/{op}\". route entry not found."
        ))),
    }
}

/// Takes the wrapping token's single use and its answer: the token in the
/// body, or else the caller's own (whose use authentication already took).
async fn take(core: &Core, req: &Request, caller: &TokenEntry) -> Result<(TokenEntry, Stored)> {
    let named = body_token(core, req).await?;
    let entry = match named.as_deref() {
        Some(t) if hash_token(t) != caller.id_hash => {
            let hash = hash_token(t);
            // Checked before the use is taken: naming some other token in
            // the body must not burn one of its uses.
            match core.tokens.lookup_hash(&hash).await? {
                Some(e) if is_wrapping(&e) => {}
                _ => return Err(invalid()),
            }
            core.tokens.take_use(&hash).await?.ok_or_else(invalid)?
        }
        _ => caller.clone(),
    };
    if !is_wrapping(&entry) {
        return Err(invalid());
    }
    let view = cubbyhole_view(core, &entry)?;
    let body: Value = view.get_json(RESPONSE_KEY).await?.ok_or_else(invalid)?;
    let stored: Stored =
        serde_json::from_value(body).map_err(|e| Error::corrupt_json("wrapped response", &e))?;
    Ok((entry, stored))
}

/// `sys/wrapping/lookup`: the wrapping token's creation path, time and TTL.
/// Needs no token of its own and never takes the wrapping token's use.
pub(crate) async fn lookup(core: &Core, req: &Request) -> Result<Response> {
    use crate::Operation::*;
    if !matches!(req.operation, Read | Create | Update) {
        return Err(Error::UnsupportedOperation);
    }
    let named = body_token(core, req).await?;
    let token = match named.as_deref() {
        Some(t) => t.as_str(),
        None => match req.token.as_deref().map(String::as_str) {
            Some(t) if !t.is_empty() => t,
            _ => {
                return Err(Error::Status {
                    code: 403,
                    errors: vec!["error validating wrapping token: token is empty".into()],
                })
            }
        },
    };
    let entry = match core.tokens.lookup(token).await? {
        Some(e) if is_wrapping(&e) => e,
        _ => return Err(invalid()),
    };
    Ok(Response::data(json!({
        "creation_path": entry.path,
        "creation_time": creation_time(&entry),
        "creation_ttl": entry.ttl,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_ttls_parse_as_vault_does() {
        assert_eq!(parse_wrap_ttl("60"), Ok(60));
        assert_eq!(parse_wrap_ttl(" 30"), Ok(30));
        assert_eq!(parse_wrap_ttl("90s"), Ok(90));
        assert_eq!(parse_wrap_ttl("5m"), Ok(300));
        assert_eq!(parse_wrap_ttl("1h"), Ok(3600));
        assert_eq!(parse_wrap_ttl("1d"), Ok(86400));
        assert_eq!(parse_wrap_ttl("0"), Ok(0));
        assert!(parse_wrap_ttl("-5")
            .unwrap_err()
            .contains("cannot be negative"));
        assert!(parse_wrap_ttl("abc")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(parse_wrap_ttl("").is_err());
        assert!(parse_wrap_ttl("10000000000000").is_err());
        assert_eq!(parse_wrap_ttl("2764800"), Ok(2_764_800));
        assert!(parse_wrap_ttl("2764801").unwrap_err().contains("at most"));
        assert!(parse_wrap_ttl("1000000000").is_err());
    }

    #[test]
    fn the_policy_parses() {
        crate::policy::Policy::parse(POLICY, POLICY_HCL).expect("builtin policy");
    }

    #[test]
    fn only_approle_answers_name_a_secret_id_accessor() {
        let mut s = Stored::of(&Response::data(json!({"secret_id_accessor": "x"})));
        assert_eq!(wrapped_accessor(&s), "");
        s.mount_type = "approle".into();
        assert_eq!(wrapped_accessor(&s), "x");
        s.auth = Some(json!({"accessor": "a"}));
        assert_eq!(wrapped_accessor(&s), "a");
    }
}
