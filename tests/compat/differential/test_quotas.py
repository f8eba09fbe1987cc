"""Rate-limit quotas, in-flight requests, the sanitized configuration and
log levels (sys/quotas/*, sys/in-flight-req, sys/config/state/sanitized,
sys/loggers), each asked of OpenBao and Coffer alike.

The servers are shared by the whole session: every quota here is set on a
mount of its own, and the quota configuration is put back to Vault's
defaults before each test ends."""

from __future__ import annotations

from conftest import uid
from differential.harness import V

DEFAULT_EXEMPT = [
    "sys/generate-recovery-token/attempt",
    "sys/generate-recovery-token/update",
    "sys/generate-root/attempt",
    "sys/generate-root/update",
    "sys/health",
    "sys/seal-status",
    "sys/unseal",
]

RATE_HEADERS = ("X-Ratelimit-Limit", "X-Ratelimit-Remaining", "Retry-After")


def _restore_config(diff):
    diff.call(
        "POST",
        "sys/quotas/config",
        {"rate_limit_exempt_paths": DEFAULT_EXEMPT},
        label="restore the quota configuration",
    )


def test_quota_configuration(diff):
    try:
        diff.call("GET", "sys/quotas/config")
        diff.call(
            "POST",
            "sys/quotas/config",
            {"rate_limit_exempt_paths": ["sys/health", "sys/seal-status"], "enable_rate_limit_response_headers": True},
        )
        diff.call("GET", "sys/quotas/config", label="GET sys/quotas/config (written)")
        # A write sets every field: those left out go back to false or empty.
        diff.call("POST", "sys/quotas/config", {"enable_rate_limit_audit_logging": True}, label="config, one field")
        diff.call("GET", "sys/quotas/config", label="GET sys/quotas/config (one field)")
        diff.call("POST", "sys/quotas/config", {"rate_limit_exempt_paths": "sys/health"}, label="config, one path as a string")
        diff.call("GET", "sys/quotas/config", label="GET sys/quotas/config (string)")
        diff.call("POST", "sys/quotas/config", {"enable_rate_limit_response_headers": "maybe"}, label="config, bad bool")
    finally:
        _restore_config(diff)
    diff.call("GET", "sys/quotas/config", label="GET sys/quotas/config (restored)")


def test_rate_limit_quota_crud_and_bad_input(diff):
    m = uid("qkv")
    q = uid("q")
    diff.call("POST", f"sys/mounts/{m}", {"type": "kv", "options": {"version": "2"}})
    try:
        for label, body in [
            ("no rate", {}),
            ("zero rate", {"rate": 0}),
            ("negative rate", {"rate": -2}),
            ("rate not a number", {"rate": "many"}),
            ("unmounted path", {"rate": 1, "path": f"{uid('none')}/"}),
            ("negative interval", {"rate": 1, "path": f"{m}/", "interval": "-5s"}),
            ("negative block", {"rate": 1, "path": f"{m}/", "block_interval": -1}),
            ("role on a secrets mount", {"rate": 1, "path": f"{m}/", "role": "web"}),
        ]:
            diff.call("POST", f"sys/quotas/rate-limit/{q}", body, label=f"quota: {label}")
        diff.call("POST", f"sys/quotas/rate-limit/{q}", {"rate": 2.5, "interval": "1m", "path": f"{m}/data/app*"})
        diff.call("GET", f"sys/quotas/rate-limit/{q}")
        diff.call(
            "POST",
            f"sys/quotas/rate-limit/{uid('twin')}",
            {"rate": 3, "path": f"{m}/data/app*"},
            label="quota: same factors as another",
        )
        # A rewrite keeps the name and replaces the rest.
        diff.call("PUT", f"sys/quotas/rate-limit/{q}", {"rate": 7, "path": f"/{m}/data/exact", "block_interval": "5m"})
        diff.call("GET", f"sys/quotas/rate-limit/{q}", label="GET quota (rewritten)")
        mq = uid("mq")
        diff.call("POST", f"sys/quotas/rate-limit/{mq}", {"rate": 500, "path": m})
        diff.call("GET", f"sys/quotas/rate-limit/{mq}", label="GET mount quota")
        d = diff.call("LIST", "sys/quotas/rate-limit", compare=False)
        for i, body in enumerate((d.bj, d.cj)):
            assert {q, mq} <= set(body["data"]["keys"]), (i, body)
        diff.call("DELETE", f"sys/quotas/rate-limit/{mq}")
        diff.call("DELETE", f"sys/quotas/rate-limit/{q}")
        diff.call("GET", f"sys/quotas/rate-limit/{q}", label="GET deleted quota")
        diff.call("DELETE", f"sys/quotas/rate-limit/{q}", label="DELETE missing quota")
    finally:
        diff.call("DELETE", f"sys/quotas/rate-limit/{q}", compare=False)
        diff.call("DELETE", f"sys/mounts/{m}", compare=False)


