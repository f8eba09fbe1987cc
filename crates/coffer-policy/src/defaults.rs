//! The built-in `default` policy, attached to every non-root token.
//!
//! Its rules are Vault's default policy, so clients relying on them behave the
//! same, the two templated identity rules included (a token may read its own
//! entity; coffer-core's `identity::template` fills them in).

use super::parse::{PathRule, Policy};

/// Text of the built-in `default` policy.
pub const DEFAULT_POLICY_HCL: &str = r#"# A token may read its own properties.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# A token may renew itself.
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# A token may revoke itself.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# A token may ask for its own capabilities on a path.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# A token may read its own entity, by id or by name.
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}

# A token may read its resultant ACL (used by UIs).
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# A token may renew a lease whose id it knows (old and new endpoints).
path "sys/renew" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}

# A token may look up a lease whose id it knows.
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# A token may manage its own cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap, look up and unwrap.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# General purpose tools.
path "sys/tools/hash" {
  capabilities = ["update"]
}
path "sys/tools/hash/*" {
  capabilities = ["update"]
}

# Status of a control group request, given its accessor.
path "sys/control-group/request" {
  capabilities = ["update"]
}

# The authorization endpoint of OIDC providers.
path "identity/oidc/provider/+/authorize" {
  capabilities = ["read", "update"]
}
"#;

/// The name of the built-in default policy.
pub const DEFAULT_POLICY_NAME: &str = "default";

impl Policy {
    /// The built-in `default` policy ([`DEFAULT_POLICY_HCL`]).
    pub fn default_policy() -> Policy {
        // The text is a constant covered by tests; should it ever fail to
        // parse, fall back to an empty policy (grants nothing) over panicking.
        Policy::parse(DEFAULT_POLICY_NAME, DEFAULT_POLICY_HCL)
            .unwrap_or_else(|_| Policy::from_rules(DEFAULT_POLICY_NAME, Vec::<PathRule>::new()))
    }
}
