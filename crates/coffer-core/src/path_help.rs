//! Path help (`GET <path>?help=1`, what `bao path-help` asks) and
//! `sys/internal/specs/openapi`, both generated from one route catalog:
//! each backend's routes, declared below as data (pattern, operations,
//! summary, parameters). The help text and the OpenAPI 3 document are
//! built from these declarations; nothing is written out by hand twice.
//!
//! As in OpenBao, any valid token may read help (it reveals no data); the
//! OpenAPI document lists the built-in backends and the mounts the token's
//! policies reach (the `sys/internal/ui/mounts` rule).

use serde_json::{json, Map, Value};

use crate::core::{Core, VERSION};
use crate::mounts::Mounted;
use crate::policy::Acl;
use crate::token::TokenEntry;
use crate::{Error, Operation, Request, Response, Result};

/// One parameter of a route: name, type (as Vault names it), description.
pub type Param = (&'static str, &'static str, &'static str);

/// One route of a backend.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// Path below the mount; `{name}` is one segment, a final `{path}` the rest.
    pub pattern: &'static str,
    /// Operations it answers: `read`, `list`, `create` (the path has an
    /// existence check: a write to a new object is a create), `update`,
    /// `patch`, `delete`.
    pub ops: &'static [&'static str],
    /// One-line summary.
    pub summary: &'static str,
    /// Body or query parameters (path placeholders are described here too).
    pub params: &'static [Param],
}

/// A backend's help: its description and routes.
#[derive(Debug, Clone, Copy)]
pub struct BackendDoc {
    /// Shown under `## DESCRIPTION` for the mount itself.
    pub description: &'static str,
    /// Its routes.
    pub routes: &'static [RouteDoc],
}

const fn route(
    pattern: &'static str,
    ops: &'static [&'static str],
    summary: &'static str,
    params: &'static [Param],
) -> RouteDoc {
    RouteDoc {
        pattern,
        ops,
        summary,
        params,
    }
}

const R: &[&str] = &["read"];
const W: &[&str] = &["update"];
const L: &[&str] = &["list"];
const RW: &[&str] = &["read", "update"];
const CU: &[&str] = &["create", "update"];
const CRUD: &[&str] = &["read", "create", "update", "delete"];
const CRUDL: &[&str] = &["read", "list", "create", "update", "delete"];

const MOUNT_PATH: Param = ("path", "string", "The path of the mount.");
const NAME: Param = ("name", "string", "Name of the object.");
const SECRET_PATH: Param = ("path", "string", "Location of the secret.");