def test_rate_limit_quota_enforcement_and_headers(diff):
    m = uid("qlim")
    q = uid("q")
    diff.call("POST", f"sys/mounts/{m}", {"type": "kv", "options": {"version": "2"}})
    try:
        diff.call(
            "POST",
            "sys/quotas/config",
            {"rate_limit_exempt_paths": DEFAULT_EXEMPT, "enable_rate_limit_response_headers": True},
        )
        diff.call("POST", f"sys/quotas/rate-limit/{q}", {"rate": 2, "interval": "1h", "path": f"{m}/data/limited"})
        for n in (1, 2):
            d = diff.call("GET", f"{m}/data/limited", label=f"limited read {n}")
            for h in ("X-Ratelimit-Limit", "X-Ratelimit-Remaining"):
                assert d.b.headers.get(h) == d.c.headers.get(h), (n, h, d.b.headers, d.c.headers)
        d = diff.call("GET", f"{m}/data/limited", label="limited read 3 (refused)")
        assert d.b.status_code == d.c.status_code == 429
        assert d.bj == d.cj, (d.bj, d.cj)
        for h in RATE_HEADERS:
            assert (h in d.b.headers) == (h in d.c.headers), (h, d.b.headers, d.c.headers)
        # Counted before authentication: no token, the same refusal.
        d = diff.call("GET", f"{m}/data/limited", token=None, label="limited read without a token")
        assert d.b.status_code == d.c.status_code == 429
        # Another path of the mount is not limited, and has no headers.
        d = diff.call("GET", f"{m}/data/other", label="unlimited read")
        assert "X-Ratelimit-Limit" not in d.b.headers and "X-Ratelimit-Limit" not in d.c.headers
        # Exempting the path lifts the quota; headers off by omission.
        diff.call("POST", "sys/quotas/config", {"rate_limit_exempt_paths": DEFAULT_EXEMPT + [f"{m}/data/limited"]})
        d = diff.call("GET", f"{m}/data/limited", label="exempt read")
        assert "X-Ratelimit-Limit" not in d.b.headers and "X-Ratelimit-Limit" not in d.c.headers
        diff.call("DELETE", f"sys/quotas/rate-limit/{q}")
    finally:
        diff.call("DELETE", f"sys/quotas/rate-limit/{q}", compare=False)
        _restore_config(diff)
        diff.call("DELETE", f"sys/mounts/{m}", compare=False)


def test_a_role_quota_on_approle_logins(diff):
    a = uid("qar")
    q = uid("q")
    diff.call("POST", f"sys/auth/{a}", {"type": "approle"})
    try:
        diff.call("POST", f"auth/{a}/role/web", {"bind_secret_id": False, "token_bound_cidrs": ["127.0.0.1/32"]})
        d = diff.call("GET", f"auth/{a}/role/web/role-id")
        diff.bind("rid", d, "data", "role_id")
        diff.call("POST", f"sys/quotas/rate-limit/{q}", {"rate": 1, "path": f"auth/{a}/login", "role": "web"}, label="role with a path suffix")
        diff.call("POST", f"sys/quotas/rate-limit/{q}", {"rate": 1, "interval": "1h", "path": f"auth/{a}/", "role": "web"})
        diff.call("GET", f"sys/quotas/rate-limit/{q}")
        diff.call("POST", f"auth/{a}/login", {"role_id": V("rid")}, token=None, label="role login 1")
        diff.call("POST", f"auth/{a}/login", {"role_id": V("rid")}, token=None, label="role login 2 (refused)")
    finally:
        diff.call("DELETE", f"sys/quotas/rate-limit/{q}", compare=False)
        diff.call("DELETE", f"sys/auth/{a}", compare=False)


