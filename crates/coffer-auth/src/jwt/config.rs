//! The mount's configuration (`auth/<mount>/config`): which keys sign the
//! tokens it accepts, the issuer they must name, and the default role.
//!
//! The keys come from exactly one of: PEM public keys in
//! `jwt_validation_pubkeys` (as in Vault); a JWKS document in `jwks` (a
//! Coffer field: the document a `jwks_url` would serve, as a JSON object or
//! a JSON string); `jwks_url` (with `jwks_ca_pem`); or `oidc_discovery_url`
//! (with `oidc_discovery_ca_pem`). The two URL forms are fetched by
//! [`super::remote`], only under the prefixes the server's configuration
//! allows. `jwks_pairs` is refused with a clear 400.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::keys::{self, KeySet};
use crate::util::Params;
use crate::{Error, Result};

/// A stored configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// PEM public keys.
    pub jwt_validation_pubkeys: Vec<String>,
    /// An inline JWKS document.
    pub jwks: Option<Value>,
    /// URL of a JWKS document.
    pub jwks_url: String,
    /// PEM CA certificate(s) trusted for `jwks_url`.
    pub jwks_ca_pem: String,
    /// OIDC issuer URL, whose discovery document names the key set.
    pub oidc_discovery_url: String,
    /// PEM CA certificate(s) trusted for `oidc_discovery_url`.
    pub oidc_discovery_ca_pem: String,
    /// Algorithms accepted (empty: every supported one).
    pub jwt_supported_algs: Vec<String>,
    /// Required `iss`.
    pub bound_issuer: String,
    /// Role used when a login names none.
    pub default_role: String,
    /// Vault's flag, kept for reads.
    pub namespace_in_state: bool,
    /// OIDC-only settings, kept so reads show what was written.
    pub oidc_response_mode: String,
    /// OIDC-only: response types.
    pub oidc_response_types: Vec<String>,
}

/// Vault's fields Coffer does not implement.
const NETWORK_FIELDS: &[&str] = &["jwks_pairs"];