/// The system backend.
pub const SYS: BackendDoc = BackendDoc {
    description: "The system backend is built into Coffer and cannot be remounted or moved. It contains the paths used to configure Coffer itself: mounts, auth methods, policies, keys, leases, audit devices and tools.",
    routes: &[
        route("mounts", R, "List the currently mounted secrets engines.", &[]),
        route("mounts/{path}", &["read", "update", "delete"], "Mount, read or unmount a secrets engine at the given path.", &[MOUNT_PATH, ("type", "string", "The type of the backend, such as kv."), ("description", "string", "User-friendly description for this mount."), ("config", "map", "Configuration for this mount, such as default_lease_ttl."), ("options", "map", "Mount options, such as version for kv.")]),
        route("mounts/{path}/tune", RW, "Tune or read the configuration of a mount.", &[MOUNT_PATH, ("default_lease_ttl", "string", "The default lease TTL of the mount."), ("max_lease_ttl", "string", "The maximum lease TTL of the mount."), ("description", "string", "User-friendly description for this mount.")]),
        route("auth", R, "List the currently enabled auth methods.", &[]),
        route("auth/{path}", &["read", "update", "delete"], "Enable or disable an auth method at the given path.", &[MOUNT_PATH, ("type", "string", "The type of the auth method, such as userpass.")]),
        route("auth/{path}/tune", RW, "Tune or read the configuration of an auth method.", &[MOUNT_PATH]),
        route("policies/acl", L, "List the ACL policies.", &[]),
        route("policies/acl/{name}", &["read", "update", "delete"], "Read, write or delete an ACL policy.", &[NAME, ("policy", "string", "The policy document, in HCL or JSON.")]),
        route("policy", R, "List the policies (legacy path).", &[]),
        route("policy/{name}", &["read", "update", "delete"], "Read, write or delete a policy (legacy path).", &[NAME, ("policy", "string", "The policy document, in HCL or JSON.")]),
        route("capabilities", W, "Capabilities of a token on paths.", &[("token", "string", "The token to check."), ("paths", "slice", "Paths to check.")]),
        route("capabilities-self", W, "Capabilities of the calling token on paths.", &[("paths", "slice", "Paths to check.")]),
        route("capabilities-accessor", W, "Capabilities of a token, named by accessor, on paths.", &[("accessor", "string", "Accessor of the token."), ("paths", "slice", "Paths to check.")]),
        route("key-status", R, "The current term, install time and encryption count of the barrier key.", &[]),
        route("rotate", W, "Rotate the barrier encryption key.", &[]),
        route("rotate/keyring", W, "Rotate the barrier encryption key (same as rotate).", &[]),
        route("rotate/keyring/config", R, "How the barrier key is rotated automatically.", &[]),
        route("rotate/config", R, "How the barrier key is rotated automatically (Vault's older path).", &[]),
        route("seal", W, "Seal the server.", &[]),
        route("storage/raft/snapshot", RW, "Save (read) a snapshot of the whole store, or restore (write) one taken from this store; a restore seals the server.", &[]),
        route("storage/raft/snapshot-force", W, "Restore a snapshot taken from another store; the server seals and opens with that store's unseal keys.", &[]),
        route("seal-status", R, "The seal status of the server.", &[]),
        route("health", R, "The health of the server.", &[]),
        route("init", RW, "Initialise the server, or read whether it is.", &[("secret_shares", "int", "Number of key shares."), ("secret_threshold", "int", "Shares needed to unseal.")]),
        route("unseal", W, "Submit an unseal key share.", &[("key", "string", "An unseal key share."), ("reset", "bool", "Discard the progress.")]),
        route("leader", R, "High availability status.", &[]),
        route("leases/lookup", W, "Look up a lease.", &[("lease_id", "string", "The lease id.")]),
        route("leases/lookup/{prefix}", L, "List the leases under a prefix.", &[("prefix", "string", "The lease prefix.")]),
        route("leases/renew", W, "Renew a lease.", &[("lease_id", "string", "The lease id."), ("increment", "int", "Requested extension, in seconds.")]),
        route("leases/revoke", W, "Revoke a lease.", &[("lease_id", "string", "The lease id.")]),
        route("leases/revoke-prefix/{prefix}", W, "Revoke every lease under a prefix.", &[("prefix", "string", "The lease prefix.")]),
        route("leases/revoke-force/{prefix}", W, "Revoke every lease under a prefix, ignoring backend errors.", &[("prefix", "string", "The lease prefix.")]),
        route("leases/tidy", W, "Revoke the expired leases now.", &[]),
        route("audit", R, "List the enabled audit devices.", &[]),
        route("audit/{path}", &["update", "delete"], "Enable or disable an audit device.", &[MOUNT_PATH, ("type", "string", "The type of the audit device: file, socket or syslog."), ("options", "map", "Options of the device.")]),
        route("audit-hash/{path}", W, "The HMAC of a value as an audit device records it.", &[MOUNT_PATH, ("input", "string", "The value to hash.")]),
        route("tools/random", W, "Random bytes from the platform's generator.", &[("bytes", "int", "Number of bytes (1 to 131072, default 32)."), ("format", "string", "hex or base64 (default)."), ("source", "string", "platform (default), seal or all.")]),
        route("tools/random/{urlbytes}", W, "Random bytes, the count given in the path.", &[("urlbytes", "string", "Number of bytes."), ("format", "string", "hex or base64 (default).")]),
        route("tools/random/{source}/{urlbytes}", W, "Random bytes from a source, the count given in the path.", &[("source", "string", "platform, seal or all."), ("urlbytes", "string", "Number of bytes."), ("format", "string", "hex or base64 (default).")]),
        route("tools/hash", W, "The digest of the input.", &[("input", "string", "The input, base64 encoded."), ("algorithm", "string", "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-256, sha3-384 or sha3-512."), ("format", "string", "hex (default) or base64.")]),
        route("tools/hash/{urlalgorithm}", W, "The digest of the input, the algorithm given in the path.", &[("urlalgorithm", "string", "The algorithm."), ("input", "string", "The input, base64 encoded."), ("format", "string", "hex (default) or base64.")]),
        route("config/auditing/request-headers", R, "The request headers audit devices record.", &[]),
        route("config/auditing/request-headers/{header}", &["read", "update", "delete"], "Audit a request header, or stop.", &[("header", "string", "The header's name."), ("hmac", "bool", "Record the value's HMAC instead of the value.")]),
        route("plugins/catalog", R, "The plugin catalog: Coffer's built-in engines and auth methods.", &[]),
        route("plugins/catalog/{type}", L, "The built-in plugins of a type (auth, database, secret).", &[("type", "string", "auth, database or secret.")]),
        route("plugins/catalog/{type}/{name}", &["read", "update", "delete"], "A built-in plugin; registering external plugins is refused.", &[("type", "string", "auth, database or secret."), ("name", "string", "The plugin's name.")]),
        route("config/cors", &["read", "update", "delete"], "Configure which browser origins may call the API.", &[("allowed_origins", "slice", "Allowed origins, or * alone."), ("allowed_headers", "slice", "Headers allowed on top of the defaults.")]),
        route("version-history", L, "The versions this store has run.", &[]),
        route("internal/ui/mounts", R, "The mounts the calling token can reach.", &[]),
        route("internal/ui/mounts/{path}", R, "The mount holding a path, if the calling token can reach it.", &[("path", "string", "A path under the mount.")]),
        route("internal/ui/resultant-acl", R, "The calling token's merged policies.", &[]),
        route("internal/counters/tokens", R, "How many service tokens exist.", &[]),
        route("internal/counters/entities", R, "How many identity entities exist.", &[]),
        route("locked-users", R, "The login identities locked out now, by auth mount.", &[]),
        route("locked-users/{mount_accessor}/unlock/{alias_identifier}", W, "Lift a login identity's lockout.", &[("mount_accessor", "string", "The auth mount's accessor."), ("alias_identifier", "string", "The user name or role id.")]),
        route("internal/specs/openapi", R, "An OpenAPI 3 document of the paths the calling token can reach.", &[]),
        route("quotas/config", RW, "Read or write the rate-limit quota configuration (exempt paths, response headers, audit of refusals).", &[("rate_limit_exempt_paths", "slice", "Paths no rate-limit quota counts."), ("enable_rate_limit_response_headers", "bool", "Add X-Ratelimit-* headers to answers."), ("enable_rate_limit_audit_logging", "bool", "Audit the requests a quota refuses.")]),
        route("quotas/rate-limit", L, "List the rate-limit quotas.", &[]),
        route("quotas/rate-limit/{name}", &["read", "update", "delete"], "Create, read, update or delete a rate-limit quota.", &[NAME, ("rate", "float", "Requests allowed per interval, above zero."), ("interval", "duration", "The interval (default 1s)."), ("block_interval", "duration", "How long a client that ran dry is refused."), ("path", "string", "Empty (the whole API), a mount, or a path under one (exact, or a prefix ending in *)."), ("role", "string", "A login role of the auth mount in path.")]),
        route("in-flight-req", R, "The requests this node is handling now.", &[]),
        route("config/state/sanitized", R, "The server's configuration, without secrets.", &[]),
        route("loggers", &["read", "update", "delete"], "Read, set or revert the level of every logger.", &[("level", "string", "trace, debug, info, warn or error.")]),
        route("loggers/{name}", &["read", "update", "delete"], "Read, set or revert the level of one logger.", &[NAME, ("level", "string", "trace, debug, info, warn or error.")]),
        route("coffer/inventory", &["read", "list"], "Coffer's inventory of secrets and their lifecycle.", &[]),
        route("coffer/revoke-compromised", W, "Revoke what a compromised credential issued.", &[]),
    ],
};