def test_in_flight_requests(diff):
    d = diff.call("GET", "sys/in-flight-req", compare=False)
    for i, body in enumerate((d.bj, d.cj)):
        own = [e for e in body.values() if e["request_path"] == "/v1/sys/in-flight-req"]
        assert len(own) == 1, (i, body)
        assert set(own[0]) == {"start_time", "client_remote_address", "request_path", "request_method", "client_id"}, (i, own)
        assert own[0]["request_method"] == "GET"
        assert own[0]["client_id"], (i, own)
    diff.call("GET", "sys/in-flight-req", token=None, label="in-flight-req without a token")
    p = uid("ifr")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": 'path "sys/in-flight-req" { capabilities = ["read"] }'})
    t = diff.call("POST", "auth/token/create", {"policies": [p], "no_default_policy": True})
    diff.bind("t", t, "auth", "client_token")
    d = diff.call("GET", "sys/in-flight-req", token=V("t"), compare=False)
    assert d.b.status_code == d.c.status_code == 200


def test_sanitized_configuration(diff):
    d = diff.call(
        "GET",
        "sys/config/state/sanitized",
        only=["data.enable_ui", "data.storage.type", "data.storage.disable_clustering", "data.seals", "data.raw_storage_endpoint"],
    )
    # Coffer shows Vault's keys only (those it has a setting for).
    extra = set(d.cj["data"]) - set(d.bj["data"])
    assert not extra, extra
    lst = d.cj["data"]["listeners"][0]
    assert lst["type"] == d.bj["data"]["listeners"][0]["type"] == "tcp"
    assert lst["config"]["tls_disable"] is True
    p = uid("cfg")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": 'path "sys/config/state/sanitized" { capabilities = ["read"] }'})
    t = diff.call("POST", "auth/token/create", {"policies": [p], "no_default_policy": True})
    diff.bind("t", t, "auth", "client_token")
    diff.call("GET", "sys/config/state/sanitized", token=V("t"), label="sanitized config without sudo", only=[])


def test_loggers(diff):
    ign = ("warnings",)
    diff.call("GET", "sys/loggers/core", ignore=ign)
    diff.call("GET", f"sys/loggers/{uid('nope')}", ignore=ign, label="GET unknown logger")
    d = diff.call("GET", "sys/loggers", compare=False)
    common = {"audit", "core", "expiration", "identity", "policy", "quotas", "token"}
    for i, body in enumerate((d.bj, d.cj)):
        assert common <= set(body["data"]), (i, body)
        assert all(v == "info" for k, v in body["data"].items() if k in common), (i, body)
    try:
        diff.call("POST", "sys/loggers", {"level": "bogus"}, label="set all: bad level")
        diff.call("POST", "sys/loggers", {}, label="set all: no level")
        diff.call("POST", "sys/loggers/core", {"level": ""}, label="set one: empty level")
        diff.call("POST", "sys/loggers/core", {"level": " WARNING "})
        diff.call("GET", "sys/loggers/core", ignore=ign, label="GET core (warn)")
        diff.call("GET", "sys/loggers/audit", ignore=ign, label="GET audit (unchanged)")
        diff.call("POST", f"sys/loggers/{uid('nope')}", {"level": "debug"}, label="set unknown logger")
        diff.call("DELETE", f"sys/loggers/{uid('nope')}", label="revert unknown logger")
        diff.call("DELETE", "sys/loggers/core")
        diff.call("GET", "sys/loggers/core", ignore=ign, label="GET core (reverted)")
        diff.call("POST", "sys/loggers", {"level": "error"})
        diff.call("GET", "sys/loggers/token", ignore=ign, label="GET token (error)")
    finally:
        diff.call("DELETE", "sys/loggers")
    diff.call("GET", "sys/loggers/token", ignore=ign, label="GET token (reverted)")
