//! The table of the API's routes with the capability each needs: the
//! authorization matrix test walks it, so every route listed here is proven
//! to refuse a token lacking the capability and to admit one holding it.
//! A new endpoint gets a row here in the same change.

/// One route: method, a concrete sample path, the capability it needs, and
/// whether it also needs `sudo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method (`LIST` for lists).
    pub method: &'static str,
    /// A sample path below `/v1/`. `{new}` is replaced by a fresh name, for
    /// create operations that must hit a path that does not exist yet.
    pub path: &'static str,
    /// The capability the operation needs on the path.
    pub capability: &'static str,
    /// Whether the path is root-protected (needs `sudo` too).
    pub sudo: bool,
}

const fn r(method: &'static str, path: &'static str, capability: &'static str) -> Route {
    Route {
        method,
        path,
        capability,
        sudo: false,
    }
}

const fn s(method: &'static str, path: &'static str, capability: &'static str) -> Route {
    Route {
        method,
        path,
        capability,
        sudo: true,
    }
}

/// Mounts the matrix sets up before walking [`CATALOG`]: (path, type, options version).
pub const MATRIX_MOUNTS: [(&str, &str, &str); 8] = [
    ("secret", "kv", "2"),
    ("kv1", "kv", "1"),
    ("auth/userpass", "userpass", ""),
    ("auth/approle", "approle", ""),
    ("auth/jwt", "jwt", ""),
    ("database", "database", ""),
    ("transit", "transit", ""),
    ("pki", "pki", ""),
];

