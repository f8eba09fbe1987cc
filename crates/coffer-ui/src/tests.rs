//! The UI against an in-process core: escaping, CSRF, headers, sessions,
//! and that a read-only token can do nothing more here than over the API.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request as HttpRequest, StatusCode};
use axum::Router;
use coffer_core::{Core, Operation, Request};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::UiConfig;

struct T {
    app: Router,
    ui: Arc<crate::Ui>,
    core: Arc<Core>,
    root: String,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The value of `name="csrf"` in a page.
fn csrf_of(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[i..i + 64].to_owned()
}

fn cookie_of(r: &Reply) -> String {
    let c = r
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie");
    c.split(';').next().unwrap_or("").to_owned()
}

impl T {
    async fn new() -> T {
        let core = Core::new(
            Arc::new(coffer_storage::MemoryBackend::new()),
            Default::default(),
        );
        let (_key, root) = core.dev_setup(None).await.unwrap().unwrap();
        let ui = Arc::new(crate::Ui {
            core: core.clone(),
            sessions: Default::default(),
            config: UiConfig::default(),
        });
        let app = crate::routes(ui.clone());
        T {
            app,
            ui,
            core,
            root: root.to_string(),
        }
    }

    async fn api(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: &str,
    ) -> Result<Value, coffer_core::Error> {
        let r = self
            .core
            .handle(Request::new(op, path).with_token(token).with_data(data))
            .await?;
        Ok(r.data.or(r.raw).unwrap_or(Value::Null))
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> Reply {
        let mut b = HttpRequest::builder().method(method).uri(uri);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        let body = match form {
            Some(f) => {
                b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f.to_owned())
            }
            None => Body::empty(),
        };
        let resp = self
            .app
            .clone()
            .oneshot(b.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Logs in with `token`; the session cookie and its CSRF token.
    async fn login(&self, token: &str) -> (String, String) {
        let form = self.send("GET", "/ui/login", None, None).await;
        let pre = cookie_of(&form);
        let csrf = csrf_of(&form.body);
        let r = self
            .send(
                "POST",
                "/ui/login",
                Some(&pre),
                Some(&format!("csrf={csrf}&method=token&token={token}")),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.location(), "/ui/status");
        let cookie = cookie_of(&r);
        assert_ne!(cookie, pre, "a login gets a fresh session id");
        let page = self.send("GET", "/ui/status", Some(&cookie), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (cookie, csrf_of(&page.body))
    }

    /// A token holding only `policy` (written under `name`).
    async fn token_with(&self, name: &str, policy: &str, ttl: &str) -> String {
        self.api(
            Operation::Update,
            &format!("sys/policies/acl/{name}"),
            json!({"policy": policy}),
            &self.root,
        )
        .await
        .unwrap();
        let r = self
            .core
            .handle(
                Request::new(Operation::Update, "auth/token/create")
                    .with_token(&self.root)
                    .with_data(json!({"policies": [name], "ttl": ttl})),
            )
            .await
            .unwrap();
        r.auth.unwrap()["client_token"].as_str().unwrap().to_owned()
    }
}

const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", crate::headers::CSP),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
];

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let t = T::new().await;
    let (cookie, _) = t.login(&t.root).await;
    for (uri, c) in [
        ("/ui/login", None),
        ("/ui/status", Some(cookie.as_str())),
        ("/ui/kv", Some(cookie.as_str())),
        ("/ui/assets/style.css", None),
        ("/ui/assets/copy.js", None),
        ("/ui/no-such-page", None),
        ("/ui/status", None),
    ] {
        let r = t.send("GET", uri, c, None).await;
        for (h, v) in SECURITY_HEADERS {
            assert_eq!(
                r.headers.get(h).and_then(|x| x.to_str().ok()),
                Some(v),
                "{h} on {uri}"
            );
        }
    }
    assert!(!crate::headers::CSP.contains("unsafe-inline"));
}

#[tokio::test]
async fn a_post_without_the_sessions_csrf_token_is_refused() {
    let t = T::new().await;
    t.api(
        Operation::Update,
        "secret/data/a",
        json!({"data": {"k": "v"}}),
        &t.root,
    )
    .await
    .unwrap();
    let (cookie, csrf) = t.login(&t.root).await;
    for body in [
        "mount=secret&path=a".to_string(),
        format!("mount=secret&path=a&csrf={}", "0".repeat(64)),
        format!("csrf={}x&mount=secret&path=a", &csrf[..63]),
    ] {
        let r = t
            .send("POST", "/ui/kv/reveal", Some(&cookie), Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}");
        assert!(r.body.contains("CSRF"));
        assert!(!r.body.contains(">v<"));
    }
    // Nothing was read: the refused reveals never reached the core.
    let who = t
        .api(
            Operation::Read,
            "sys/coffer/access/secret/data/a",
            json!({}),
            &t.root,
        )
        .await
        .unwrap();
    assert_eq!(who["reads"], 0, "{who}");
    // The logout form, too.
    let r = t.send("POST", "/ui/logout", Some(&cookie), Some("")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A login form posted without its pre-session is refused.
    let r = t
        .send(
            "POST",
            "/ui/login",
            None,
            Some(&format!("csrf={csrf}&method=token&token={}", t.root)),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // With the token the reveal works and is an audited read.
    let r = t
        .send(
            "POST",
            "/ui/kv/reveal",
            Some(&cookie),
            Some(&format!("csrf={csrf}&mount=secret&path=a")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(">v<"));
    let who = t
        .api(
            Operation::Read,
            "sys/coffer/access/secret/data/a",
            json!({}),
            &t.root,
        )
        .await
        .unwrap();
    assert_eq!(who["reads"], 1, "{who}");
}

#[tokio::test]
async fn a_secret_value_and_a_path_holding_script_render_inert() {
    let t = T::new().await;
    let path = "x<script>alert(1)</script>";
    t.api(
        Operation::Update,
        &format!("secret/data/{path}"),
        json!({"data": {"<b>k</b>": "<script>alert(2)</script>\"'"}}),
        &t.root,
    )
    .await
    .unwrap();
    let (cookie, csrf) = t.login(&t.root).await;
    let enc = crate::call::enc(path);
    let page = t
        .send(
            "GET",
            &format!("/ui/kv/secret?mount=secret&path={enc}"),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(page.body.contains("x&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !page.body.contains("alert(2)"),
        "no value before the reveal"
    );
    let list = t
        .send(
            "GET",
            "/ui/kv/browse?mount=secret&path=",
            Some(&cookie),
            None,
        )
        .await;
    assert!(!list.body.contains("<script>alert"));
    let r = t
        .send(
            "POST",
            "/ui/kv/reveal",
            Some(&cookie),
            Some(&format!("csrf={csrf}&mount=secret&path={enc}")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains("<script>alert"), "{}", r.body);
    assert!(!r.body.contains("<b>k"));
    assert!(
        r.body
            .contains("&lt;script&gt;alert(2)&lt;/script&gt;&quot;'"),
        "{}",
        r.body
    );
    // The only script element is the UI's own, from its own origin.
    assert_eq!(r.body.matches("<script").count(), 1);
    assert!(r.body.contains("<script src=\"/ui/assets/copy.js\""));
}

#[tokio::test]
async fn a_session_ends_with_its_tokens_ttl_and_with_its_token() {
    let t = T::new().await;
    let short = t
        .token_with(
            "reader",
            "path \"secret/*\" { capabilities = [\"read\", \"list\"] }",
            "2s",
        )
        .await;
    let (cookie, _) = t.login(&short).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = t.send("GET", "/ui/kv", Some(&cookie), None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/ui/login?reason=expired");

    // A revoked token sends the user back to the login page, too.
    let tok = t
        .token_with(
            "reader",
            "path \"secret/*\" { capabilities = [\"read\", \"list\"] }",
            "1h",
        )
        .await;
    let (cookie, _) = t.login(&tok).await;
    t.api(
        Operation::Update,
        "auth/token/revoke",
        json!({"token": tok}),
        &t.root,
    )
    .await
    .unwrap();
    let r = t
        .send(
            "GET",
            "/ui/kv/browse?mount=secret&path=",
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/ui/login?reason=revoked");
    let r = t.send("GET", "/ui/kv", Some(&cookie), None).await;
    assert_eq!(
        r.location(),
        "/ui/login?reason=expired",
        "the session is gone"
    );

    // A session whose time is up is dropped on its next use.
    let (cookie, _) = t.login(&t.root).await;
    let id = cookie.split('=').nth(1).unwrap().to_owned();
    t.ui.sessions.expire_now(&id);
    let r = t.send("GET", "/ui/status", Some(&cookie), None).await;
    assert_eq!(r.location(), "/ui/login?reason=expired");
    // The login page says why, in words.
    let r = t.send("GET", "/ui/login?reason=expired", None, None).await;
    assert!(r.body.contains("Your session has ended"));
}

#[tokio::test]
async fn logout_drops_the_session_but_not_the_token() {
    let t = T::new().await;
    let tok = t
        .token_with(
            "reader",
            "path \"secret/*\" { capabilities = [\"read\"] }",
            "1h",
        )
        .await;
    let (cookie, csrf) = t.login(&tok).await;
    let r = t
        .send(
            "POST",
            "/ui/logout",
            Some(&cookie),
            Some(&format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = t.send("GET", "/ui/status", Some(&cookie), None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(t
        .api(Operation::Read, "auth/token/lookup-self", json!({}), &tok)
        .await
        .is_ok());
}

const READ_ONLY: &str = r#"
path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }
"#;

#[tokio::test]
async fn a_read_only_user_sees_no_edit_buttons_and_gets_403_posting_anyway() {
    let t = T::new().await;
    t.api(
        Operation::Update,
        "secret/data/app/db",
        json!({"data": {"password": "pw-1"}}),
        &t.root,
    )
    .await
    .unwrap();
    let ro = t.token_with("ro", READ_ONLY, "1h").await;
    let (cookie, csrf) = t.login(&ro).await;
    let page = t
        .send(
            "GET",
            "/ui/kv/secret?mount=secret&path=app/db",
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Reveal values"));
    for button in [
        ">Edit<",
        ">Delete<",
        ">Destroy<",
        ">Undelete<",
        "Create a secret",
    ] {
        assert!(
            !page.body.contains(button),
            "{button} shown to a read-only token"
        );
    }
    let folder = t
        .send(
            "GET",
            "/ui/kv/browse?mount=secret&path=app/",
            Some(&cookie),
            None,
        )
        .await;
    assert!(!folder.body.contains("Create a secret"));
    // Posting anyway: the core refuses, and the page says so in words.
    let r = t
        .send(
            "POST",
            "/ui/kv/write",
            Some(&cookie),
            Some(&format!(
                "csrf={csrf}&mount=secret&path=app/db&cas=1&data=password%3Dmine"
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body
            .contains("do not allow writing on secret/data/app/db"),
        "{}",
        r.body
    );
    let r = t
        .send(
            "POST",
            "/ui/kv/act",
            Some(&cookie),
            Some(&format!(
                "csrf={csrf}&mount=secret&path=app/db&action=destroy&version=1"
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let v = t
        .api(Operation::Read, "secret/data/app/db", json!({}), &t.root)
        .await
        .unwrap();
    assert_eq!(v["data"]["password"], "pw-1");
    // A page the token cannot read is a 403 in words, not an empty page.
    let r = t.send("GET", "/ui/access", Some(&cookie), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("do not allow listing on sys/policies/acl/"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn an_edit_on_a_stale_version_is_refused_in_words() {
    let t = T::new().await;
    t.api(
        Operation::Update,
        "secret/data/app/db",
        json!({"data": {"password": "pw-1"}}),
        &t.root,
    )
    .await
    .unwrap();
    let (cookie, csrf) = t.login(&t.root).await;
    let form = t
        .send(
            "GET",
            "/ui/kv/edit?mount=secret&path=app/db",
            Some(&cookie),
            None,
        )
        .await;
    assert!(form.body.contains("name=\"cas\" value=\"1\""));
    assert!(
        !form.body.contains("pw-1"),
        "the edit form shows no value unasked"
    );
    t.api(
        Operation::Update,
        "secret/data/app/db",
        json!({"data": {"password": "pw-2"}}),
        &t.root,
    )
    .await
    .unwrap();
    let r = t
        .send(
            "POST",
            "/ui/kv/write",
            Some(&cookie),
            Some(&format!(
                "csrf={csrf}&mount=secret&path=app/db&cas=1&data=password%3Dpw-3"
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        r.body
            .contains("you started from version 1, but version 2 is now current"),
        "{}",
        r.body
    );
    let v = t
        .api(Operation::Read, "secret/data/app/db", json!({}), &t.root)
        .await
        .unwrap();
    assert_eq!(v["data"]["password"], "pw-2");
    // On the current version it is saved.
    let r = t
        .send(
            "POST",
            "/ui/kv/write",
            Some(&cookie),
            Some(&format!(
                "csrf={csrf}&mount=secret&path=app/db&cas=2&data=password%3Dpw-3"
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let v = t
        .api(Operation::Read, "secret/data/app/db", json!({}), &t.root)
        .await
        .unwrap();
    assert_eq!(v["data"]["password"], "pw-3");
}

#[tokio::test]
async fn a_policy_parse_error_is_shown_at_its_line() {
    let t = T::new().await;
    t.api(
        Operation::Update,
        "sys/policies/acl/p",
        json!({"policy": "path \"a\" { capabilities = [\"read\"] }"}),
        &t.root,
    )
    .await
    .unwrap();
    let (cookie, csrf) = t.login(&t.root).await;
    let bad = crate::call::enc("path \"a\" {\n  capabilities = [\"read\"\n}\n");
    let r = t
        .send(
            "POST",
            "/ui/access/policy",
            Some(&cookie),
            Some(&format!("csrf={csrf}&name=p&policy={bad}")),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("The policy was not saved"));
    assert!(
        r.body.contains("class=\"bad-line\" id=\"line-3\""),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn rotate_now_runs_the_steps_to_the_end() {
    let t = T::new().await;
    t.api(
        Operation::Update,
        "secret/data/app/key",
        json!({"data": {"value": "old"}}),
        &t.root,
    )
    .await
    .unwrap();
    t.api(Operation::Update, "secret/lifecycle/app/key", json!({"owner": "pay", "secret_type": "api_key", "origin": "internal", "rotation": {"period": "30d", "rotator": "generate"}}), &t.root).await.unwrap();
    let (cookie, csrf) = t.login(&t.root).await;
    let r = t
        .send(
            "POST",
            "/ui/rotate",
            Some(&cookie),
            Some(&format!(
                "csrf={csrf}&mount=secret&path=app/key&reason=test"
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let next = r.location().to_owned();
    assert!(next.contains("&job="));
    let mut done = false;
    for _ in 0..50 {
        let p = t.send("GET", &next, Some(&cookie), None).await;
        if p.body.contains("Rotation finished") {
            assert_eq!(p.body.matches("class=\"done\"").count(), 4);
            assert!(!p.body.contains("http-equiv=\"refresh\""));
            done = true;
            break;
        }
        assert!(
            p.body.contains("http-equiv=\"refresh\""),
            "a running rotation refreshes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done);
    let v = t
        .api(
            Operation::Read,
            "secret/metadata/app/key",
            json!({}),
            &t.root,
        )
        .await
        .unwrap();
    assert_eq!(v["current_version"], 2);
}

#[tokio::test]
async fn the_ui_switched_off_is_a_404() {
    let app = crate::disabled();
    for uri in ["/ui", "/ui/", "/ui/login", "/ui/assets/style.css"] {
        let r = app
            .clone()
            .oneshot(HttpRequest::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
    }
}

#[test]
fn cookies_are_httponly_strict_and_secure_host_under_tls() {
    let plain = crate::session::cookie_header(false, "ab", Some(60));
    assert_eq!(
        plain,
        "coffer_ui=ab; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=60"
    );
    let tls = crate::session::cookie_header(true, "ab", Some(60));
    assert!(tls.starts_with("__Host-coffer_ui=ab; HttpOnly; SameSite=Strict; Path=/; Secure"));
    // A session id is 256 random bits.
    let id = crate::session::random_id();
    assert_eq!(id.len(), 64);
    assert_ne!(id, crate::session::random_id());
}

/// Behind one of the listener's trusted proxies the UI sees the client the
/// proxy forwarded, as the API does; a header the rule rejects leaves the
/// connection's peer, and without a rule the peer is the client.
#[tokio::test]
async fn the_client_address_follows_the_listeners_proxy_rule() {
    use std::net::{IpAddr, SocketAddr};
    let t = T::new().await;
    let proxy: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let mut ext = axum::http::Extensions::new();
    ext.insert(axum::extract::ConnectInfo(proxy));
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    assert_eq!(
        crate::call::peer_of(&t.ui, &ext, &headers),
        Some(proxy.ip())
    );
    let rule: crate::ClientAddr = Arc::new(|peer: IpAddr, h: &axum::http::HeaderMap| {
        let fwd = h.get("x-forwarded-for")?.to_str().ok()?;
        if peer == "10.0.0.1".parse::<IpAddr>().ok()? {
            fwd.parse().ok()
        } else {
            Some(peer)
        }
    });
    let ui = crate::Ui {
        core: t.core.clone(),
        sessions: Default::default(),
        config: UiConfig {
            tls: false,
            client_addr: Some(rule),
        },
    };
    assert_eq!(
        crate::call::peer_of(&ui, &ext, &headers),
        Some("203.0.113.7".parse().unwrap())
    );
    headers.insert("x-forwarded-for", "not-an-address".parse().unwrap());
    assert_eq!(crate::call::peer_of(&ui, &ext, &headers), Some(proxy.ip()));
}

/// A secret's page shows the apps that reported holding it and the version
/// each holds (what `coffer run --watch` and the agent report).
#[tokio::test]
async fn a_secret_page_shows_which_consumers_hold_which_version() {
    let t = T::new().await;
    t.api(
        Operation::Update,
        "secret/data/app/db",
        json!({"data": {"password": "p1"}}),
        &t.root,
    )
    .await
    .unwrap();
    t.api(Operation::Update, "secret/lifecycle/app/db", json!({"owner": "pay", "secret_type": "password", "origin": "internal", "rotation": {"period": "30d", "rotator": "generate"}}), &t.root).await.unwrap();
    let (cookie, _) = t.login(&t.root).await;
    let page = |cookie: String| {
        let t = &t;
        async move {
            t.send(
                "GET",
                "/ui/kv/secret?mount=secret&path=app/db",
                Some(&cookie),
                None,
            )
            .await
        }
    };
    let before = page(cookie.clone()).await;
    assert!(
        before
            .body
            .contains("No app has reported holding this secret"),
        "{}",
        before.body
    );
    t.api(
        Operation::Update,
        "secret/consumers/app/db",
        json!({"consumer_id": "billing-web-1", "version": 1, "kind": "agent"}),
        &t.root,
    )
    .await
    .unwrap();
    let after = page(cookie).await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(after.body.contains("billing-web-1"), "{}", after.body);
    assert!(after.body.contains("Holds version"));
}