/// The token store (`auth/token/`).
pub const TOKEN: BackendDoc = BackendDoc {
    description: "The token credential backend is always enabled and builds in some token-specific paths: creation, lookup, renewal, revocation and roles.",
    routes: &[
        route("create", W, "Create a token.", &[("policies", "slice", "Policies of the token."), ("ttl", "duration", "Time to live."), ("num_uses", "int", "Number of uses."), ("renewable", "bool", "Whether it can be renewed.")]),
        route("create/{role_name}", W, "Create a token under a role.", &[("role_name", "string", "The role.")]),
        route("create-orphan", W, "Create a token without a parent.", &[]),
        route("lookup", W, "Look up a token.", &[("token", "string", "The token.")]),
        route("lookup-self", R, "Look up the calling token.", &[]),
        route("lookup-accessor", W, "Look up a token by accessor.", &[("accessor", "string", "The accessor.")]),
        route("renew", W, "Renew a token.", &[("token", "string", "The token."), ("increment", "duration", "Requested extension.")]),
        route("renew-self", W, "Renew the calling token.", &[("increment", "duration", "Requested extension.")]),
        route("renew-accessor", W, "Renew a token by accessor.", &[("accessor", "string", "The accessor.")]),
        route("revoke", W, "Revoke a token and its children.", &[("token", "string", "The token.")]),
        route("revoke-self", W, "Revoke the calling token.", &[]),
        route("revoke-accessor", W, "Revoke a token by accessor.", &[("accessor", "string", "The accessor.")]),
        route("revoke-orphan", W, "Revoke a token, leaving its children.", &[("token", "string", "The token.")]),
        route("accessors", L, "List token accessors.", &[]),
        route("roles", L, "List token roles.", &[]),
        route("roles/{role_name}", CRUD, "Create, read, update or delete a token role.", &[("role_name", "string", "The role."), ("allowed_policies", "slice", "Policies tokens of the role may have.")]),
        route("tidy", W, "Remove expired tokens and dangling entries.", &[]),
    ],
};

/// KV version 2.
pub const KV2: BackendDoc = BackendDoc {
    description: "This backend provides a versioned key-value store. Secrets are encrypted by Coffer's barrier; each key keeps a configured number of versions, which can be read by number.",
    routes: &[
        route("config", &["read", "create", "update"], "Configures settings for the KV store.", &[("max_versions", "int", "Versions kept per key."), ("cas_required", "bool", "Whether writes need cas."), ("delete_version_after", "duration", "How long a version lives.")]),
        route("data/{path}", &["read", "create", "update", "patch", "delete"], "Write, patch, read and delete data in the key-value store.", &[SECRET_PATH, ("data", "map", "The contents of the data map will be stored and returned on read."), ("options", "map", "Options for writing a KV entry, such as cas."), ("version", "int", "If provided during a read, the value at the version number will be returned.")]),
        route("metadata/{path}", &["read", "list", "create", "update", "patch", "delete"], "Allows interaction with key metadata and settings in the KV store.", &[SECRET_PATH, ("max_versions", "int", "Versions kept for this key."), ("custom_metadata", "map", "User-provided key-value pairs.")]),
        route("delete/{path}", CU, "Marks one or more versions as deleted in the KV store.", &[SECRET_PATH, ("versions", "slice", "The versions to delete.")]),
        route("undelete/{path}", CU, "Undeletes one or more versions from the KV store.", &[SECRET_PATH, ("versions", "slice", "The versions to undelete.")]),
        route("destroy/{path}", CU, "Permanently removes one or more versions in the KV store.", &[SECRET_PATH, ("versions", "slice", "The versions to destroy.")]),
        route("subkeys/{path}", R, "Read the structure of a secret entry with the values removed.", &[SECRET_PATH, ("depth", "int", "How deep to descend."), ("version", "int", "The version to read.")]),
        route("lifecycle/{path}", &["read", "list", "update"], "Coffer's lifecycle record of a secret: owner, type, rotation policy.", &[SECRET_PATH]),
        route("rotate/{path}", W, "Start a staged rotation of a secret.", &[SECRET_PATH]),
        route("consumers/{path}", W, "A consumer's report of the version of a secret it holds (needs read on data/{path}).", &[SECRET_PATH, ("consumer_id", "string", "The consumer's id, unique for its token."), ("version", "int", "The version it holds."), ("kind", "string", "agent, run, ...")]),
    ],
};

/// KV version 1.
pub const KV1: BackendDoc = BackendDoc {
    description: "This backend provides a key-value store without versions. Secrets are encrypted by Coffer's barrier.",
    routes: &[route("{path}", CRUDL, "Pass-through secret storage to the storage backend, allowing you to read/write arbitrary data into secret storage.", &[SECRET_PATH])],
};

