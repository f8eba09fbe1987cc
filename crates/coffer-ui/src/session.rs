//! Server-side sessions: a random id in a cookie maps to the token, which
//! never leaves server memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use parking_lot::Mutex;
use serde_json::Value;
use zeroize::Zeroizing;

/// The session cookie's name on a plain-HTTP listener.
pub const SESSION_COOKIE_PLAIN: &str = "coffer_ui";
/// The session cookie's name under TLS: `__Host-` binds it to this host
/// and to `Secure` (see [`cookie_header`] for its path).
const SESSION_COOKIE_TLS: &str = "__Host-coffer_ui";

/// How long a login form's pre-session lives.
const LOGIN_FORM_TTL: Duration = Duration::from_secs(15 * 60);
/// The longest a session lives when its token has no TTL (a root token).
pub(crate) const MAX_SESSION: Duration = Duration::from_secs(8 * 3600);
/// Most sessions (and login forms) held at once; past it the oldest
/// expiring ones are dropped first.
const MAX_SESSIONS: usize = 10_000;

/// One browser's session.
pub(crate) struct Session {
    /// The token; `None` for a login form not yet submitted.
    pub(crate) token: Option<Zeroizing<String>>,
    /// The CSRF token of this session's forms.
    pub(crate) csrf: String,
    /// When the session ends (the token's expiry, or the login form's).
    pub(crate) expires: Instant,
    /// Who is logged in, as the token's display name.
    pub(crate) name: String,
    /// Rotations started from this session, by job id.
    pub(crate) jobs: HashMap<String, Arc<Mutex<Job>>>,
}

/// A rotation started from the UI and its outcome once the core answered.
pub(crate) struct Job {
    /// `<mount>/<path>` of the secret.
    pub(crate) secret: String,
    /// When it was started.
    pub(crate) started: chrono::DateTime<chrono::Utc>,
    /// `None` while running; the core's answer data, or its error messages.
    pub(crate) outcome: Option<Result<Value, (u16, Vec<String>)>>,
}

/// What a request's handler gets of its session.
#[derive(Clone)]
pub(crate) struct Authed {
    /// The session id.
    pub(crate) id: String,
    /// The token, for core requests.
    pub(crate) token: Zeroizing<String>,
    /// The CSRF token to put into forms.
    pub(crate) csrf: String,
    /// The display name.
    pub(crate) name: String,
}

/// All sessions of this server process.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// A fresh 256-bit random value, hex.
pub(crate) fn random_id() -> String {
    hex::encode(coffer_crypto::random::bytes(32))
}

impl Sessions {
    fn insert(&self, id: String, s: Session) {
        let mut map = self.map.lock();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            // Drop the pre-sessions (login forms) first, then anything.
            map.retain(|_, s| s.token.is_some());
            if map.len() >= MAX_SESSIONS {
                if let Some(k) = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&k);
                }
            }
        }
        map.insert(id, s);
    }

    /// A new login form's pre-session: its id and CSRF token.
    pub(crate) fn new_login_form(&self) -> (String, String) {
        let (id, csrf) = (random_id(), random_id());
        self.insert(
            id.clone(),
            Session {
                token: None,
                csrf: csrf.clone(),
                expires: Instant::now() + LOGIN_FORM_TTL,
                name: String::new(),
                jobs: HashMap::new(),
            },
        );
        (id, csrf)
    }

    /// Whether `csrf` is the CSRF token of the live (pre-)session `id`; a
    /// login form's pre-session is consumed by the check.
    pub(crate) fn check_login_csrf(&self, id: &str, csrf: &str) -> bool {
        let mut map = self.map.lock();
        let Some(s) = map.get(id) else { return false };
        let ok = s.expires > Instant::now()
            && coffer_crypto::hash::constant_time_eq(s.csrf.as_bytes(), csrf.as_bytes());
        if ok && s.token.is_none() {
            map.remove(id);
        }
        ok
    }

    /// Starts a logged-in session holding `token` for `ttl` (capped at
    /// [`MAX_SESSION`]; a zero TTL means the token does not expire).
    /// Returns the new session id: never the login form's, so a session
    /// id planted before the login is worthless.
    pub(crate) fn start(&self, token: Zeroizing<String>, ttl: Duration, name: String) -> String {
        let id = random_id();
        let ttl = if ttl.is_zero() {
            MAX_SESSION
        } else {
            ttl.min(MAX_SESSION)
        };
        self.insert(
            id.clone(),
            Session {
                token: Some(token),
                csrf: random_id(),
                expires: Instant::now() + ttl,
                name,
                jobs: HashMap::new(),
            },
        );
        id
    }

    /// The logged-in session `id`, if it is live; an expired one is dropped.
    pub(crate) fn get(&self, id: &str) -> Option<Authed> {
        let mut map = self.map.lock();
        let s = map.get(id)?;
        if s.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        let token = s.token.clone()?;
        Some(Authed {
            id: id.to_owned(),
            token,
            csrf: s.csrf.clone(),
            name: s.name.clone(),
        })
    }

    /// Ends session `id` (logout, or a token found dead).
    pub(crate) fn drop_session(&self, id: &str) {
        self.map.lock().remove(id);
    }

    /// Records a rotation job of session `id`.
    pub(crate) fn add_job(&self, id: &str, job_id: String, job: Arc<Mutex<Job>>) {
        if let Some(s) = self.map.lock().get_mut(id) {
            if s.jobs.len() >= 64 {
                s.jobs.retain(|_, j| j.lock().outcome.is_none());
            }
            s.jobs.insert(job_id, job);
        }
    }

    /// Rotation job `job_id` of session `id`.
    pub(crate) fn job(&self, id: &str, job_id: &str) -> Option<Arc<Mutex<Job>>> {
        self.map.lock().get(id)?.jobs.get(job_id).cloned()
    }

    /// Moves session `id`'s expiry (tests).
    #[cfg(test)]
    pub(crate) fn expire_now(&self, id: &str) {
        if let Some(s) = self.map.lock().get_mut(id) {
            s.expires = Instant::now();
        }
    }
}

/// The session cookie's name for this listener.
pub(crate) fn cookie_name(tls: bool) -> &'static str {
    if tls {
        SESSION_COOKIE_TLS
    } else {
        SESSION_COOKIE_PLAIN
    }
}

/// The `Set-Cookie` value for session `id` (an empty id clears it).
///
/// `HttpOnly; SameSite=Strict; Path=/ui`. Under TLS the cookie is also
/// `Secure` with the `__Host-` prefix; browsers accept a `__Host-` cookie
/// only with `Path=/`, so there it is `Path=/` (the host has no other
/// cookie-reading path: the API takes tokens in headers only).
pub(crate) fn cookie_header(tls: bool, id: &str, max_age: Option<u64>) -> String {
    let name = cookie_name(tls);
    let path = if tls { "/" } else { "/ui" };
    let mut c = format!("{name}={id}; HttpOnly; SameSite=Strict; Path={path}");
    if tls {
        c.push_str("; Secure");
    }
    match max_age {
        Some(s) => c.push_str(&format!("; Max-Age={s}")),
        None => c.push_str("; Max-Age=0"),
    }
    c
}

/// The session id the request's cookie names.
pub(crate) fn cookie_of(headers: &HeaderMap, tls: bool) -> Option<String> {
    let name = cookie_name(tls);
    for value in headers.get_all(axum::http::header::COOKIE) {
        let Ok(v) = value.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == name && val.len() == 64 && val.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Some(val.to_owned());
                }
            }
        }
    }
    None
}