/// Every authenticated route of the API. Unauthenticated ones (health,
/// seal-status, init, unseal, leader, rekey, generate-root, logins) are not
/// here: no token is asked.
pub const CATALOG: &[Route] = &[
    // sys: mounts, auth methods, policies, keys, capabilities
    r("GET", "sys/mounts", "read"),
    r("POST", "sys/mounts/{new}", "update"),
    r("DELETE", "sys/mounts/secret-gone", "delete"),
    r("GET", "sys/mounts/secret/tune", "read"),
    r("POST", "sys/mounts/secret/tune", "update"),
    r("GET", "sys/auth", "read"),
    s("POST", "sys/auth/{new}", "update"),
    s("DELETE", "sys/auth/userpass-gone", "delete"),
    r("GET", "sys/auth/userpass/tune", "read"),
    s("POST", "sys/auth/userpass/tune", "update"),
    r("LIST", "sys/policies/acl", "list"),
    r("GET", "sys/policies/acl/matrix-fixed", "read"),
    r("PUT", "sys/policies/acl/{new}", "update"),
    r("DELETE", "sys/policies/acl/matrix-gone", "delete"),
    r("GET", "sys/policy", "read"),
    r("GET", "sys/policy/matrix-fixed", "read"),
    r("PUT", "sys/policy/{new}", "update"),
    r("DELETE", "sys/policy/matrix-gone", "delete"),
    s("PUT", "sys/rotate", "update"),
    r("GET", "sys/key-status", "read"),
    r("POST", "sys/capabilities", "update"),
    r("POST", "sys/capabilities-accessor", "update"),
    r("POST", "sys/capabilities-self", "update"),
    r("GET", "sys/internal/ui/resultant-acl", "read"),
    r("GET", "sys/internal/counters/tokens", "read"),
    r("GET", "sys/internal/counters/entities", "read"),
    r("GET", "sys/locked-users", "read"),
    r(
        "POST",
        "sys/locked-users/auth_userpass_0/unlock/alice",
        "update",
    ),
    r("GET", "sys/rotate/config", "read"),
    r("GET", "sys/plugins/catalog", "read"),
    s("LIST", "sys/plugins/catalog/secret", "list"),
    s("GET", "sys/plugins/catalog/secret/kv", "read"),
    s("POST", "sys/plugins/catalog/secret/kv", "update"),
    s("DELETE", "sys/plugins/catalog/secret/kv", "delete"),
    s("GET", "sys/config/auditing/request-headers", "read"),
    s(
        "POST",
        "sys/config/auditing/request-headers/x-matrix",
        "update",
    ),
    s(
        "GET",
        "sys/config/auditing/request-headers/x-matrix",
        "read",
    ),
    s(
        "DELETE",
        "sys/config/auditing/request-headers/x-matrix",
        "delete",
    ),
    // `sys/internal/ui/mounts[/<path>]` is not here: as in Vault, any token
    // may ask and sees only the mounts its policies reach (tested in
    // `tests/sys_api.rs`), so no single capability decides it.
    s("PUT", "sys/rotate/keyring", "update"),
    // sys: snapshots (a POST of `{}` is no snapshot: refused with 400
    // before anything is touched, so admitting it seals nothing)
    s("GET", "sys/storage/raft/snapshot", "read"),
    s("POST", "sys/storage/raft/snapshot", "update"),
    s("POST", "sys/storage/raft/snapshot-force", "update"),
    r("GET", "sys/rotate/keyring/config", "read"),
    r("LIST", "sys/version-history", "list"),
    // sys: tools and CORS
    r("POST", "sys/tools/random", "update"),
    r("POST", "sys/tools/random/platform/16", "update"),
    r("POST", "sys/tools/random/16", "update"),
    r("POST", "sys/tools/hash", "update"),
    r("POST", "sys/tools/hash/sha2-512", "update"),
    s("GET", "sys/config/cors", "read"),
    s("PUT", "sys/config/cors", "update"),
    s("DELETE", "sys/config/cors", "delete"),
    // sys: moving mounts (sys/rekey/* and sys/generate-root/* take no
    // token: a quorum of unseal key shares authorizes them)
    s("POST", "sys/remount", "update"),
    r("GET", "sys/remount/status/matrix-none", "read"),
    // sys: OpenBao's authenticated root generation
    r("GET", "sys/generate-root-token/attempt", "read"),
    r("PUT", "sys/generate-root-token/attempt", "update"),
    r("DELETE", "sys/generate-root-token/attempt", "delete"),
    r("PUT", "sys/generate-root-token/update", "update"),
    // sys: password policies and metrics
    r("LIST", "sys/policies/password", "list"),
    r("GET", "sys/policies/password/matrix-pw", "read"),
    r("PUT", "sys/policies/password/{new}", "update"),
    r("DELETE", "sys/policies/password/matrix-pw-gone", "delete"),
    r("GET", "sys/policies/password/matrix-pw/generate", "read"),
    r("GET", "sys/metrics", "read"),
    r("GET", "sys/host-info", "read"),
    r("GET", "sys/ha-status", "read"),
    // sys: rate-limit quotas (an empty body sets no quota: `rate` is
    // required), requests in flight, configuration, log levels
    r("GET", "sys/quotas/config", "read"),
    r("POST", "sys/quotas/config", "update"),
    r("LIST", "sys/quotas/rate-limit", "list"),
    r("GET", "sys/quotas/rate-limit/matrix-none", "read"),
    r("POST", "sys/quotas/rate-limit/{new}", "update"),
    r("DELETE", "sys/quotas/rate-limit/matrix-none", "delete"),
    r("GET", "sys/in-flight-req", "read"),
    r("GET", "sys/monitor", "read"),
    s("GET", "sys/config/state/sanitized", "read"),
    r("GET", "sys/loggers", "read"),
    r("POST", "sys/loggers", "update"),
    r("DELETE", "sys/loggers", "delete"),
    r("GET", "sys/loggers/core", "read"),
    r("POST", "sys/loggers/core", "update"),
    r("DELETE", "sys/loggers/core", "delete"),
    // sys: audit
    s("GET", "sys/audit", "read"),
    r("POST", "sys/audit-hash/audit-gone", "update"),
    s("PUT", "sys/audit/{new}", "update"),
    s("DELETE", "sys/audit/audit-gone", "delete"),
    // sys: leases
    r("POST", "sys/leases/lookup", "update"),
    r("POST", "sys/leases/renew", "update"),
    r("POST", "sys/leases/revoke", "update"),
    r("POST", "sys/leases/tidy", "update"),
    s(
        "POST",
        "sys/leases/revoke-prefix/database/creds/none",
        "update",
    ),
    s(
        "POST",
        "sys/leases/revoke-force/database/creds/none",
        "update",
    ),
    s("LIST", "sys/leases/lookup/database/creds/", "list"),
    // sys: response wrapping (lookup needs no token)
    r("POST", "sys/wrapping/wrap", "update"),
    r("POST", "sys/wrapping/unwrap", "update"),
    r("POST", "sys/wrapping/rewrap", "update"),
    // cubbyhole (each token's own; an update needs an existing key of the
    // caller's, so writes are covered as creates)
    r("GET", "cubbyhole/matrix", "read"),
    r("POST", "cubbyhole/{new}", "create"),
    r("LIST", "cubbyhole/", "list"),
    r("DELETE", "cubbyhole/matrix-del", "delete"),
    // token leases (kept by the token store)
    s("LIST", "sys/leases/lookup/auth/token/create/", "list"),
    s(
        "POST",
        "sys/leases/revoke-prefix/auth/userpass/login/none",
        "update",
    ),
    // sys: Coffer's lifecycle
    r("GET", "sys/coffer/inventory", "read"),
    r("LIST", "sys/coffer/inventory", "list"),
    r("GET", "sys/events/subscribe/kv-v2/data-write", "read"),
    r("POST", "sys/coffer/revoke-compromised", "update"),
    // sys: the procedure's artefacts (org policy, check, plan, review)
    r("GET", "sys/coffer/org-policy", "read"),
    s("POST", "sys/coffer/org-policy", "update"),
    r("LIST", "sys/coffer/org-policy/history", "list"),
    r("GET", "sys/coffer/check", "read"),
    r("POST", "sys/coffer/check", "update"),
    s("POST", "sys/coffer/check/abort", "update"),
    r("GET", "sys/coffer/plan", "read"),
    r("POST", "sys/coffer/plan/approve", "update"),
    r("POST", "sys/coffer/review", "update"),
    r("LIST", "sys/coffer/review", "list"),
    r("LIST", "sys/coffer/apps", "list"),
    r("POST", "sys/coffer/apps/matrix-app", "update"),
    // token store
    r("POST", "auth/token/create", "update"),
    r("POST", "auth/token/create/matrix", "update"),
    r("GET", "auth/token/lookup-self", "read"),
    r("POST", "auth/token/renew-self", "update"),
    r("POST", "auth/token/revoke-self", "update"),
    s("POST", "auth/token/create-orphan", "update"),
    r("POST", "auth/token/lookup", "update"),
    r("POST", "auth/token/lookup-accessor", "update"),
    r("POST", "auth/token/renew", "update"),
    r("POST", "auth/token/renew-accessor", "update"),
    r("POST", "auth/token/revoke", "update"),
    r("POST", "auth/token/revoke-accessor", "update"),
    s("POST", "auth/token/revoke-orphan", "update"),
    s("LIST", "auth/token/accessors", "list"),
    r("LIST", "auth/token/roles", "list"),
    r("GET", "auth/token/roles/matrix", "read"),
    r("POST", "auth/token/roles/{new}", "update"),
    r("DELETE", "auth/token/roles/matrix-gone", "delete"),
    r("POST", "auth/token/tidy", "update"),
    // KV v2
    r("GET", "secret/data/matrix", "read"),
    r("POST", "secret/data/{new}", "create"),
    r("POST", "secret/data/matrix", "update"),
    r("PATCH", "secret/data/matrix", "patch"),
    r("DELETE", "secret/data/matrix-del", "delete"),
    r("GET", "secret/metadata/matrix", "read"),
    r("LIST", "secret/metadata/", "list"),
    r("POST", "secret/metadata/matrix", "update"),
    r("DELETE", "secret/metadata/matrix-gone", "delete"),
    r("PATCH", "secret/metadata/matrix", "patch"),
    r("POST", "secret/delete/matrix", "update"),
    r("POST", "secret/undelete/matrix", "update"),
    r("POST", "secret/destroy/matrix-destroy", "update"),
    r("GET", "secret/subkeys/matrix", "read"),
    r("GET", "secret/config", "read"),
    r("POST", "secret/config", "update"),
    r("GET", "secret/lifecycle/matrix", "read"),
    r("POST", "secret/lifecycle/matrix", "update"),
    r("LIST", "secret/lifecycle/", "list"),
    r("POST", "secret/rotate/matrix", "update"),
    // KV v1
    r("GET", "kv1/matrix", "read"),
    r("POST", "kv1/{new}", "create"),
    r("POST", "kv1/matrix", "update"),
    r("LIST", "kv1/", "list"),
    r("DELETE", "kv1/matrix-del", "delete"),
    // auth methods' management endpoints
    r("POST", "auth/userpass/users/{new}", "create"),
    r("GET", "auth/userpass/users/matrix", "read"),
    r("LIST", "auth/userpass/users", "list"),
    r("POST", "auth/userpass/users/matrix/password", "update"),
    r("POST", "auth/userpass/users/matrix/policies", "update"),
    r("DELETE", "auth/userpass/users/matrix-gone", "delete"),
    r("POST", "auth/approle/role/{new}", "create"),
    r("GET", "auth/approle/role/matrix", "read"),
    r("LIST", "auth/approle/role", "list"),
    r("GET", "auth/approle/role/matrix/role-id", "read"),
    r("POST", "auth/approle/role/matrix/secret-id", "update"),
    r("POST", "auth/approle/role/matrix/role-id", "update"),
    r("LIST", "auth/approle/role/matrix/secret-id", "list"),
    r("DELETE", "auth/approle/role/matrix-gone", "delete"),
    r("POST", "auth/approle/tidy/secret-id", "update"),
    r("GET", "auth/jwt/config", "read"),
    r("POST", "auth/jwt/config", "update"),
    r("GET", "auth/jwt/role/matrix-none", "read"),
    r("DELETE", "auth/jwt/role/matrix-none", "delete"),
    r("LIST", "auth/jwt/role", "list"),
    r("POST", "auth/jwt/role/{new}", "create"),
    // identity (the engine makes no create/update distinction: writes are updates)
    r("POST", "identity/entity", "update"),
    r("POST", "identity/entity/name/{new}", "update"),
    r("GET", "identity/entity/name/matrix-none", "read"),
    r("GET", "identity/entity/id/matrix-none", "read"),
    r("DELETE", "identity/entity/name/matrix-gone", "delete"),
    r("POST", "identity/entity/id/matrix-none", "update"),
    r("DELETE", "identity/entity/id/matrix-none", "delete"),
    r("POST", "identity/entity/merge", "update"),
    r("LIST", "identity/entity/id", "list"),
    r("LIST", "identity/entity/name", "list"),
    r("POST", "identity/entity/batch-delete", "update"),
    r("POST", "identity/entity-alias", "update"),
    r("LIST", "identity/entity-alias/id", "list"),
    r("GET", "identity/entity-alias/id/matrix-none", "read"),
    r("POST", "identity/entity-alias/id/matrix-none", "update"),
    r("DELETE", "identity/entity-alias/id/matrix-none", "delete"),
    r("POST", "identity/group", "update"),
    r("POST", "identity/group/name/{new}", "update"),
    r("GET", "identity/group/name/matrix-none", "read"),
    r("DELETE", "identity/group/id/matrix-gone", "delete"),
    r("GET", "identity/group/id/matrix-none", "read"),
    r("POST", "identity/group/id/matrix-none", "update"),
    r("LIST", "identity/group/name", "list"),
    r("DELETE", "identity/group/name/matrix-gone", "delete"),
    r("LIST", "identity/group/id", "list"),
    r("POST", "identity/group-alias", "update"),
    r("LIST", "identity/group-alias/id", "list"),
    r("GET", "identity/group-alias/id/matrix-none", "read"),
    r("POST", "identity/group-alias/id/matrix-none", "update"),
    r("DELETE", "identity/group-alias/id/matrix-none", "delete"),
    r("POST", "identity/lookup/entity", "update"),
    r("POST", "identity/lookup/group", "update"),
    // identity tokens (keys and roles have an existence check: a new one is a create)
    r("GET", "identity/oidc/config", "read"),
    r("POST", "identity/oidc/config", "update"),
    r("LIST", "identity/oidc/key", "list"),
    r("POST", "identity/oidc/key/{new}", "create"),
    r("POST", "identity/oidc/key/default", "update"),
    r("GET", "identity/oidc/key/default", "read"),
    r("DELETE", "identity/oidc/key/matrix-gone", "delete"),
    r("POST", "identity/oidc/key/default/rotate", "update"),
    r("LIST", "identity/oidc/role", "list"),
    r("POST", "identity/oidc/role/{new}", "create"),
    r("GET", "identity/oidc/role/matrix-none", "read"),
    r("DELETE", "identity/oidc/role/matrix-gone", "delete"),
    r("GET", "identity/oidc/token/matrix-none", "read"),
    r("POST", "identity/oidc/introspect", "update"),
    // database engine
    r("LIST", "database/config", "list"),
    r("GET", "database/config/matrix-none", "read"),
    r("POST", "database/config/{new}", "create"),
    r("DELETE", "database/config/matrix-none", "delete"),
    r("POST", "database/reset/matrix-none", "update"),
    r("POST", "database/rotate-root/matrix-none", "update"),
    r("LIST", "database/roles", "list"),
    r("GET", "database/roles/matrix-none", "read"),
    r("GET", "database/creds/matrix-none", "read"),
    r("POST", "database/roles/{new}", "create"),
    r("DELETE", "database/roles/matrix-none", "delete"),
    r("LIST", "database/static-roles", "list"),
    r("GET", "database/static-roles/matrix-none", "read"),
    r("POST", "database/static-roles/{new}", "create"),
    r("DELETE", "database/static-roles/matrix-none", "delete"),
    r("GET", "database/static-creds/matrix-none", "read"),
    r("POST", "database/rotate-role/matrix-none", "update"),
    // transit engine (encrypt to a missing key is a create: create-on-encrypt)
    r("LIST", "transit/keys", "list"),
    r("POST", "transit/keys/matrix", "update"),
    r("GET", "transit/keys/matrix", "read"),
    r("POST", "transit/keys/matrix/config", "update"),
    r("POST", "transit/keys/matrix/rotate", "update"),
    r("POST", "transit/keys/matrix/trim", "update"),
    r("DELETE", "transit/keys/matrix-none", "delete"),
    r("GET", "transit/export/encryption-key/matrix", "read"),
    r("POST", "transit/encrypt/matrix", "update"),
    r("POST", "transit/encrypt/{new}", "create"),
    r("POST", "transit/decrypt/matrix", "update"),
    r("POST", "transit/rewrap/matrix", "update"),
    r("POST", "transit/datakey/plaintext/matrix", "update"),
    r("POST", "transit/hmac/matrix", "update"),
    r("POST", "transit/sign/matrix", "update"),
    r("POST", "transit/verify/matrix", "update"),
    r("POST", "transit/hash", "update"),
    r("POST", "transit/random", "update"),
    // pki engine (ca, crl, cert/:serial and issuer/:ref/pem are public, as in Vault)
    r("LIST", "pki/roles", "list"),
    r("POST", "pki/roles/{new}", "create"),
    r("GET", "pki/roles/matrix-none", "read"),
    r("LIST", "pki/certs", "list"),
    r("POST", "pki/issue/matrix-none", "update"),
    r("POST", "pki/sign/matrix-none", "update"),
    r("POST", "pki/revoke", "update"),
    r("POST", "pki/crl/rotate", "update"),
    r("POST", "pki/tidy", "update"),
    r("GET", "pki/config/urls", "read"),
    r("POST", "pki/config/urls", "update"),
    r("GET", "pki/config/issuers", "read"),
    r("GET", "pki/issuer/default", "read"),
    r("POST", "pki/root/generate/internal", "update"),
    r("POST", "pki/intermediate/generate/internal", "update"),
    r("POST", "pki/intermediate/set-signed", "update"),
    r("POST", "pki/root/sign-intermediate", "update"),
    r("POST", "pki/issuer/default", "update"),
    r("POST", "pki/config/issuers", "update"),
    r("GET", "pki/config/crl", "read"),
    r("POST", "pki/config/crl", "update"),
    r("DELETE", "pki/roles/matrix-none", "delete"),
    r("GET", "pki/crl/rotate", "read"),
    r("GET", "pki/tidy-status", "read"),
    // Last: admitting it seals the server, which ends the walk.
    s("PUT", "sys/seal", "update"),
];