/// The userpass auth method.
pub const USERPASS: BackendDoc = BackendDoc {
    description: "The userpass credential provider allows authentication using a combination of a username and password.",
    routes: &[
        route("users", L, "List the users.", &[]),
        route("users/{username}", CRUD, "Manage users allowed to authenticate.", &[("username", "string", "Username for this user."), ("password", "string", "Password for this user."), ("token_policies", "slice", "Policies of the tokens issued.")]),
        route("users/{username}/password", W, "Reset a user's password.", &[("username", "string", "Username for this user."), ("password", "string", "The new password.")]),
        route("users/{username}/policies", W, "Update the policies of a user.", &[("username", "string", "Username for this user."), ("token_policies", "slice", "Policies of the tokens issued.")]),
        route("login/{username}", W, "Log in with a username and password.", &[("username", "string", "Username of the user."), ("password", "string", "Password for this user.")]),
    ],
};

/// The AppRole auth method.
pub const APPROLE: BackendDoc = BackendDoc {
    description: "Any registered Role can authenticate itself with Coffer. The credentials depend on the constraints set on the Role: a RoleID and, by default, a SecretID.",
    routes: &[
        route("role", L, "List the roles.", &[]),
        route("role/{role_name}", CRUD, "Register, read, update or delete a role.", &[("role_name", "string", "Name of the role."), ("bind_secret_id", "bool", "Whether a SecretID is required."), ("token_policies", "slice", "Policies of the tokens issued.")]),
        route("role/{role_name}/role-id", RW, "Read or set the RoleID of a role.", &[("role_name", "string", "Name of the role."), ("role_id", "string", "The RoleID.")]),
        route("role/{role_name}/secret-id", &["list", "update"], "Generate a SecretID, or list their accessors.", &[("role_name", "string", "Name of the role."), ("metadata", "string", "Metadata tied to the SecretID.")]),
        route("login", W, "Log in with a RoleID and SecretID.", &[("role_id", "string", "The RoleID."), ("secret_id", "string", "The SecretID.")]),
        route("tidy/secret-id", W, "Remove expired SecretIDs.", &[]),
    ],
};

/// The JWT/OIDC auth method.
pub const JWT: BackendDoc = BackendDoc {
    description: "The JWT auth method authenticates with JSON Web Tokens signed by keys configured inline or fetched from a JWKS URL.",
    routes: &[
        route("config", RW, "Configure the keys and issuer the method trusts.", &[("jwks_url", "string", "URL of the key set (under the server's [jwt_discovery] allowed_urls)."), ("jwks_ca_pem", "string", "PEM CA certificates trusted for jwks_url."), ("oidc_discovery_url", "string", "OIDC issuer URL whose discovery document names the key set."), ("oidc_discovery_ca_pem", "string", "PEM CA certificates trusted for oidc_discovery_url."), ("jwt_validation_pubkeys", "slice", "PEM public keys."), ("bound_issuer", "string", "The issuer required.")]),
        route("role", L, "List the roles.", &[]),
        route("role/{name}", CRUD, "Create, read, update or delete a role.", &[NAME, ("role_type", "string", "jwt."), ("user_claim", "string", "The claim naming the user."), ("bound_audiences", "slice", "Audiences required.")]),
        route("login", W, "Log in with a JWT.", &[("role", "string", "The role."), ("jwt", "string", "The signed token.")]),
    ],
};

/// The database secrets engine.
pub const DATABASE: BackendDoc = BackendDoc {
    description: "The database backend supports using many different databases as secret backends, including PostgreSQL: dynamic users with leases, and static users rotated on a schedule.",
    routes: &[
        route("config", L, "List the configured connections.", &[]),
        route("config/{name}", CRUD, "Configure a connection.", &[NAME, ("plugin_name", "string", "The database plugin."), ("connection_url", "string", "The connection URL."), ("allowed_roles", "slice", "Roles allowed to use it.")]),
        route("reset/{name}", W, "Reset a connection.", &[NAME]),
        route("rotate-root/{name}", W, "Rotate the connection's root credential.", &[NAME]),
        route("roles", L, "List the dynamic roles.", &[]),
        route("roles/{name}", CRUD, "Manage a dynamic role.", &[NAME, ("db_name", "string", "The connection."), ("creation_statements", "slice", "Statements that create the user.")]),
        route("creds/{name}", R, "Request a dynamic credential.", &[NAME]),
        route("static-roles", L, "List the static roles.", &[]),
        route("static-roles/{name}", CRUD, "Manage a static role.", &[NAME, ("db_name", "string", "The connection."), ("username", "string", "The database user."), ("rotation_period", "duration", "How often it is rotated.")]),
        route("static-creds/{name}", R, "Read a static role's current credential.", &[NAME]),
        route("rotate-role/{name}", W, "Rotate a static role's credential now.", &[NAME]),
    ],
};

