//! JSON Web Tokens, offline: an `exp` in the past is `revoked` (expired);
//! anything else is `unknown`, since the signature cannot be checked
//! without the issuer's keys. The detail says when it expires (or that it
//! never does), whether it is valid yet, and the issuer's structure: an
//! http(s) URL naming a host, some other string, or malformed.

use base64::Engine as _;
use coffer_scan::validate::{Claim, Validation, Validator};
use coffer_scan::Finding;
use reqwest::Url;
use serde_json::Value;
use zeroize::Zeroizing;

use super::rfc3339;

/// The validator's name in reports.
const NAME: &str = "jwt";

/// Judges JWTs' claims at a given time.
pub(super) struct Jwt {
    now: i64,
}

impl Jwt {
    /// A validator judging expiry at `now` (seconds since the epoch).
    pub(super) fn new(now: i64) -> Jwt {
        Jwt { now }
    }

    /// The verdict for one compact JWT.
    fn judge(&self, token: &str) -> Validation {
        let Some(payload) = token.split('.').nth(1).and_then(decode_json) else {
            return Validation::unknown(NAME, "its payload is not a JSON object");
        };
        let issuer = issuer(payload.get("iss"));
        match payload.get("exp") {
            Some(exp) => match exp.as_f64().filter(|e| e.is_finite()) {
                // Truncation is meant: a fraction of a second changes nothing.
                Some(e) if (e as i64) <= self.now => Validation::revoked(
                    NAME,
                    format!("expired at {} ({issuer})", rfc3339(e as i64)),
                ),
                Some(e) => {
                    let nbf = payload
                        .get("nbf")
                        .and_then(Value::as_f64)
                        .filter(|n| n.is_finite() && (*n as i64) > self.now);
                    let when = match nbf {
                        Some(n) => format!("not valid before {}", rfc3339(n as i64)),
                        None => "not expired".to_string(),
                    };
                    Validation::unknown(
                        NAME,
                        format!(
                            "{when}, expires at {}; {issuer}; the signature cannot be checked \
                             offline",
                            rfc3339(e as i64)
                        ),
                    )
                }
                None => Validation::unknown(NAME, format!("its exp is not a number ({issuer})")),
            },
            None => Validation::unknown(
                NAME,
                format!("no expiry: valid until its signing key changes ({issuer})"),
            ),
        }
    }
}

/// A base64url segment (padding tolerated) decoded and parsed as a JSON
/// object.
fn decode_json(segment: &str) -> Option<serde_json::Map<String, Value>> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment.trim_end_matches('='))
            .ok()?,
    );
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The issuer's structure in words.
fn issuer(iss: Option<&Value>) -> String {
    match iss {
        None => "no issuer".into(),
        Some(Value::String(s)) if s.trim().is_empty() => "an empty issuer".into(),
        Some(Value::String(s)) if s.contains("://") => match Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {
                let host: String = u.host_str().unwrap_or_default().chars().take(100).collect();
                format!("issuer on host {host}")
            }
            _ => "a malformed issuer URL".into(),
        },
        Some(Value::String(_)) => "an issuer that is no URL".into(),
        Some(_) => "a malformed issuer (not a string)".into(),
    }
}

impl Validator for Jwt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn claim(&self, f: &Finding) -> Option<Claim> {
        let token = match f.rule_id.as_str() {
            "jwt" => f.secret.clone(),
            "jwt-base64" => {
                let raw = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(f.secret.trim_end_matches('='))
                    .ok()
                    .map(Zeroizing::new);
                match raw.as_ref().and_then(|r| std::str::from_utf8(r).ok()) {
                    Some(t) => Zeroizing::new(t.trim().to_string()),
                    None => {
                        return Some(Claim::Decided(Validation::unknown(
                            NAME,
                            "not base64 of a JWT",
                        )))
                    }
                }
            }
            _ => return None,
        };
        Some(Claim::Decided(self.judge(&token)))
    }

    fn check(&self, token: &str) -> Validation {
        self.judge(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_scan::validate::Status;

    fn token(payload: &str) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.{}",
            e(r#"{"alg":"HS256"}"#),
            e(payload),
            e("sig-bytes-here")
        )
    }

    #[test]
    fn expiry_and_issuer() {
        let j = Jwt::new(1_700_000_000);
        let v = j.judge(&token(
            r#"{"exp":1600000000,"iss":"https://id.internal/realm"}"#,
        ));
        assert_eq!(v.status, Status::Revoked);
        assert_eq!(
            v.detail,
            "expired at 2020-09-13T12:26:40Z (issuer on host id.internal)"
        );
        let v = j.judge(&token(r#"{"exp":1800000000,"iss":"acme"}"#));
        assert_eq!(v.status, Status::Unknown);
        assert!(
            v.detail.starts_with("not expired, expires at 2027-"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("an issuer that is no URL"),
            "{}",
            v.detail
        );
        let v = j.judge(&token(r#"{"exp":1800000000,"nbf":1750000000,"iss":7}"#));
        assert!(
            v.detail.starts_with("not valid before 2025-"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("malformed issuer (not a string)"),
            "{}",
            v.detail
        );
        let v = j.judge(&token(r#"{"sub":"x"}"#));
        assert_eq!(
            v.detail,
            "no expiry: valid until its signing key changes (no issuer)"
        );
        let v = j.judge(&token(r#"{"exp":"soon","iss":"https://"}"#));
        assert_eq!(v.detail, "its exp is not a number (a malformed issuer URL)");
        assert_eq!(j.judge("a.%%%.b").status, Status::Unknown);
        assert_eq!(j.judge(&token("[1]")).status, Status::Unknown);
        assert_eq!(j.judge(&token(r#"{"exp":1e400}"#)).status, Status::Unknown);
    }
}
