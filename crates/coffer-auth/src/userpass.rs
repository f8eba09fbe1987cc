//! The userpass auth method, as Vault's `userpass`: users with a password
//! (kept only as an argon2id hash) and token settings; a login with the
//! right password yields a token.
//!
//! Storage layout inside the mount's view: `user/<name>` holds a [`User`].
//! User names are lower-cased, as Vault does.

mod password;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::approle::valid_name;
use crate::engine::{Engine, EngineCtx};
use crate::token_params::{Aliases, TokenParams};
use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Vault's answer to a wrong user name or password.
const INVALID: &str = "invalid username or password";

/// A user as stored under `user/<name>`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    /// The argon2id PHC string of the password.
    pub password_hash: String,
    /// The token settings.
    pub token: TokenParams,
}

/// Leaves out the password hash.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("password_hash", &crate::redact::Redacted)
            .field("token", &self.token)
            .finish()
    }
}

/// The userpass engine of one mount.
#[derive(Default)]
pub struct UserPass {
    /// Serializes changes to users (read, modify, write).
    lock: Mutex<()>,
}

impl UserPass {
    /// A new engine; prepares the dummy hash used for unknown users.
    pub fn new() -> Self {
        password::warm_up();
        UserPass::default()
    }
}

fn user_key(name: &str) -> String {
    format!("user/{name}")
}

/// The lower-cased user name of a path segment, or 404 for an invalid one.
fn user_name(segment: &str) -> Result<String> {
    let name = segment.to_lowercase();
    if valid_name(&name) {
        Ok(name)
    } else {
        Err(Error::UnsupportedPath("unsupported path".into()))
    }
}

/// Vault answers writes on a missing user's sub-paths with a 500.
fn no_user() -> Error {
    Error::Status {
        code: 500,
        errors: vec!["username does not exist".into()],
    }
}

/// The `password` parameter, or 400 "missing password".
fn password_param(p: &Params<'_>) -> Result<Zeroizing<String>> {
    match p.str("password")? {
        Some(s) if !s.is_empty() => Ok(Zeroizing::new(s.to_string())),
        _ => Err(Error::bad("missing password")),
    }
}

