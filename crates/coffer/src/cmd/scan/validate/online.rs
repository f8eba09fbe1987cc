//! Provider APIs, only with `--validate=online` and only when the API's
//! host is in `--validate-host`: GitHub tokens with `GET /user` (200
//! `live`, 401 `revoked`), Slack tokens with `auth.test` (`ok: true`
//! `live`; `invalid_auth`, `token_revoked`, `token_expired`,
//! `account_inactive`, `not_authed` `revoked`). The base URLs can be moved
//! with `--validate-endpoint` (GitHub Enterprise, a gateway, a test
//! stand-in). Redirects are never followed, answers are read up to
//! [`MAX_BODY`], and every request is bounded by `--validate-timeout`.

use std::io::Read as _;

use coffer_scan::validate::{Claim, Validation, Validator};
use coffer_scan::Finding;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;

use super::{Mode, Options};

/// GitHub's API.
pub(super) const GITHUB_API: &str = "https://api.github.com";
/// Slack's Web API.
pub(super) const SLACK_API: &str = "https://slack.com/api";

/// Bytes of an answer read at most.
const MAX_BODY: u64 = 64 * 1024;

/// Slack errors meaning the token no longer works.
const SLACK_REVOKED: &[&str] = &[
    "invalid_auth",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "not_authed",
];

/// Which provider.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    GitHub,
    Slack,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::GitHub => "github",
            Kind::Slack => "slack",
        }
    }

    fn rules(self) -> &'static [&'static str] {
        match self {
            Kind::GitHub => &[
                "github-pat",
                "github-fine-grained-pat",
                "github-oauth-token",
                "github-app-token",
            ],
            Kind::Slack => &[
                "slack-bot-token",
                "slack-user-token",
                "slack-legacy-token",
                "slack-legacy-bot-token",
                "slack-token",
            ],
        }
    }
}

/// One provider's validator.
pub(super) struct Provider {
    kind: Kind,
    base: Url,
    /// `None` when checks may not run here, with the reason.
    http: Result<reqwest::blocking::Client, String>,
}

/// Every provider validator.
pub(super) struct Providers(Vec<Provider>);

impl Providers {
    /// The providers as `opts` configures them: usable only online, on an
    /// allowed host; the HTTP client is built only then.
    pub(super) fn new(opts: &Options) -> Providers {
        let client = || {
            reqwest::blocking::Client::builder()
                .timeout(opts.timeout)
                .connect_timeout(opts.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("coffer/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|_| "could not build the HTTP client".to_string())
        };
        let provider = |kind: Kind, base: &Url| {
            let host = base.host_str().unwrap_or_default();
            let port = base.port_or_known_default().unwrap_or(443);
            let http = if opts.mode != Mode::Online {
                Err("provider checks need --validate=online".to_string())
            } else if !opts.hosts.allows(host, port) {
                Err(format!(
                    "host {host} is not in --validate-host: {} not contacted",
                    kind.name()
                ))
            } else {
                client()
            };
            Provider {
                kind,
                base: base.clone(),
                http,
            }
        };
        Providers(vec![
            provider(Kind::GitHub, &opts.github),
            provider(Kind::Slack, &opts.slack),
        ])
    }

    /// The validators.
    pub(super) fn validators(&self) -> impl Iterator<Item = &dyn Validator> {
        self.0.iter().map(|p| p as &dyn Validator)
    }
}

impl Provider {
    /// `base` joined with `path` (the base's own path kept).
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// GitHub: `GET /user`.
    fn github(&self, http: &reqwest::blocking::Client, bearer: HeaderValue) -> Validation {
        let name = self.kind.name();
        let sent = http
            .get(self.url("user"))
            .header(AUTHORIZATION, bearer)
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send();
        match sent {
            Ok(r) if r.status().as_u16() == 200 => {
                Validation::live(name, "GitHub accepts it (GET /user: 200)")
            }
            Ok(r) if r.status().as_u16() == 401 => {
                Validation::revoked(name, "GitHub refuses it (GET /user: 401)")
            }
            Ok(r) => Validation::unknown(
                name,
                format!("GitHub answered {} to GET /user", r.status().as_u16()),
            ),
            Err(e) => self.unreachable(&e),
        }
    }

    /// Slack: `POST auth.test`.
    fn slack(&self, http: &reqwest::blocking::Client, bearer: HeaderValue) -> Validation {
        let name = self.kind.name();
        let sent = http
            .post(self.url("auth.test"))
            .header(AUTHORIZATION, bearer)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("")
            .send();
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return self.unreachable(&e),
        };
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        if resp.take(MAX_BODY).read_to_end(&mut body).is_err() {
            return Validation::unknown(name, "the answer of auth.test was cut off");
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let ok = json
            .as_ref()
            .and_then(|j| j.get("ok"))
            .and_then(|o| o.as_bool());
        // Slack's error codes are short snake_case words; anything else is
        // not echoed.
        let error = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(|e| e.as_str())
            .filter(|e| e.len() <= 40 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .unwrap_or("");
        match (status, ok) {
            (200, Some(true)) => Validation::live(name, "Slack accepts it (auth.test: ok)"),
            (200, Some(false)) if SLACK_REVOKED.contains(&error) => {
                Validation::revoked(name, format!("Slack refuses it (auth.test: {error})"))
            }
            (200, Some(false)) => {
                Validation::unknown(name, format!("Slack answered auth.test with {error:?}"))
            }
            _ => Validation::unknown(name, format!("Slack answered {status} to auth.test")),
        }
    }

    /// The verdict for a request without an answer.
    fn unreachable(&self, e: &reqwest::Error) -> Validation {
        let host = self.base.host_str().unwrap_or_default();
        if e.is_timeout() {
            Validation::unknown(self.kind.name(), format!("no answer from {host} in time"))
        } else {
            Validation::unknown(self.kind.name(), format!("could not reach {host}"))
        }
    }
}

impl Validator for Provider {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn claim(&self, f: &Finding) -> Option<Claim> {
        if !self.kind.rules().contains(&f.rule_id.as_str()) {
            return None;
        }
        Some(match &self.http {
            Ok(_) => Claim::Check(f.secret.clone()),
            Err(why) => Claim::Decided(Validation::unknown(self.kind.name(), why.clone())),
        })
    }

    fn check(&self, token: &str) -> Validation {
        let http = match &self.http {
            Ok(h) => h,
            Err(why) => return Validation::unknown(self.kind.name(), why.clone()),
        };
        let header = zeroize::Zeroizing::new(format!("Bearer {token}"));
        let Ok(mut bearer) = HeaderValue::from_str(&header) else {
            return Validation::unknown(
                self.kind.name(),
                "the token holds characters no HTTP header may carry",
            );
        };
        bearer.set_sensitive(true);
        match self.kind {
            Kind::GitHub => self.github(http, bearer),
            Kind::Slack => self.slack(http, bearer),
        }
    }
}
