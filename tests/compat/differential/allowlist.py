"""Deliberate differences between Coffer and OpenBao: the ONE list.

Every entry says why Coffer answers differently on purpose. A feature Coffer
lacks is not a deliberate difference and does not belong here: it stays a
mismatch until it is built.

An entry matches a non-matching item when every glob matches:
``label`` (the request, "METHOD path" unless the scenario named it),
``at`` (the JSON path, "status", "body" or "errors") and ``kind``
(status, body, errors, missing, extra, type, value).
"""

from __future__ import annotations

import dataclasses
import fnmatch


@dataclasses.dataclass(frozen=True)
class Allow:
    """One deliberate difference and its reason."""

    label: str
    at: str
    kind: str
    reason: str

    def matches(self, label: str, at: str, kind: str) -> bool:
        """True if this entry covers the item."""
        return (
            fnmatch.fnmatchcase(label, self.label)
            and fnmatch.fnmatchcase(at, self.at)
            and fnmatch.fnmatchcase(kind, self.kind)
        )


ALLOW: list[Allow] = [
    Allow(
        "*",
        "mount_type",
        "extra",
        "Vault 1.15+ puts mount_type in every response and Coffer follows Vault's wire format "
        "(hvac and the Vault CLI read it); OpenBao 2.x dropped the key.",
    ),
    Allow(
        "GET sys/health*",
        "performance_standby",
        "extra",
        "Vault's sys/health always carries performance_standby; Vault clients and load-balancer "
        "checks read it. OpenBao 2.x dropped it.",
    ),
    Allow(
        "GET sys/leader",
        "*",
        "extra",
        "Vault answers sys/leader with the full key set (is_self, leader_address, active_time, "
        "performance_standby...) even without HA; OpenBao trims it to ha_enabled when HA is off.",
    ),
    Allow(
        "read with trailing slash",
        "*",
        "*",
        "Canonical paths (ARCHITECTURE.md): a non-LIST path loses its trailing slash, so "
        "GET secret/data/a/ reads secret/data/a; OpenBao answers 500 (an internal error) here.",
    ),
    Allow(
        "sys/mounts/ with slash",
        "*",
        "*",
        "Canonical paths: GET sys/mounts/ is GET sys/mounts (the mount table); OpenBao looks up "
        "a mount named '' and answers 404.",
    ),
    Allow(
        "empty segment",
        "status",
        "status",
        "Canonical paths refuse an empty segment (a//b) with 400 before routing, so no engine or "
        "ACL ever sees two spellings of one path; OpenBao routes it and answers 404.",
    ),
    Allow(
        "GET sys/policies/acl/default",
        "data.policy",
        "value",
        "Coffer's default policy grants the same paths and capabilities in its own words and "
        "layout (Vault's text is not copied); the rules, not the text, are compared by "
        "sys/capabilities scenarios.",
    ),
    Allow(
        "resultant-acl of a policy token",
        "data.exact_paths.sys/[rc][eo]n*",
        "extra",
        "Coffer's default policy grants what Vault's does, which includes sys/renew (the legacy "
        "lease renewal path) and sys/control-group/request; OpenBao's default policy dropped both.",
    ),
    Allow(
        "no password",
        "status",
        "status",
        "userpass login without a password: OpenBao answers 500 (an internal error for a client "
        "mistake); Coffer answers 400 like every other missing-parameter case.",
    ),
    Allow(
        "bao audit enable*",
        "exit",
        "status",
        "OpenBao 2.x refuses to create audit devices through the API unless the operator set "
        "unsafe_allow_api_audit_creation; Coffer, like Vault, allows it, but only for files "
        "under the operator's [audit] file_dir (--dev-audit-dir here).",
    ),
    Allow(
        "bao audit list*",
        "*",
        "type",
        "Follows from the entry above: the device exists on Coffer only.",
    ),
    Allow(
        "creds for role not allowed",
        "status",
        "status",
        "database creds for a role the connection's allowed_roles excludes: OpenBao answers 500; "
        "Coffer answers 400 (the caller's configuration, not a server fault).",
    ),
    Allow(
        "GET sys/health*",
        "audit_devices",
        "extra",
        "Coffer's own addition to sys/health: each audit device's state. A device that cannot "
        "write blocks requests (as in Vault), so a load balancer or operator needs to see it.",
    ),
    Allow(
        "GET sys/seal-status",
        "build_date",
        "extra",
        "Vault 1.13+ names this field build_date and `vault status` prints it; OpenBao 2.x "
        "renamed it commit_date. Coffer keeps Vault's name.",
    ),
    Allow(
        "GET sys/seal-status",
        "commit_date",
        "missing",
        "The other half of the entry above (OpenBao's name for Vault's build_date).",
    ),
    Allow(
        "role token lookup",
        "data.period",
        "extra",
        "A token from a role with token_period is periodic on both servers (renewal resets it to "
        "the period), but OpenBao 2.x leaves period out of its lookup; Vault's shows it (its "
        "periodic-token tutorial prints it), and Coffer follows Vault.",
    ),
    Allow(
        "bao * list -format=json",
        "*/.options",
        "type",
        "No options: OpenBao stores a nil map when the request says \"options\": null (as its "
        "CLI's enable does) and {} when the key is absent, so one mount table shows both. Coffer "
        "normalises both spellings of \"no options\" to {}.",
    ),
    Allow(
        "transit: bad key parameters",
        "status",
        "status",
        "OpenBao answers 500 (an internal error) when a transit key is created with parameters its "
        "type cannot take (derivation on ecdsa-p256, an hmac key without key_size); the request is "
        "at fault, so Coffer answers 400 with the same message, as for any bad input.",
    ),
    Allow(
        "GET empty issuer/default",
        "status",
        "status",
        "pki issuer/default on a mount with no issuer: OpenBao answers 500 'no default issuer "
        "currently configured'; Coffer answers 400 (nothing failed inside the server; a 500 in "
        "Coffer means an internal error with a request id).",
    ),
    Allow(
        "bao path-help*",
        "info.*",
        "*",
        "The OpenAPI document names its own product: Coffer's title, description, version and "
        "licence, not OpenBao's.",
    ),
    Allow(
        "bao path-help*",
        "paths.*.description",
        "value",
        "Route descriptions are written in Coffer's own words (OpenBao's text is not copied); the "
        "routes, operations and parameters are compared, not the prose.",
    ),
    Allow(
        "bao path-help*",
        "paths.*.*.summary",
        "*",
        "Coffer's route catalog has one summary per route, in its own words; OpenBao writes one per "
        "operation on some routes. Prose, not API.",
    ),
    Allow(
        "bao path-help*",
        "paths./^.*$",
        "missing",
        "OpenBao's KV v2 declares a catch-all route that answers only while a KV v1 mount is being "
        "upgraded in place; Coffer upgrades no mount in place, so it has no such route.",
    ),
    Allow(
        "bao path-help*",
        "paths./detailed-metadata/{path}",
        "missing",
        "detailed-metadata is an OpenBao addition (not in Vault's KV v2 API, which Coffer follows).",
    ),
    Allow(
        "bao path-help*",
        "paths./metadata/{path}.get.parameters[[]len]",
        "value",
        "OpenBao's KV v2 metadata GET also takes `scan` (its recursive listing, not in Vault); "
        "Coffer documents Vault's `list` parameter only.",
    ),
    Allow(
        "bao path-help*",
        "paths./lifecycle/*",
        "extra",
        "Coffer's own API: each KV v2 mount's lifecycle records (owner, type, rotation policy).",
    ),
    Allow(
        "bao path-help*",
        "paths./consumers/*",
        "extra",
        "Coffer's own API: consumers of a KV v2 secret report the version they hold.",
    ),
    Allow(
        "bao path-help*",
        "components.schemas.WriteConsumersPathRequest",
        "extra",
        "The request body of Coffer's own consumers route (above).",
    ),
    Allow(
        "bao path-help*",
        "paths./rotate/*",
        "extra",
        "Coffer's own API: staged rotation of a KV v2 secret.",
    ),
    Allow(
        "sanitized config without sudo",
        "*",
        "*",
        "Coffer requires sudo on sys/config/state/sanitized, as the task's Vault reading has it: the "
        "answer maps the deployment (listener, TLS file paths, trusted proxies, storage type), which a "
        "plain read grant on sys/ should not reveal. OpenBao asks only for read.",
    ),
]