/// The transit secrets engine.
pub const TRANSIT: BackendDoc = BackendDoc {
    description: "The transit backend encrypts, decrypts, signs and verifies data with named keys it keeps; the keys never leave it unless made exportable.",
    routes: &[
        route("keys", L, "List the keys.", &[]),
        route("keys/{name}", CRUD, "Create, read or delete a key.", &[NAME, ("type", "string", "The key type (aes256-gcm96 by default)."), ("derived", "bool", "Derive a key per context."), ("exportable", "bool", "Allow export of the key material."), ("auto_rotate_period", "duration", "Rotate this often (0: never, else at least 1h).")]),
        route("keys/{name}/config", W, "Configure a key.", &[NAME, ("min_decryption_version", "int", "Oldest version that may decrypt."), ("min_encryption_version", "int", "Oldest version that may encrypt."), ("deletion_allowed", "bool", "Allow deletion of the key.")]),
        route("keys/{name}/rotate", W, "Add a new version to a key.", &[NAME]),
        route("keys/{name}/trim", W, "Remove the versions below min_available_version.", &[NAME, ("min_available_version", "int", "Oldest version kept.")]),
        route("export/{type}/{name}", R, "Export an exportable key.", &[NAME, ("type", "string", "encryption-key, signing-key or hmac-key.")]),
        route("encrypt/{name}", W, "Encrypt base64 plaintext.", &[NAME, ("plaintext", "string", "Base64 plaintext."), ("context", "string", "Base64 context of a derived key."), ("key_version", "int", "Version to use."), ("batch_input", "slice", "Items to encrypt.")]),
        route("decrypt/{name}", W, "Decrypt a ciphertext.", &[NAME, ("ciphertext", "string", "vault:v<N>:... ciphertext."), ("batch_input", "slice", "Items to decrypt.")]),
        route("rewrap/{name}", W, "Re-encrypt a ciphertext with the latest version.", &[NAME, ("ciphertext", "string", "The ciphertext.")]),
        route("datakey/{plaintext}/{name}", W, "Generate a data key.", &[NAME, ("bits", "int", "128, 256 or 512.")]),
        route("sign/{name}", W, "Sign base64 input.", &[NAME, ("input", "string", "Base64 input."), ("hash_algorithm", "string", "Hash."), ("signature_algorithm", "string", "pss or pkcs1v15 for RSA.")]),
        route("verify/{name}", W, "Verify a signature or an HMAC.", &[NAME, ("input", "string", "Base64 input."), ("signature", "string", "The signature."), ("hmac", "string", "The HMAC.")]),
        route("hmac/{name}", W, "HMAC base64 input.", &[NAME, ("input", "string", "Base64 input."), ("algorithm", "string", "Hash.")]),
        route("hash", W, "Hash base64 input.", &[("input", "string", "Base64 input."), ("algorithm", "string", "Hash."), ("format", "string", "hex or base64.")]),
        route("random", W, "Random bytes.", &[("bytes", "int", "How many."), ("format", "string", "base64 or hex.")]),
    ],
};

/// The pki secrets engine.
pub const PKI: BackendDoc = BackendDoc {
    description: "The PKI backend issues X.509 certificates from a root or intermediate CA under roles that decide which names a certificate may carry.",
    routes: &[
        route("root/generate/{type}", W, "Generate a root CA (internal or exported).", &[("type", "string", "internal or exported."), ("common_name", "string", "The CA's common name."), ("ttl", "duration", "Its lifetime."), ("key_type", "string", "rsa, ec or ed25519.")]),
        route("root/sign-intermediate", W, "Sign an intermediate CA's CSR.", &[("csr", "string", "The PEM CSR."), ("common_name", "string", "The CA's common name."), ("ttl", "duration", "Its lifetime.")]),
        route("intermediate/generate/{type}", W, "Generate an intermediate key and CSR.", &[("type", "string", "internal or exported."), ("common_name", "string", "The CA's common name.")]),
        route("intermediate/set-signed", W, "Import the signed intermediate certificate.", &[("certificate", "string", "The PEM certificate and chain.")]),
        route("ca", R, "The default issuer's certificate (DER).", &[]),
        route("ca/pem", R, "The default issuer's certificate (PEM).", &[]),
        route("ca_chain", R, "The default issuer's chain (PEM).", &[]),
        route("cert/{serial}", R, "A certificate by serial number.", &[("serial", "string", "The serial, colons or hyphens.")]),
        route("certs", L, "List the stored certificates.", &[]),
        route("issuers", L, "List the issuers.", &[]),
        route("issuer/{ref}", RW, "Read or rename an issuer.", &[("ref", "string", "default, an id or a name.")]),
        route("config/issuers", RW, "Read or set the default issuer.", &[("default", "string", "The issuer.")]),
        route("config/urls", RW, "URLs written into certificates.", &[("issuing_certificates", "slice", "CA URLs."), ("crl_distribution_points", "slice", "CRL URLs.")]),
        route("config/crl", RW, "CRL lifetime.", &[("expiry", "duration", "How long a CRL is valid.")]),
        route("roles", L, "List the roles.", &[]),
        route("roles/{name}", CRUD, "Manage a role.", &[NAME, ("allowed_domains", "slice", "Domains names may fall under."), ("allow_subdomains", "bool", "Names below them."), ("key_type", "string", "rsa, ec or ed25519."), ("ttl", "duration", "Default TTL."), ("max_ttl", "duration", "Maximum TTL.")]),
        route("issue/{role}", W, "Issue a certificate and key.", &[("role", "string", "The role."), ("common_name", "string", "The common name."), ("alt_names", "slice", "DNS SANs."), ("ip_sans", "slice", "IP SANs."), ("ttl", "duration", "Its lifetime.")]),
        route("sign/{role}", W, "Sign a CSR.", &[("role", "string", "The role."), ("csr", "string", "The PEM CSR.")]),
        route("revoke", W, "Revoke a certificate.", &[("serial_number", "string", "Its serial.")]),
        route("crl", R, "The default issuer's CRL (DER).", &[]),
        route("crl/pem", R, "The default issuer's CRL (PEM).", &[]),
        route("crl/rotate", R, "Rebuild the CRLs.", &[]),
        route("tidy", W, "Remove expired certificates and revocations.", &[("tidy_cert_store", "bool", "Tidy the store."), ("tidy_revoked_certs", "bool", "Tidy revocations."), ("safety_buffer", "duration", "Time past NotAfter kept.")]),
        route("tidy-status", R, "The last tidy's outcome.", &[]),
    ],
};