fn present(data: &Map<String, Value>, name: &str) -> bool {
    match data.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

impl Config {
    /// Parses and checks a config write (a write replaces the whole config,
    /// as in Vault). `existing` only supplies `namespace_in_state`.
    pub fn parse(data: &Map<String, Value>, existing: Option<&Config>) -> Result<Config> {
        let p = Params(data);
        for field in NETWORK_FIELDS {
            if present(data, field) {
                return Err(Error::bad(format!(
                    "'{field}' is not supported: give one key source, with 'jwks_url', \
                     'oidc_discovery_url', 'jwt_validation_pubkeys' (PEM) or 'jwks' (a JWKS document)"
                )));
            }
        }
        if present(data, "oidc_client_id") || present(data, "oidc_client_secret") {
            return Err(Error::bad(
                "'oidc_client_id' and 'oidc_client_secret' are not supported: Coffer has no browser OIDC flow",
            ));
        }
        if present(data, "provider_config") {
            return Err(Error::bad(
                "'provider_config' is not supported: provider-specific lookups need network access",
            ));
        }
        let jwks = match data.get("jwks") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(
                serde_json::from_str::<Value>(s)
                    .map_err(|_| Error::bad("invalid jwks: not a JSON document"))?,
            ),
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => return Err(Error::bad("invalid jwks: expected a JSON Web Key Set")),
        };
        let config = Config {
            // Stored trimmed, as OpenBao reads them back.
            jwt_validation_pubkeys: p
                .str_list("jwt_validation_pubkeys")?
                .unwrap_or_default()
                .into_iter()
                .map(|k| k.trim().to_string())
                .collect(),
            jwks,
            jwks_url: p.str("jwks_url")?.unwrap_or_default().trim().to_string(),
            jwks_ca_pem: p.str("jwks_ca_pem")?.unwrap_or_default().trim().to_string(),
            oidc_discovery_url: p
                .str("oidc_discovery_url")?
                .unwrap_or_default()
                .trim()
                .to_string(),
            oidc_discovery_ca_pem: p
                .str("oidc_discovery_ca_pem")?
                .unwrap_or_default()
                .trim()
                .to_string(),
            jwt_supported_algs: p.str_list("jwt_supported_algs")?.unwrap_or_default(),
            bound_issuer: p.str("bound_issuer")?.unwrap_or_default().to_string(),
            default_role: p.str("default_role")?.unwrap_or_default().to_string(),
            namespace_in_state: p
                .bool("namespace_in_state")?
                .unwrap_or_else(|| existing.is_none_or(|c| c.namespace_in_state)),
            oidc_response_mode: p.str("oidc_response_mode")?.unwrap_or_default().to_string(),
            oidc_response_types: p.str_list("oidc_response_types")?.unwrap_or_default(),
        };
        let sources = [
            !config.jwt_validation_pubkeys.is_empty(),
            config.jwks.is_some(),
            !config.jwks_url.is_empty(),
            !config.oidc_discovery_url.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(Error::bad(
                "exactly one of 'jwt_validation_pubkeys', 'jwks', 'jwks_url' or 'oidc_discovery_url' must be set",
            ));
        }
        if !config.jwks_ca_pem.is_empty() && config.jwks_url.is_empty() {
            return Err(Error::bad("'jwks_ca_pem' is only used with 'jwks_url'"));
        }
        if !config.oidc_discovery_ca_pem.is_empty() && config.oidc_discovery_url.is_empty() {
            return Err(Error::bad(
                "'oidc_discovery_ca_pem' is only used with 'oidc_discovery_url'",
            ));
        }
        for pem in [&config.jwks_ca_pem, &config.oidc_discovery_ca_pem] {
            if !pem.is_empty()
                && (!pem.contains("-----BEGIN CERTIFICATE-----") || pem.contains("PRIVATE"))
            {
                return Err(Error::bad(
                    "invalid CA PEM: expected -----BEGIN CERTIFICATE----- blocks",
                ));
            }
        }
        if config.remote_source().is_none() {
            config.key_set().map_err(Error::bad)?;
        }
        for alg in &config.jwt_supported_algs {
            if keys::algorithm(alg).is_none() {
                return Err(Error::bad(format!(
                    "invalid jwt_supported_algs: unsupported signing algorithm {alg:?} (supported: {})",
                    keys::SUPPORTED_ALGS.join(", ")
                )));
            }
        }
        Ok(config)
    }

    /// Where the keys are fetched from, when they are not inline.
    pub fn remote_source(&self) -> Option<super::remote::Source> {
        use super::remote::Source;
        if !self.jwks_url.is_empty() {
            Some(Source::Jwks(self.jwks_url.clone()))
        } else if !self.oidc_discovery_url.is_empty() {
            Some(Source::Discovery(self.oidc_discovery_url.clone()))
        } else {
            None
        }
    }

    /// The CA PEM trusted for the remote source ("" for the system roots).
    pub fn remote_ca(&self) -> &str {
        if !self.jwks_url.is_empty() {
            &self.jwks_ca_pem
        } else {
            &self.oidc_discovery_ca_pem
        }
    }

    /// The configured inline keys, parsed. The error is a complete message.
    pub fn key_set(&self) -> std::result::Result<KeySet, String> {
        match &self.jwks {
            Some(doc) => KeySet::from_jwks(doc).map_err(|e| format!("invalid jwks: {e}")),
            None => KeySet::from_pems(&self.jwt_validation_pubkeys)
                .map_err(|e| format!("error parsing public key: {e}")),
        }
    }

    /// The algorithms a login may use.
    pub fn algorithms(&self) -> Vec<jsonwebtoken::Algorithm> {
        let names: Vec<&str> = if self.jwt_supported_algs.is_empty() {
            keys::SUPPORTED_ALGS.to_vec()
        } else {
            self.jwt_supported_algs.iter().map(String::as_str).collect()
        };
        names.into_iter().filter_map(keys::algorithm).collect()
    }

    /// The config as Vault's read shows it (public keys only; nothing here
    /// is secret, and no client secret is ever stored).
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "oidc_discovery_url": self.oidc_discovery_url,
            "oidc_discovery_ca_pem": self.oidc_discovery_ca_pem,
            "oidc_client_id": "",
            "oidc_response_mode": self.oidc_response_mode,
            "oidc_response_types": self.oidc_response_types,
            "default_role": self.default_role,
            "jwt_validation_pubkeys": self.jwt_validation_pubkeys,
            "jwt_supported_algs": self.jwt_supported_algs,
            "jwks_url": self.jwks_url,
            "jwks_ca_pem": self.jwks_ca_pem,
            "bound_issuer": self.bound_issuer,
            "provider_config": {},
            "namespace_in_state": self.namespace_in_state,
            "override_allowed_server_names": [],
            // As OpenBao: a config that parsed and was stored is valid.
            "status": "valid",
        });
        // Coffer's inline JWKS (no OpenBao field): shown only when set.
        if let Some(jwks) = &self.jwks {
            out["jwks"] = jwks.clone();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::testkeys::TestKey;

    fn parse(v: Value) -> Result<Config> {
        Config::parse(v.as_object().unwrap(), None)
    }

    fn msg(v: Value) -> String {
        match parse(v) {
            Err(Error::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn pem_and_jwks_configs() {
        let k = TestKey::rsa();
        let c =
            parse(json!({"jwt_validation_pubkeys": [k.public_pem()], "bound_issuer": "https://i"}))
                .unwrap();
        assert_eq!(c.key_set().unwrap().len(), 1);
        assert!(c.namespace_in_state);
        assert_eq!(c.algorithms().len(), keys::SUPPORTED_ALGS.len());
        let doc = json!({"keys": [TestKey::ed().jwk(Some("k1"))]});
        let c = parse(json!({"jwks": doc.to_string(), "jwt_supported_algs": ["EdDSA"]})).unwrap();
        assert_eq!(c.jwks, Some(doc.clone()));
        assert_eq!(c.algorithms(), vec![jsonwebtoken::Algorithm::EdDSA]);
        let j = c.to_json();
        assert_eq!(j["jwks"], doc);
        assert_eq!(j["jwt_validation_pubkeys"], json!([]));
        assert!(parse(json!({"jwks": doc})).is_ok());
    }

    #[test]
    fn refusals() {
        let pem = TestKey::ec().public_pem();
        let c = parse(json!({"oidc_discovery_url": "https://accounts.example"})).unwrap();
        assert!(c.remote_source().is_some());
        assert_eq!(
            c.to_json()["oidc_discovery_url"],
            "https://accounts.example"
        );
        assert!(
            msg(json!({"jwks_url": "https://x/keys", "jwks": {"keys": []}}))
                .starts_with("exactly one")
        );
        assert!(
            msg(json!({"jwks_ca_pem": "x", "oidc_discovery_url": "https://i"}))
                .contains("jwks_ca_pem")
        );
        assert!(msg(
            json!({"jwks_url": "https://x/keys", "jwks_ca_pem": "-----BEGIN PRIVATE KEY-----"})
        )
        .starts_with("invalid CA PEM"));
        assert!(msg(json!({"jwks_pairs": [{"jwks_url": "https://x"}]})).contains("jwks_pairs"));
        let one = "exactly one of 'jwt_validation_pubkeys', 'jwks', 'jwks_url' or 'oidc_discovery_url' must be set";
        assert_eq!(msg(json!({})), one);
        assert_eq!(
            msg(json!({"jwt_validation_pubkeys": [pem], "jwks": {"keys": []}})),
            one
        );
        assert!(msg(json!({"jwt_validation_pubkeys": ["nope"]}))
            .starts_with("error parsing public key"));
        assert!(msg(json!({"jwks": "{not json"})).starts_with("invalid jwks"));
        assert!(
            msg(json!({"jwt_validation_pubkeys": [pem], "jwt_supported_algs": ["HS256"]}))
                .starts_with("invalid jwt_supported_algs")
        );
        assert!(
            msg(json!({"jwt_validation_pubkeys": [pem], "jwt_supported_algs": ["none"]}))
                .starts_with("invalid jwt_supported_algs")
        );
        assert!(
            msg(json!({"jwt_validation_pubkeys": [pem], "oidc_client_secret": "s"}))
                .contains("not supported")
        );
    }
}
