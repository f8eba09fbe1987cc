//! Calling the core: every page's data comes from a core [`Request`]
//! answered by [`Core::handle`], exactly as the HTTP API's are.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response as HttpResponse};
use coffer_core::{Core, Error, Operation, Request, Response};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::layout::{error_page, Chrome};
use crate::session::{self, Authed};
use crate::Ui;

/// Why a page could not be produced.
pub(crate) enum UiError {
    /// Not logged in, or the session or its token ended: back to the login
    /// page with a reason in words.
    Login(&'static str),
    /// A page answered with this status and these messages, in words.
    Page(u16, String, Vec<String>),
}

impl UiError {
    /// The 403 of a POST without its session's CSRF token.
    pub(crate) fn csrf() -> Self {
        UiError::Page(
            403,
            "Form refused".into(),
            vec!["This form did not carry this session's security token (CSRF). Reload the page and submit it again.".into()],
        )
    }
}

/// A handler's result.
pub(crate) type Page = Result<HttpResponse, UiError>;

/// The error page, rendered without a session's navigation when there is
/// none (the error knows nothing of the session).
impl IntoResponse for UiError {
    fn into_response(self) -> HttpResponse {
        match self {
            UiError::Login(reason) => {
                Redirect::to(&format!("/ui/login?reason={reason}")).into_response()
            }
            UiError::Page(status, title, msgs) => {
                let mut resp = error_page(None, status, &title, &msgs);
                // Kept for [`with_chrome`], which renders the page again
                // with the session's navigation.
                resp.extensions_mut().insert(ErrorPage(status, title, msgs));
                resp
            }
        }
    }
}

/// An error page's content, carried on its response.
#[derive(Clone)]
pub(crate) struct ErrorPage(u16, String, Vec<String>);

/// Middleware: an error page answered to a logged-in browser gets the
/// navigation and the logout form of its session.
pub(crate) async fn with_chrome(
    State(ui): State<Arc<Ui>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> HttpResponse {
    let sid = session::cookie_of(req.headers(), ui.config.tls);
    let resp = next.run(req).await;
    let Some(ErrorPage(status, title, msgs)) = resp.extensions().get::<ErrorPage>().cloned() else {
        return resp;
    };
    match sid.and_then(|id| ui.sessions.get(&id)) {
        Some(a) => error_page(
            Some(&Chrome {
                name: a.name,
                csrf: a.csrf,
            }),
            status,
            &title,
            &msgs,
        ),
        None => resp,
    }
}

/// A logged-in request: the session, and the peer for the audit trail.
pub(crate) struct Ctx {
    pub(crate) ui: Arc<Ui>,
    pub(crate) auth: Authed,
    pub(crate) peer: Option<std::net::IpAddr>,
}

impl FromRequestParts<Arc<Ui>> for Ctx {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Ui>) -> Result<Self, UiError> {
        let State(ui) = State::<Arc<Ui>>::from_request_parts(parts, state)
            .await
            .map_err(|_| UiError::Login("session"))?;
        let peer = peer_of(&ui, &parts.extensions, &parts.headers);
        let id =
            session::cookie_of(&parts.headers, ui.config.tls).ok_or(UiError::Login("login"))?;
        let auth = ui.sessions.get(&id).ok_or(UiError::Login("expired"))?;
        Ok(Ctx { ui, auth, peer })
    }
}

/// The client's address: the connection's peer, or behind one of the
/// listener's trusted proxies the address it forwarded (the same rule as
/// the API's, so the audit trail, `bound_cidrs` and login lockout see the
/// client and not the proxy). A trusted proxy's header naming no address
/// leaves the proxy's own.
pub(crate) fn peer_of(
    ui: &Ui,
    ext: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
) -> Option<std::net::IpAddr> {
    let peer = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    match &ui.config.client_addr {
        Some(resolve) => Some(resolve(peer, headers).unwrap_or(peer)),
        None => Some(peer),
    }
}

/// Runs `req` through the core in a task of its own (as the HTTP layer
/// does: a browser that goes away never cancels an operation midway).
pub(crate) async fn handle(core: &Arc<Core>, req: Request) -> Result<Response, Error> {
    let core = core.clone();
    match tokio::spawn(async move { core.handle(req).await }).await {
        Ok(r) => r,
        Err(_) => Err(Error::Stopped("the request task")),
    }
}

/// A core request.
pub(crate) fn request(
    op: Operation,
    path: &str,
    data: Map<String, Value>,
    token: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Request {
    let mut req = Request::new(op, path);
    req.data = data;
    if let Some(t) = token {
        req = req.with_token(t);
    }
    req.client_addr = peer;
    req
}

/// What a core answer holds: its `data`, or for the raw sys endpoints the
/// raw body.
pub(crate) fn body(r: &Response) -> Value {
    r.data
        .clone()
        .or_else(|| r.raw.clone())
        .unwrap_or(Value::Null)
}

impl Ctx {
    /// The page chrome (navigation, CSRF token for the logout form).
    pub(crate) fn chrome(&self) -> Chrome {
        Chrome {
            name: self.auth.name.clone(),
            csrf: self.auth.csrf.clone(),
        }
    }

    /// Calls the core; errors are returned as they are, for a page that
    /// shows them in place (a CAS conflict, a policy's parse error).
    pub(crate) async fn try_call(
        &self,
        op: Operation,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Response, Error> {
        let req = request(op, path, data, Some(&self.auth.token), self.peer);
        handle(&self.ui.core, req).await
    }

    /// Calls the core; a refusal becomes the 403 page (or the login page
    /// when the token itself is no longer valid), other errors their page.
    pub(crate) async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Value, UiError> {
        match self.try_call(op, path, data).await {
            Ok(r) => Ok(body(&r)),
            Err(e) => Err(self.explain(e, op, path).await),
        }
    }

    /// Like [`Ctx::call`], but "nothing there" (404) is `None`.
    pub(crate) async fn call_opt(
        &self,
        op: Operation,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Option<Value>, UiError> {
        match self.try_call(op, path, data).await {
            Ok(r) => Ok(Some(body(&r))),
            Err(e) if e.status() == 404 => Ok(None),
            Err(e) => Err(self.explain(e, op, path).await),
        }
    }

    /// A GET with query parameters.
    pub(crate) async fn read(&self, path: &str) -> Result<Value, UiError> {
        self.call(Operation::Read, path, Map::new()).await
    }

    /// The page for a core error. A 403 is first told apart: if the token
    /// can no longer even look itself up, it was revoked or expired and the
    /// session ends.
    pub(crate) async fn explain(&self, e: Error, op: Operation, path: &str) -> UiError {
        if matches!(e, Error::PermissionDenied) {
            if !self.token_alive().await {
                self.ui.sessions.drop_session(&self.auth.id);
                return UiError::Login("revoked");
            }
            return UiError::Page(
                403,
                "Not allowed".into(),
                vec![format!(
                    "Your token's policies do not allow {} on {path}. Ask the owner of the secret or an administrator for access.",
                    verb(op)
                )],
            );
        }
        let status = e.status();
        let msgs = match &e {
            e if e.is_internal() => {
                vec!["The server failed to answer; see its log.".to_string()]
            }
            Error::NotFound => vec![format!("Nothing exists at {path}.")],
            Error::Sealed => vec![
                "The server is sealed: it must be unsealed before anything can be read.".into(),
            ],
            _ => e.messages(),
        };
        let title = match status {
            404 => "Not found",
            400 => "Request refused",
            503 => "Unavailable",
            _ => "Error",
        };
        UiError::Page(status, title.into(), msgs)
    }

    /// Whether the session's token is still valid (a `lookup-self`, which
    /// the `default` policy grants).
    pub(crate) async fn token_alive(&self) -> bool {
        let req = request(
            Operation::Read,
            "auth/token/lookup-self",
            Map::new(),
            Some(&self.auth.token),
            self.peer,
        );
        match handle(&self.ui.core, req).await {
            Ok(_) => true,
            Err(Error::PermissionDenied) => false,
            // Another failure says nothing about the token.
            Err(_) => true,
        }
    }

    /// The capabilities the token holds on each of `paths`
    /// (`sys/capabilities-self`); used only to hide buttons the core would
    /// refuse anyway.
    pub(crate) async fn capabilities(&self, paths: &[String]) -> BTreeMap<String, Vec<String>> {
        let mut data = Map::new();
        data.insert("paths".into(), Value::from(paths.to_vec()));
        let mut out = BTreeMap::new();
        if let Ok(r) = self
            .try_call(Operation::Update, "sys/capabilities-self", data)
            .await
        {
            let b = body(&r);
            for p in paths {
                let caps = b[p.as_str()]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(p.clone(), caps);
            }
        }
        out
    }
}

/// Whether `caps` allow `want` (root and sudo holders allow anything).
pub(crate) fn allows(caps: &BTreeMap<String, Vec<String>>, path: &str, want: &str) -> bool {
    caps.get(path).is_some_and(|c| {
        c.iter().any(|x| x == want || x == "root") && !c.iter().any(|x| x == "deny")
    })
}

/// An operation in words.
fn verb(op: Operation) -> &'static str {
    match op {
        Operation::Read => "reading",
        Operation::List => "listing",
        Operation::Create => "creating",
        Operation::Update => "writing",
        Operation::Patch => "patching",
        Operation::Delete => "deleting",
    }
}

/// Parses a form body; `csrf` must match the session's in constant time,
/// else the POST is refused (403) before anything reaches the core.
pub(crate) fn form(ctx: &Ctx, body: &[u8]) -> Result<Fields, UiError> {
    let fields = parse_form(body);
    let given = fields.get("csrf").map(|s| s.as_str()).unwrap_or("");
    if given.is_empty()
        || !coffer_crypto::hash::constant_time_eq(given.as_bytes(), ctx.auth.csrf.as_bytes())
    {
        return Err(UiError::csrf());
    }
    Ok(fields)
}

/// A form's fields; values (passwords, secret values) are zeroized on drop.
pub(crate) type Fields = BTreeMap<String, Zeroizing<String>>;

/// The fields of an `application/x-www-form-urlencoded` body.
pub(crate) fn parse_form(body: &[u8]) -> Fields {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
        .collect()
}

/// The form field `name`, trimmed, or a 400 page naming it.
pub(crate) fn field<'a>(f: &'a Fields, name: &str) -> Result<&'a str, UiError> {
    match f.get(name).map(|s| s.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(UiError::Page(
            400,
            "Missing field".into(),
            vec![format!("The form field {name:?} is required.")],
        )),
    }
}

/// A URL query parameter value, encoded.
pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