/// The identity store.
pub const IDENTITY: BackendDoc = BackendDoc {
    description: "The identity store: entities, their aliases on auth methods, internal and external groups, and lookups. Entity and group policies are added to their tokens at each request. Identity tokens: signed OIDC ID tokens of the caller's entity, minted against roles and named keys.",
    routes: &[
        route("entity", W, "Create or update an entity.", &[NAME, ("id", "string", "ID of the entity to update."), ("policies", "slice", "Policies of the entity."), ("metadata", "map", "Metadata of the entity."), ("disabled", "bool", "Refuse the entity's tokens.")]),
        route("entity/id", L, "List entities by id.", &[]),
        route("entity/id/{id}", CRUD, "Manage an entity by id.", &[("id", "string", "ID of the entity.")]),
        route("entity/name", L, "List entities by name.", &[]),
        route("entity/name/{name}", CRUD, "Manage an entity by name.", &[NAME]),
        route("entity/batch-delete", W, "Delete several entities.", &[("entity_ids", "slice", "Entities to delete.")]),
        route("entity/merge", W, "Merge entities into one.", &[("from_entity_ids", "slice", "Entities merged."), ("to_entity_id", "string", "Entity kept.")]),
        route("entity-alias", W, "Create or update an entity alias.", &[NAME, ("mount_accessor", "string", "Accessor of the auth mount."), ("canonical_id", "string", "The entity.")]),
        route("entity-alias/id", L, "List entity aliases.", &[]),
        route("entity-alias/id/{id}", CRUD, "Manage an entity alias.", &[("id", "string", "ID of the alias.")]),
        route("group", W, "Create or update a group.", &[NAME, ("type", "string", "internal or external."), ("policies", "slice", "Policies of the group."), ("member_entity_ids", "slice", "Member entities."), ("member_group_ids", "slice", "Member groups.")]),
        route("group/id", L, "List groups by id.", &[]),
        route("group/id/{id}", CRUD, "Manage a group by id.", &[("id", "string", "ID of the group.")]),
        route("group/name", L, "List groups by name.", &[]),
        route("group/name/{name}", CRUD, "Manage a group by name.", &[NAME]),
        route("group-alias", W, "Create or update an external group's alias.", &[NAME, ("mount_accessor", "string", "Accessor of the auth mount."), ("canonical_id", "string", "The group.")]),
        route("group-alias/id", L, "List group aliases.", &[]),
        route("group-alias/id/{id}", CRUD, "Manage a group alias.", &[("id", "string", "ID of the alias.")]),
        route("lookup/entity", W, "Find an entity by id, name or alias.", &[]),
        route("lookup/group", W, "Find a group by id, name or alias.", &[]),
        route("oidc/config", RW, "The issuer of identity tokens.", &[("issuer", "string", "Issuer URL (scheme, host and port); empty: the server's api_addr.")]),
        route("oidc/key", L, "List the named keys of identity tokens.", &[]),
        route("oidc/key/{name}", CRUD, "Manage a named key that signs identity tokens.", &[NAME, ("rotation_period", "duration", "How often a new signing key is made (24h)."), ("verification_ttl", "duration", "How long a replaced public key stays published (24h)."), ("allowed_client_ids", "slice", "Client ids of the roles that may use the key; * for all."), ("algorithm", "string", "RS256, RS384, RS512, ES256, ES384, ES512 or EdDSA.")]),
        route("oidc/key/{name}/rotate", W, "Rotate a named key now.", &[NAME, ("verification_ttl", "duration", "How long the replaced public key stays published.")]),
        route("oidc/role", L, "List the roles of identity tokens.", &[]),
        route("oidc/role/{name}", CRUD, "Manage a role identity tokens are minted against.", &[NAME, ("key", "string", "The named key that signs its tokens."), ("template", "string", "JSON template of extra claims (or base64 of it)."), ("client_id", "string", "The tokens' audience; generated if unset."), ("ttl", "duration", "Lifetime of its tokens (24h).")]),
        route("oidc/token/{name}", R, "Mint an identity token of the caller's entity.", &[NAME]),
        route("oidc/introspect", W, "Check an identity token's signature, claims and entity.", &[("token", "string", "The token."), ("client_id", "string", "The audience it must have.")]),
        route("oidc/.well-known/openid-configuration", R, "The OIDC discovery document (no token needed).", &[]),
        route("oidc/.well-known/keys", R, "The public keys of identity tokens (no token needed).", &[]),
    ],
};

/// The catalog of the backend mounted with `kind` (and kv `version`).
pub fn backend(kind: &str, version: Option<&str>) -> Option<&'static BackendDoc> {
    match (kind, version) {
        ("kv", Some("2")) => Some(&KV2),
        ("kv", _) => Some(&KV1),
        ("userpass", _) => Some(&USERPASS),
        ("approle", _) => Some(&APPROLE),
        ("jwt" | "oidc", _) => Some(&JWT),
        ("database", _) => Some(&DATABASE),
        ("transit", _) => Some(&TRANSIT),
        ("pki", _) => Some(&PKI),
        ("identity", _) => Some(&IDENTITY),
        _ => None,
    }
}

/// Whether `req` asks for help (`?help=1` on a read).
pub(crate) fn is_help(req: &Request) -> bool {
    req.operation == Operation::Read
        && req.data.get("help").is_some_and(|v| match v {
            Value::String(s) => matches!(s.as_str(), "1" | "true" | "t"),
            Value::Bool(b) => *b,
            _ => false,
        })
}

/// Whether `rel` (a path below a mount) matches `pattern`.
pub(crate) fn matches(pattern: &str, rel: &str) -> bool {
    let rel = rel.trim_end_matches('/');
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = rel.split('/').collect();
    for (i, p) in pat.iter().enumerate() {
        // A final `{path}` or `{prefix}` spans the rest (Vault's `.*` and `.+?`).
        if matches!(*p, "{path}" | "{prefix}") && i == pat.len() - 1 {
            return segs.len() > i && !segs[i..].iter().any(|s| s.is_empty());
        }
        match segs.get(i) {
            Some(s) if p.starts_with('{') => {
                if s.is_empty() {
                    return false;
                }
            }
            Some(s) if s == p => {}
            _ => return false,
        }
    }
    segs.len() == pat.len()
}

