//! A JWT login: verify the token against the mount's keys, check its claims
//! against the role, and say what the Coffer token grants. Pure: it reads no
//! storage and mints nothing, so every check is unit-tested here.

use std::net::IpAddr;

use super::claims::{self, Expected, IdentityRules};
use super::config::Config;
use super::keys::KeySet;
use super::role::Role;
use crate::{AuthGrant, Error, Result};

/// Checks `jwt` for a login with `role` (named `role_name`) under `config`
/// at Unix time `now`, from `client`. Failures answer as Vault does: 400
/// with Vault's message (never quoting the token), 403 outside the role's
/// bound CIDRs.
pub fn authenticate(
    config: &Config,
    role_name: &str,
    role: &Role,
    jwt: &str,
    client: Option<IpAddr>,
    now: i64,
) -> Result<AuthGrant> {
    let keys = config
        .key_set()
        .map_err(|e| Error::bad(format!("error configuring token validator: {e}")))?;
    authenticate_with(config, &keys, role_name, role, jwt, client, now)
}

/// [`authenticate`] against `keys` (inline or fetched) instead of the
/// config's inline keys.
pub fn authenticate_with(
    config: &Config,
    keys: &KeySet,
    role_name: &str,
    role: &Role,
    jwt: &str,
    client: Option<IpAddr>,
    now: i64,
) -> Result<AuthGrant> {
    if role.role_type == "oidc" {
        return Err(Error::bad("role with oidc role_type is not allowed"));
    }
    if jwt.is_empty() {
        return Err(Error::bad("missing token"));
    }
    if !role.token.bound_cidrs.is_empty() && !crate::ip_allowed(client, &role.token.bound_cidrs) {
        return Err(Error::PermissionDenied);
    }
    let verified = keys
        .verify(jwt, &config.algorithms())
        .map_err(|e| Error::bad(format!("error validating token: {e}")))?;
    let all = &verified.claims;
    let expected = Expected {
        issuer: &config.bound_issuer,
        subject: &role.bound_subject,
        audiences: &role.bound_audiences,
        clock_skew_leeway: role.clock_skew_leeway,
        expiration_leeway: role.expiration_leeway,
        not_before_leeway: role.not_before_leeway,
    };
    claims::validate_registered(all, &expected, now)
        .map_err(|e| Error::bad(format!("error validating token: {e}")))?;
    // A token meant for some audience must not log in to a role bound to none.
    let aud =
        claims::audiences(all).map_err(|e| Error::bad(format!("error validating token: {e}")))?;
    if !aud.is_empty() && role.bound_audiences.is_empty() {
        return Err(Error::bad(
            "audience claim found in JWT but no audiences bound to the role",
        ));
    }
    if let Some(bound) = &role.bound_claims {
        claims::validate_bound_claims(bound, role.bound_claims_type == "glob", all)
            .map_err(|e| Error::bad(format!("error validating claims: {e}")))?;
    }
    let no_mappings = Default::default();
    let identity = claims::identity(
        all,
        &IdentityRules {
            user_claim: &role.user_claim,
            user_claim_json_pointer: role.user_claim_json_pointer,
            claim_mappings: role.claim_mappings.as_ref().unwrap_or(&no_mappings),
            groups_claim: &role.groups_claim,
        },
    )
    .map_err(Error::bad)?;
    // The alias keeps the claim mappings only (the joined groups list is
    // token metadata; the groups themselves become group memberships).
    let mut alias_metadata = identity.metadata.clone();
    if identity.groups.is_some()
        && !role
            .claim_mappings
            .as_ref()
            .is_some_and(|m| m.values().any(|v| v == "groups"))
    {
        alias_metadata.remove("groups");
    }
    let mut metadata = identity.metadata;
    metadata.insert("role".into(), role_name.to_string());
    let mut grant = role.token.grant(&identity.name, metadata);
    // As Vault: the alias is the user claim, its metadata the claim
    // mappings; the groups claim names the external groups.
    grant.entity_alias = Some(identity.name);
    grant.alias_metadata = alias_metadata;
    grant.group_aliases = identity.groups;
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::testkeys::TestKey;
    use serde_json::{json, Map, Value};

    const NOW: i64 = 1_900_000_000;
    const ISS: &str = "https://ci.example.test";

    struct Setup {
        key: TestKey,
        config: Config,
        role: Role,
    }

    fn setup_with(key: TestKey, role: Value) -> Setup {
        let data: Map<String, Value> = json!({"jwt_validation_pubkeys": [key.public_pem()],
            "bound_issuer": ISS})
        .as_object()
        .cloned()
        .unwrap();
        let config = Config::parse(&data, None).unwrap();
        let role = Role::apply(None, role.as_object().unwrap()).unwrap();
        Setup { key, config, role }
    }

    fn setup() -> Setup {
        setup_with(
            TestKey::rsa(),
            json!({"user_claim": "sub", "bound_audiences": ["coffer"],
                   "bound_claims": {"project_path": "acme/billing", "ref": ["main", "release"]},
                   "claim_mappings": {"project_path": "project"},
                   "token_policies": ["billing-ci"], "token_ttl": "10m"}),
        )
    }

    fn good_claims() -> Value {
        json!({"iss": ISS, "sub": "project_path:acme/billing:ref:main", "aud": "coffer",
               "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 300,
               "project_path": "acme/billing", "ref": "main"})
    }

    impl Setup {
        fn login_claims(&self, claims: &Value) -> Result<AuthGrant> {
            let t = self.key.sign(None, claims);
            authenticate(&self.config, "ci", &self.role, &t, None, NOW)
        }

        fn refused_with(&self, claims: Value, want: &str) {
            match self.login_claims(&claims) {
                Err(Error::BadRequest(m)) => assert_eq!(m, want),
                other => panic!("expected 400 {want:?}, got {other:?}"),
            }
        }
    }

    fn with(mut base: Value, patch: Value) -> Value {
        coffer_engine::json::merge_patch(&mut base, &patch);
        base
    }

    #[test]
    fn a_good_token_logs_in() {
        let s = setup();
        let g = s.login_claims(&good_claims()).unwrap();
        assert_eq!(g.display_name, "project_path:acme/billing:ref:main");
        assert_eq!(g.alias_name, g.display_name);
        assert_eq!(g.policies, vec!["billing-ci"]);
        assert_eq!(g.ttl, 600);
        assert_eq!(g.metadata["role"], "ci");
        assert_eq!(g.metadata["project"], "acme/billing");
    }

    #[test]
    fn every_family_logs_in() {
        for key in [TestKey::rsa(), TestKey::ec(), TestKey::ed()] {
            let s = setup_with(key, json!({"user_claim": "sub", "bound_subject": "svc"}));
            let c = json!({"iss": ISS, "sub": "svc", "exp": NOW + 60});
            assert!(s.login_claims(&c).is_ok(), "{}", s.key.alg());
        }
    }

    #[test]
    fn time_checks() {
        let s = setup();
        s.refused_with(
            with(good_claims(), json!({"exp": NOW - 3600})),
            "error validating token: invalid expiration time (exp) claim: token is expired",
        );
        s.refused_with(
            with(good_claims(), json!({"nbf": NOW + 3600, "iat": null})),
            "error validating token: invalid not before (nbf) claim: token not yet valid",
        );
        s.refused_with(
            with(good_claims(), json!({"iat": NOW + 3600})),
            "error validating token: invalid issued at (iat) claim: token issued in the future",
        );
        // Within the default 60 s clock skew.
        assert!(s
            .login_claims(&with(good_claims(), json!({"exp": NOW - 30})))
            .is_ok());
    }

    #[test]
    fn issuer_audience_subject_checks() {
        let s = setup();
        s.refused_with(
            with(good_claims(), json!({"iss": "https://evil.test"})),
            "error validating token: invalid issuer (iss) claim",
        );
        s.refused_with(
            with(good_claims(), json!({"aud": ["other"]})),
            "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience",
        );
        let s = setup_with(
            TestKey::ec(),
            json!({"user_claim": "sub", "bound_subject": "svc"}),
        );
        s.refused_with(
            json!({"iss": ISS, "sub": "other", "exp": NOW + 60}),
            "error validating token: invalid subject (sub) claim",
        );
        // A token with an audience, a role bound to none.
        s.refused_with(
            json!({"iss": ISS, "sub": "svc", "aud": "coffer", "exp": NOW + 60}),
            "audience claim found in JWT but no audiences bound to the role",
        );
    }

    #[test]
    fn bound_claim_checks() {
        let s = setup();
        s.refused_with(
            with(good_claims(), json!({"ref": "dev"})),
            "error validating claims: claim \"ref\" does not match any associated bound claim values",
        );
        s.refused_with(
            with(good_claims(), json!({"project_path": null})),
            "error validating claims: claim \"project_path\" is missing",
        );
        let s = setup_with(
            TestKey::ed(),
            json!({"user_claim": "sub", "bound_claims_type": "glob",
                   "bound_claims": {"/kubernetes.io/namespace": "ci-*", "sub": "system:serviceaccount:*:runner"}}),
        );
        let k8s = json!({"iss": ISS, "sub": "system:serviceaccount:ci-7:runner", "exp": NOW + 60,
                         "kubernetes.io": {"namespace": "ci-7"}});
        assert!(s.login_claims(&k8s).is_ok());
        s.refused_with(
            with(k8s, json!({"kubernetes.io": {"namespace": "prod"}})),
            "error validating claims: claim \"/kubernetes.io/namespace\" does not match any associated bound claim values",
        );
    }

    #[test]
    fn signature_checks() {
        let s = setup();
        // Signed by a key the mount does not trust.
        let t = TestKey::rsa().sign(None, &good_claims());
        match authenticate(&s.config, "ci", &s.role, &t, None, NOW) {
            Err(Error::BadRequest(m)) => assert_eq!(
                m,
                "error validating token: error verifying token signature: no known key successfully validated the token signature"
            ),
            other => panic!("{other:?}"),
        }
        // alg none, claims otherwise perfect.
        use base64::Engine as _;
        let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!("{}.{}.", b(&json!({"alg": "none"})), b(&good_claims()));
        assert!(authenticate(&s.config, "ci", &s.role, &none, None, NOW).is_err());
        // HS256 "signed" with the public key as the HMAC secret.
        let hs = s.key.sign_raw(&json!({"alg": "HS256"}), &good_claims());
        match authenticate(&s.config, "ci", &s.role, &hs, None, NOW) {
            Err(Error::BadRequest(m)) => assert!(m.contains("invalid algorithm"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Errors never echo the token.
        let t = s.key.sign(None, &with(good_claims(), json!({"exp": 1})));
        let m = authenticate(&s.config, "ci", &s.role, &t, None, NOW)
            .unwrap_err()
            .to_string();
        assert!(!m.contains(&t[..20]));
    }

    #[test]
    fn identity_and_cidr_checks() {
        let s = setup_with(
            TestKey::ec(),
            json!({"user_claim": "email", "bound_subject": "svc",
                   "token_bound_cidrs": ["10.0.0.0/8"]}),
        );
        let t = s
            .key
            .sign(None, &json!({"iss": ISS, "sub": "svc", "exp": NOW + 60}));
        let ip = |a: &str| a.parse().ok();
        assert!(matches!(
            authenticate(&s.config, "r", &s.role, &t, ip("192.168.0.1"), NOW),
            Err(Error::PermissionDenied)
        ));
        match authenticate(&s.config, "r", &s.role, &t, ip("10.1.1.1"), NOW) {
            Err(Error::BadRequest(m)) => assert_eq!(m, "claim \"email\" not found in token"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            authenticate(&s.config, "r", &s.role, "", ip("10.1.1.1"), NOW),
            Err(Error::BadRequest(m)) if m == "missing token"
        ));
    }
}