/// Declared routes (mount path + pattern as in the path-help catalogs,
/// operation or `*`) that no single capability decides, with the reason:
/// the matrix cannot judge them, other tests do.
pub const NOT_IN_MATRIX: &[(&str, &str, &str)] = &[
    (
        "sys/internal/ui/mounts",
        "read",
        "any token may ask and sees only the mounts its policies reach (tests/sys_api.rs)",
    ),
    (
        "sys/internal/ui/mounts/{path}",
        "read",
        "any token may ask and sees only the mounts its policies reach (tests/sys_api.rs)",
    ),
    (
        "sys/internal/specs/openapi",
        "read",
        "any valid token may read the API's description, as in OpenBao",
    ),
    (
        "secret/consumers/{path}",
        "update",
        "judged as a read of secret/data/{path}, not of its own path (tests/consumers.rs)",
    ),
];

/// The routes that take no token (method, sample path): Vault's status and
/// quorum endpoints, logins, the PKI engine's public certificates and
/// CRLs, and the identity tokens' discovery document and key set. The matrix proves each answers a request without a token with
/// something other than 403, so none of them is guarded by accident; that
/// they do no more than they should is each endpoint's own test.
pub const OPEN: &[(&str, &str)] = &[
    ("GET", "sys/health"),
    ("GET", "sys/seal-status"),
    ("GET", "sys/init"),
    ("PUT", "sys/init"),
    ("PUT", "sys/unseal"),
    ("GET", "sys/leader"),
    ("POST", "auth/userpass/login/matrix"),
    ("POST", "auth/approle/login"),
    ("POST", "auth/jwt/login"),
    ("GET", "pki/ca"),
    ("GET", "pki/ca/pem"),
    ("GET", "pki/ca_chain"),
    ("GET", "pki/cert/01"),
    ("GET", "pki/crl"),
    ("GET", "pki/crl/pem"),
    ("LIST", "pki/issuers"),
    ("GET", "identity/oidc/.well-known/openid-configuration"),
    ("GET", "identity/oidc/.well-known/keys"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_marks_agree_with_the_core() {
        for route in CATALOG {
            let op = match (route.method, route.capability) {
                ("GET", _) => crate::Operation::Read,
                ("LIST", _) => crate::Operation::List,
                ("DELETE", _) => crate::Operation::Delete,
                ("PATCH", _) => crate::Operation::Patch,
                (_, "create") => crate::Operation::Create,
                _ => crate::Operation::Update,
            };
            assert_eq!(
                crate::sys::requires_sudo(route.path, op),
                route.sudo,
                "{} {}",
                route.method,
                route.path
            );
        }
    }

    /// The routes every backend declares (its path-help catalog, which
    /// `path-help` and the OpenAPI document serve), the system backend and
    /// the token store included: each (route, operation) must have a row
    /// in [`CATALOG`], so the matrix proves it refuses a token lacking the
    /// capability, unless [`NOT_IN_MATRIX`] says why no capability decides it.
    #[test]
    fn every_declared_route_is_in_the_matrix() {
        use crate::path_help::{backend, SYS, TOKEN};
        let mut mounts: Vec<(&str, &crate::path_help::BackendDoc)> = vec![
            ("sys/", &SYS),
            ("auth/token/", &TOKEN),
            ("identity/", &crate::path_help::IDENTITY),
        ];
        for (path, kind, version) in MATRIX_MOUNTS {
            let doc = backend(kind, Some(version).filter(|v| !v.is_empty()))
                .unwrap_or_else(|| panic!("no route catalog for {kind}"));
            mounts.push((path, doc));
        }
        let mut missing = Vec::new();
        for (mount, doc) in mounts {
            let mount = format!("{}/", mount.trim_end_matches('/'));
            for route in doc.routes {
                for op in route.ops {
                    let full = format!("{mount}{}", route.pattern);
                    let exempt = NOT_IN_MATRIX
                        .iter()
                        .any(|(p, o, _)| *p == full && (*o == *op || *o == "*"));
                    let covered = CATALOG.iter().any(|r| {
                        let method_op = match (r.method, r.capability) {
                            ("GET", _) => "read",
                            ("LIST", _) => "list",
                            ("DELETE", _) => "delete",
                            ("PATCH", _) => "patch",
                            (_, "create") => "create",
                            _ => "update",
                        };
                        let same_op = method_op == *op
                            || (matches!(method_op, "create" | "update")
                                && matches!(*op, "create" | "update"));
                        same_op
                            && r.path.strip_prefix(mount.as_str()).is_some_and(|rel| {
                                row_matches(route.pattern, &rel.replace("{new}", "x"), op)
                            })
                    });
                    let open = OPEN.iter().any(|(method, path)| {
                        let method_op = match *method {
                            "GET" => "read",
                            "LIST" => "list",
                            _ => "update",
                        };
                        (method_op == *op
                            || (method_op == "update" && matches!(*op, "create" | "update")))
                            && path
                                .strip_prefix(mount.as_str())
                                .is_some_and(|rel| row_matches(route.pattern, rel, op))
                    });
                    if !covered && !exempt && !open {
                        missing.push(format!("{op} {full}"));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "{} declared routes not in the matrix:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }

    /// Whether a row's sample path `rel` is an instance of the declared
    /// `pattern` for operation `op`. As in Vault's patterns, a final
    /// `{prefix}` spans segments (`.+?`) like `{path}`, and a LIST whose
    /// final `{path}` or `{prefix}` is empty lists the directory above it
    /// (`LIST secret/metadata/` is `metadata/{path}` at the mount root).
    fn row_matches(pattern: &str, rel: &str, op: &str) -> bool {
        let pattern = match pattern.strip_suffix("/{prefix}") {
            Some(head) => format!("{head}/{{path}}"),
            None => pattern.to_string(),
        };
        if op == "list" {
            if let Some(head) = pattern.strip_suffix("{path}") {
                let dir = rel.trim_end_matches('/');
                if format!("{dir}/") == head || (head.is_empty() && dir.is_empty()) {
                    return true;
                }
            }
        }
        crate::path_help::matches(&pattern, rel)
    }

    #[test]
    fn row_matcher_is_not_loose() {
        assert!(row_matches("metadata/{path}", "metadata/", "list"));
        assert!(!row_matches("metadata/{path}", "metadata/", "read"));
        assert!(!row_matches("metadata/{path}", "metadatax/", "list"));
        assert!(row_matches("{path}", "", "list"));
        assert!(!row_matches("{path}", "", "read"));
        assert!(row_matches(
            "leases/lookup/{prefix}",
            "leases/lookup/a/b/",
            "list"
        ));
        assert!(!row_matches(
            "leases/lookup/{prefix}",
            "leases/lookup/",
            "read"
        ));
        assert!(!row_matches("roles/{name}", "roles/a/b", "read"));
    }

    #[test]
    fn sealing_comes_last() {
        let last = CATALOG.last().map(|r| r.path);
        assert_eq!(last, Some("sys/seal"), "admitting sys/seal ends the walk");
        assert_eq!(CATALOG.iter().filter(|r| r.path == "sys/seal").count(), 1);
    }

    #[test]
    fn capabilities_are_known() {
        for route in CATALOG {
            assert!(
                ["read", "list", "create", "update", "patch", "delete"].contains(&route.capability)
            );
        }
    }
}