/// The route's pattern as the regular expression Vault shows.
fn regex_of(pattern: &str) -> String {
    let last = pattern.split('/').count() - 1;
    let parts: Vec<String> = pattern
        .split('/')
        .enumerate()
        .map(
            |(i, p)| match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some("path") => "(?P<path>.*)".to_string(),
                Some("prefix") if i == last => "(?P<prefix>.+?)".to_string(),
                Some(name) => format!("(?P<{name}>\\w(([\\w-.]+)?\\w)?)"),
                None => p.replace('.', "\\."),
            },
        )
        .collect();
    format!("^{}$", parts.join("/"))
}

fn backend_help(doc: &BackendDoc) -> String {
    let mut out = format!(
        "## DESCRIPTION\n\n{}\n\n## PATHS\n\nThe following paths are supported by this backend. To view help for\nany of the paths below, use the help command with any route matching\nthe path pattern. Note that depending on the policy of your auth token,\nyou may or may not be able to access certain paths.\n\n",
        doc.description
    );
    for r in doc.routes {
        out.push_str(&format!(
            "    {}\n        {}\n\n",
            regex_of(r.pattern),
            r.summary
        ));
    }
    out
}

fn route_help(rel: &str, r: &RouteDoc) -> String {
    let mut out = format!(
        "Request:        {rel}\nMatching Route: {}\n\n{}\n",
        regex_of(r.pattern),
        r.summary
    );
    if !r.params.is_empty() {
        out.push_str("\n## PARAMETERS\n\n");
        let mut params: Vec<&Param> = r.params.iter().collect();
        params.sort_by_key(|p| p.0);
        for (name, kind, desc) in params {
            out.push_str(&format!("    {name} ({kind})\n\n        {desc}\n\n"));
        }
    }
    out.push_str(&format!(
        "\n## DESCRIPTION\n\nThis path answers: {}.\n",
        r.ops.join(", ")
    ));
    out
}

/// The catalog, mount path (as the API spells it) and path below the
/// mount for a routed request.
fn doc_of(m: &Mounted) -> Option<&'static BackendDoc> {
    match m.entry.kind.as_str() {
        "system" => Some(&SYS),
        "token" => Some(&TOKEN),
        kind => backend(kind, m.entry.options.get("version").map(String::as_str)),
    }
}

/// Answers a help request on a routed path: the backend's overview at the
/// mount itself, a route's help below it; 404 for a path no route matches.
pub(crate) fn answer(m: &Mounted, rel: &str) -> Result<Response> {
    let doc = doc_of(m).ok_or_else(|| Error::UnsupportedPath("no help for this path".into()))?;
    let mount = m.entry.path.clone();
    let rel = rel.trim_end_matches('/').to_string();
    let (help, routes): (String, Vec<&RouteDoc>) = if rel.is_empty() {
        (backend_help(doc), doc.routes.iter().collect())
    } else {
        let r = doc
            .routes
            .iter()
            .find(|r| matches(r.pattern, &rel))
            .ok_or_else(|| Error::UnsupportedPath(format!("unsupported path: {mount}{rel}")))?;
        (route_help(&rel, r), vec![r])
    };
    let mut doc = OpenApi::default();
    let tag = tag_of(&mount);
    for r in routes {
        // Relative to the mount, as Vault's: operation ids without the
        // backend's prefix.
        doc.add("", r, tag, "");
    }
    Ok(Response::raw(json!({
        "help": help,
        "see_also": null,
        "openapi": document(doc.paths, doc.schemas),
    })))
}

fn tag_of(mount: &str) -> &'static str {
    if mount == "sys/" {
        "system"
    } else if mount.starts_with("auth/") {
        "auth"
    } else {
        "secrets"
    }
}