impl UserPass {
    async fn load(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Option<User>> {
        ctx.view.get_json(&user_key(name)).await
    }

    async fn read_user(&self, ctx: &EngineCtx<'_>, name: &str) -> Result<Response> {
        let user = self.load(ctx, name).await?.ok_or(Error::NotFound)?;
        let mut data = Map::new();
        user.token.to_json_fields(&mut data);
        Ok(Response::data(Value::Object(data)))
    }

    async fn write_user(&self, ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
        let p = Params(&req.data);
        let new_hash = if p.has("password") || req.operation == Operation::Create {
            Some(password::hash(password_param(&p)?).await?)
        } else {
            None
        };
        let _guard = self.lock.lock().await;
        let existing = self.load(ctx, name).await?;
        if existing.is_none() && new_hash.is_none() {
            return Err(Error::bad("missing password"));
        }
        let token =
            TokenParams::parse_with(&p, existing.as_ref().map(|u| &u.token), Aliases::USERPASS)?;
        let mut user = existing.unwrap_or_default();
        user.token = token;
        if let Some(h) = new_hash {
            user.password_hash = h;
        }
        ctx.view.put_json(&user_key(name), &user).await?;
        Ok(Response::empty())
    }

    async fn set_password(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        name: &str,
    ) -> Result<Response> {
        if self.load(ctx, name).await?.is_none() {
            return Err(no_user());
        }
        let hash = password::hash(password_param(&Params(&req.data))?).await?;
        let _guard = self.lock.lock().await;
        let mut user = self.load(ctx, name).await?.ok_or_else(no_user)?;
        user.password_hash = hash;
        ctx.view.put_json(&user_key(name), &user).await?;
        Ok(Response::empty())
    }

    async fn set_policies(
        &self,
        ctx: &EngineCtx<'_>,
        req: &Request,
        name: &str,
    ) -> Result<Response> {
        let _guard = self.lock.lock().await;
        let mut user = self.load(ctx, name).await?.ok_or_else(no_user)?;
        let only: Map<String, Value> = ["token_policies", "policies"]
            .iter()
            .filter_map(|k| req.data.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        user.token = TokenParams::parse_with(&Params(&only), Some(&user.token), Aliases::USERPASS)?;
        ctx.view.put_json(&user_key(name), &user).await?;
        Ok(Response::empty())
    }

    /// Logs `name` in. An unknown user costs a password verification too,
    /// and gets the same answer as a wrong password.
    async fn login(&self, ctx: &EngineCtx<'_>, req: &Request, name: &str) -> Result<Response> {
        let password = password_param(&Params(&req.data))?;
        let user = self.load(ctx, name).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        if !password::verify(password, hash).await {
            return Err(Error::bad(INVALID));
        }
        let Some(user) = user else {
            return Err(Error::bad(INVALID));
        };
        if !crate::ip_allowed(req.client_addr, &user.token.bound_cidrs) {
            return Err(Error::PermissionDenied);
        }
        let metadata = BTreeMap::from([("username".to_string(), name.to_string())]);
        let mut grant = user.token.grant(name, metadata);
        grant.entity_alias = Some(name.to_string());
        Ok(Response::login(grant))
    }
}

#[async_trait]
impl Engine for UserPass {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn check_renewal(
        &self,
        ctx: &EngineCtx<'_>,
        metadata: &BTreeMap<String, String>,
        policies: &[String],
    ) -> Result<()> {
        let name = metadata.get("username").map(String::as_str).unwrap_or("");
        let user = self
            .load(ctx, name)
            .await?
            .ok_or_else(|| Error::bad("user no longer exists, not renewing"))?;
        if !crate::same_policies(&user.token.policies, policies) {
            return Err(Error::bad("policies have changed, not renewing"));
        }
        Ok(())
    }

    async fn exists(
        &self,
        ctx: &EngineCtx<'_>,
        _req: &Request,
        path: &str,
    ) -> Result<Option<bool>> {
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["users", seg] if !seg.is_empty() => match user_name(seg) {
                Ok(name) => Ok(Some(self.load(ctx, &name).await?.is_some())),
                Err(_) => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// User names are case-insensitive: `users/<name>...` and `login/<name>` are lower-cased.
    fn canonical_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        coffer_engine::names::lowercase_name(path, &["users", "login"])
    }

    fn is_unauthenticated(&self, path: &str) -> bool {
        path.starts_with("login/")
    }

    fn login_identity(&self, _req: &Request, path: &str) -> Option<String> {
        path.strip_prefix("login/")
            .filter(|n| !n.is_empty())
            .map(str::to_lowercase)
    }

    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response> {
        use Operation::*;
        let op = req.operation;
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match (parts.as_slice(), op) {
            (["users"], List) => Response::list(ctx.view.list("user/").await?),
            (["users"], _) => Err(Error::UnsupportedOperation),
            (["users", seg], _) => {
                let name = user_name(seg)?;
                match op {
                    Read => self.read_user(ctx, &name).await,
                    Create | Update => self.write_user(ctx, req, &name).await,
                    Delete => {
                        let _guard = self.lock.lock().await;
                        ctx.view.delete(&user_key(&name)).await?;
                        Ok(Response::empty())
                    }
                    _ => Err(Error::UnsupportedOperation),
                }
            }
            (["users", seg, "password"], Create | Update) => {
                self.set_password(ctx, req, &user_name(seg)?).await
            }
            (["users", seg, "policies"], Create | Update) => {
                self.set_policies(ctx, req, &user_name(seg)?).await
            }
            (["users", _, "password" | "policies"], _) => Err(Error::UnsupportedOperation),
            (["login", seg], Create | Update) => self.login(ctx, req, &user_name(seg)?).await,
            (["login", _], _) => Err(Error::UnsupportedOperation),
            _ => Err(Error::UnsupportedPath("unsupported path".into())),
        }
    }
}

#[cfg(test)]
mod tests;