/// An OpenAPI document holding `paths` and the request-body `schemas`
/// they refer to.
fn document(paths: Map<String, Value>, schemas: Map<String, Value>) -> Value {
    json!({
        "openapi": "3.0.2",
        "info": {
            "title": "Coffer API",
            "description": "HTTP API that gives you full access to Coffer. All API routes are prefixed with `/v1/`.",
            "version": VERSION,
            "license": {"name": "Apache-2.0 OR MIT"},
        },
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// The parts of an OpenAPI document being built: its paths and schemas.
#[derive(Default)]
struct OpenApi {
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
}

/// `kv-write-data-path` as Vault names the schema of its body:
/// `KvWriteDataPathRequest`.
fn schema_name(operation_id: &str) -> String {
    let mut name: String = operation_id
        .split('-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect();
    name.push_str("Request");
    name
}

/// The operation-id prefix of a backend in the whole-server document, as
/// Vault's: the engine's type (`kv`, `userpass`, ...); none for the system
/// backend, nor in a mount's own help (`kind` empty).
fn operation_prefix(kind: &str) -> &str {
    match kind {
        "system" => "",
        other => other,
    }
}

impl OpenApi {
    /// Adds one route under `prefix` (the mount path, or empty for a
    /// document relative to the mount), in Vault's shape: one path item per
    /// route; a list on a path that also reads is GET's optional `list`
    /// parameter, a list alone GET with `list=true` required; each request
    /// body a schema under `components`.
    fn add(&mut self, prefix: &str, r: &RouteDoc, tag: &str, kind: &str) {
        let templ = format!("/{prefix}{}", r.pattern);
        let slug: String = r
            .pattern
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let op_prefix = operation_prefix(kind);
        let mount_slug: String = if op_prefix.is_empty() && !prefix.is_empty() && prefix != "sys/" {
            prefix
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("-")
        } else {
            String::new()
        };
        let op_id = |verb: &str| {
            [op_prefix, mount_slug.as_str(), verb, slug.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("-")
        };
        let placeholders: Vec<&str> = r
            .pattern
            .split('/')
            .filter_map(|p| p.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .collect();
        let describe = |name: &str| {
            r.params
                .iter()
                .find(|p| p.0 == name)
                .map(|p| p.2)
                .unwrap_or("")
        };
        let path_params: Vec<Value> = placeholders
            .iter()
            .map(|n| json!({"name": n, "description": describe(n), "in": "path", "schema": {"type": "string"}, "required": true}))
            .collect();
        let body_props: Map<String, Value> = r
            .params
            .iter()
            .filter(|p| !placeholders.contains(&p.0))
            .map(|(name, kind, desc)| {
                (
                    name.to_string(),
                    json!({"type": openapi_type(kind), "description": desc}),
                )
            })
            .collect();
        let ok = json!({"200": {"description": "OK"}});
        let has = |op: &str| r.ops.contains(&op);
        let mut item = Map::new();
        item.insert("description".into(), json!(r.summary));
        if !path_params.is_empty() {
            item.insert("parameters".into(), json!(path_params));
        }
        if has("create") {
            item.insert("x-vault-createSupported".into(), json!(true));
        }
        if has("read") || has("list") {
            let (verb, list_param) = if has("read") {
                let optional = has("list").then(|| json!({"name": "list", "description": "Return a list if `true`", "in": "query", "schema": {"type": "string"}}));
                ("read", optional)
            } else {
                let required = json!({"name": "list", "description": "Must be set to `true`", "in": "query", "schema": {"type": "string", "enum": ["true"]}, "required": true});
                ("list", Some(required))
            };
            let mut get = json!({"operationId": op_id(verb), "tags": [tag], "responses": ok});
            if let Some(p) = list_param {
                get["parameters"] = json!([p]);
            }
            item.insert("get".into(), get);
        }
        let mut with_body = |verb: &str, method: &str, item: &mut Map<String, Value>| {
            let id = op_id(verb);
            let mut op = json!({"operationId": id, "tags": [tag], "responses": ok});
            if !body_props.is_empty() {
                let name = schema_name(&id);
                self.schemas.insert(
                    name.clone(),
                    json!({"type": "object", "properties": body_props}),
                );
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}});
            }
            item.insert(method.into(), op);
        };
        if has("create") || has("update") {
            with_body("write", "post", &mut item);
        }
        if has("patch") {
            with_body("patch", "patch", &mut item);
        }
        if has("delete") {
            item.insert(
                "delete".into(),
                json!({"operationId": op_id("delete"), "tags": [tag], "responses": {"204": {"description": "empty body"}}}),
            );
        }
        self.paths.insert(templ, Value::Object(item));
    }
}

fn openapi_type(kind: &str) -> &'static str {
    match kind {
        "int" => "integer",
        "bool" => "boolean",
        "map" => "object",
        "slice" => "array",
        _ => "string",
    }
}

/// Answers `sys/internal/specs/openapi`: the built-in backends and every
/// mount the token's policies reach, each route under its mount path.
pub(crate) async fn openapi(core: &Core, token: &TokenEntry) -> Result<Response> {
    let acl: std::sync::Arc<Acl> = core.token_acl(token).await?;
    let mut mounts: Vec<(String, String, &'static BackendDoc)> = vec![
        ("sys/".into(), "system".into(), &SYS),
        ("auth/token/".into(), "token".into(), &TOKEN),
    ];
    for m in core.router.read().entries() {
        let version = m.entry.options.get("version").map(String::as_str);
        if let Some(doc) = backend(&m.entry.kind, version) {
            mounts.push((m.entry.path.clone(), m.entry.kind.clone(), doc));
        }
    }
    let mut out = OpenApi::default();
    for (mount, kind, doc) in mounts {
        if !acl.reaches_under(&mount) {
            continue;
        }
        for r in doc.routes {
            out.add(&mount, r, tag_of(&mount), &kind);
        }
    }
    Ok(Response::raw(document(out.paths, out.schemas)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_declared() {
        assert!(matches("data/{path}", "data/a/b/c"));
        assert!(!matches("data/{path}", "data"));
        assert!(!matches("data/{path}", "data//x"));
        assert!(matches("users/{username}", "users/alice"));
        assert!(!matches("users/{username}", "users/alice/x"));
        assert!(matches("users/{username}/password", "users/alice/password"));
        assert!(matches(
            "tools/random/{source}/{urlbytes}",
            "tools/random/all/8"
        ));
        assert!(matches("mounts", "mounts/"));
        assert!(!matches("mounts", "mountsx"));
        assert_eq!(regex_of("data/{path}"), "^data/(?P<path>.*)$");
        // Vault's lease prefixes span segments.
        assert!(matches(
            "leases/revoke-prefix/{prefix}",
            "leases/revoke-prefix/auth/userpass/login"
        ));
        assert!(!matches(
            "leases/revoke-prefix/{prefix}",
            "leases/revoke-prefix"
        ));
        assert_eq!(
            regex_of("leases/lookup/{prefix}"),
            "^leases/lookup/(?P<prefix>.+?)$"
        );
    }

    #[test]
    fn every_route_is_unique_and_has_operations() {
        for doc in [
            &SYS, &TOKEN, &KV1, &KV2, &USERPASS, &APPROLE, &JWT, &DATABASE, &TRANSIT,
        ] {
            let mut seen = std::collections::HashSet::new();
            for r in doc.routes {
                assert!(seen.insert(r.pattern), "{} twice", r.pattern);
                assert!(!r.ops.is_empty() && !r.summary.is_empty(), "{}", r.pattern);
                for op in r.ops {
                    assert!(["read", "list", "create", "update", "patch", "delete"].contains(op));
                }
            }
        }
    }
}
