"""sys/: health, seal-status, mounts, auth, policies, capabilities,
key-status and leases, each asked of OpenBao and Coffer alike."""

from __future__ import annotations

import pytest

from conftest import uid
from differential.harness import V



def test_health_and_seal_status(diff):
    diff.call("GET", "sys/health", volatile=("version",))
    diff.call("HEAD", "sys/health")
    diff.call("GET", "sys/health", params={"standbyok": "true", "sealedcode": "503"}, volatile=("version",))
    diff.call("GET", "sys/seal-status", token=None, volatile=("version",))
    diff.call("GET", "sys/leader", token=None)


def test_mounts_enable_read_tune_disable(diff):
    m = uid("kvm")
    diff.call("POST", f"sys/mounts/{m}", {"type": "kv", "options": {"version": "2"}, "description": "d1"})
    diff.call("GET", "sys/mounts", only=[f"data.{m}/", "data.secret/", f"{m}/"])
    diff.call("GET", f"sys/mounts/{m}")
    diff.call("GET", f"sys/mounts/{m}/tune")
    diff.call("POST", f"sys/mounts/{m}/tune", {"default_lease_ttl": "1h", "max_lease_ttl": "2h", "description": "d2"})
    diff.call("GET", f"sys/mounts/{m}/tune")
    diff.call("POST", f"sys/mounts/{m}", {"type": "kv"}, label="enable twice")
    diff.call("POST", f"sys/mounts/{uid('bad')}", {"type": "no-such-engine"}, label="enable unknown type")
    diff.call("DELETE", f"sys/mounts/{m}")
    diff.call("GET", f"sys/mounts/{m}", label="read disabled mount")
    diff.call("DELETE", f"sys/mounts/{m}", label="disable twice")


def test_auth_enable_list_tune_disable(diff):
    a = uid("up")
    diff.call("POST", f"sys/auth/{a}", {"type": "userpass", "description": "u"})
    diff.call("GET", "sys/auth", only=[f"data.{a}/", "data.token/", f"{a}/", "token/"])
    diff.call("GET", f"sys/auth/{a}")
    diff.call("GET", f"sys/auth/{a}/tune")
    diff.call("POST", f"sys/auth/{a}/tune", {"default_lease_ttl": "30m"})
    diff.call("GET", f"sys/auth/{a}/tune")
    diff.call("DELETE", f"sys/auth/{a}")
    diff.call("GET", f"sys/auth/{a}", label="read disabled auth")


def test_policies_acl(diff):
    p = uid("pol")
    rules = 'path "secret/data/x" { capabilities = ["read", "list"] }\n'
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": rules})
    diff.call("GET", f"sys/policies/acl/{p}")
    diff.call("LIST", "sys/policies/acl", only=["data.keys"], label="LIST sys/policies/acl (own)", compare=False)
    d = diff.call("LIST", "sys/policies/acl", compare=False)
    for i, body in enumerate((d.bj, d.cj)):
        assert p in body["data"]["keys"], (i, body)
    diff.call("GET", "sys/policies/acl/default", volatile=())
    diff.call("GET", "sys/policy/root")
    diff.call("GET", f"sys/policy/{p}")
    diff.call("PUT", f"sys/policy/{p}", {"policy": rules + 'path "a/*" { capabilities = ["deny"] }\n'})
    diff.call("GET", f"sys/policy/{p}")
    diff.call("PUT", f"sys/policies/acl/{uid('bad')}", {"policy": "path {"}, label="unparseable policy")
    diff.call("PUT", f"sys/policies/acl/{uid('bad')}", {"policy": 'path "x" { capabilities = ["fly"] }'}, label="bad capability")
    diff.call("PUT", "sys/policies/acl/root", {"policy": rules}, label="write root policy")
    diff.call("DELETE", "sys/policies/acl/default", label="delete default policy")
    diff.call("DELETE", f"sys/policies/acl/{p}")
    diff.call("GET", f"sys/policies/acl/{p}", label="read deleted policy")
    diff.call("DELETE", f"sys/policies/acl/{p}", label="delete missing policy")


def test_capabilities(diff):
    p = uid("cap")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": 'path "secret/data/c/*" { capabilities = ["read", "update"] }\npath "secret/metadata/c/+" { capabilities = ["list"] }'})
    t = diff.call("POST", "auth/token/create", {"policies": [p], "no_default_policy": True})
    diff.bind("t", t, "auth", "client_token")
    diff.bind("acc", t, "auth", "accessor")
    diff.call("POST", "sys/capabilities", {"token": V("t"), "paths": ["secret/data/c/x", "secret/metadata/c/y", "other"]})
    diff.call("POST", "sys/capabilities", {"token": V("t"), "path": "secret/data/c/x"}, label="capabilities single path")
    diff.call("POST", "sys/capabilities-self", {"paths": ["secret/data/c/x", "nope"]}, token=V("t"))
    diff.call("POST", "sys/capabilities-accessor", {"accessor": V("acc"), "paths": ["secret/data/c/x"]})
    diff.call("POST", "sys/capabilities-self", {"paths": ["anything"]}, label="root capabilities-self")
    diff.call("POST", "sys/capabilities", {"token": "not-a-token", "paths": ["x"]}, label="capabilities unknown token")


def test_key_status(diff):
    # The count of encryptions depends on what each server wrote since it
    # started; that it is a number right after start (no crash margin) is
    # what matters.
    d = diff.call("GET", "sys/key-status", volatile=("encryptions", "data.encryptions"))
    assert d.cj["encryptions"] < 100_000, d.cj


def test_leases_lookup_list(diff):
    diff.call("LIST", "sys/leases/lookup/", label="LIST leases root")
    diff.call("POST", "sys/leases/lookup", {"lease_id": "secret/nope/abc"}, label="lookup unknown lease")
    diff.call("POST", "sys/leases/renew", {"lease_id": "secret/nope/abc"}, label="renew unknown lease")
    diff.call("POST", "sys/leases/revoke", {"lease_id": "secret/nope/abc"}, label="revoke unknown lease")
    diff.call("POST", "sys/leases/revoke-prefix/nothing-here")


def test_policy_check_and_set(diff):
    p = uid("pcas")
    rules = 'path "a/*" { capabilities = ["read"] }\n'
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": rules, "cas": 1}, label="create with cas 1")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": rules, "cas": 0}, label="create with cas 0")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": rules, "cas": 0}, label="stale cas")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": rules, "cas": 1, "cas_required": True}, label="require cas")
    diff.call("GET", f"sys/policies/acl/{p}", label="read cas-required policy", ignore=("data.allow_*",))
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": rules}, label="write without required cas")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": rules, "cas": 2}, label="write with required cas")
    diff.call("GET", f"sys/policies/acl/{p}", label="read after reset", ignore=("data.allow_*",))
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": rules}, label="write after reset")
    diff.call("GET", f"sys/policy/{p}", label="legacy read", ignore=("allow_*", "data.allow_*"))


def test_introspection_endpoints(diff):
    """resultant-acl, the token and entity counters, locked users and the
    key rotation configuration under Vault's older path."""
    p = uid("racl")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": 'path "secret/data/r/*" { capabilities = ["read", "list"] }\npath "secret/data/r/x" { capabilities = ["deny"] }\npath "secret/+/plus" { capabilities = ["read"] }'})
    t = diff.call("POST", "auth/token/create", {"policies": [p]})
    diff.bind("t", t, "auth", "client_token")
    diff.call("GET", "sys/internal/ui/resultant-acl", token=V("t"), label="resultant-acl of a policy token")
    diff.call("GET", "sys/internal/ui/resultant-acl", label="resultant-acl of root")
    diff.call("GET", "sys/internal/ui/resultant-acl", token=None, label="resultant-acl without a token")
    # How many tokens each server holds differs by construction: the shape is compared.
    diff.call("GET", "sys/internal/counters/tokens", volatile=("data.counters.service_tokens.total",))
    diff.call("GET", "sys/internal/counters/entities", volatile=("data.counters.entities.total",))
    diff.call("GET", "sys/locked-users")
    diff.call("GET", "sys/rotate/config", volatile=("data.max_operations",))


def test_audited_request_headers(diff):
    h = uid("X-Audit-Me")
    diff.call("POST", f"sys/config/auditing/request-headers/{h}", {"hmac": True})
    diff.call("GET", f"sys/config/auditing/request-headers/{h.lower()}", label="read header (lower case)")
    diff.call("GET", f"sys/config/auditing/request-headers/{h}", label="read header (as written)")
    diff.call("GET", "sys/config/auditing/request-headers", only=[f"data.headers.{h.lower()}", "data.headers"], ignore=("data.headers.*",), label="list headers")
    diff.call("GET", "sys/config/auditing/request-headers/x-not-configured", label="read unknown header")
    diff.call("DELETE", f"sys/config/auditing/request-headers/{h}")
    diff.call("GET", f"sys/config/auditing/request-headers/{h}", label="read deleted header")


def test_plugin_catalog(diff):
    # Each server lists its own built-ins: the shapes are compared, and the
    # entries both ship.
    diff.call("GET", "sys/plugins/catalog", volatile=("data.auth*", "data.secret*", "data.database*", "data.detailed*"))
    diff.call("GET", "sys/plugins/catalog/secret/kv", volatile=("data.version",), ignore=("data.declarative", "data.oci"))
    diff.call("GET", "sys/plugins/catalog/auth/userpass", volatile=("data.version",), ignore=("data.declarative", "data.oci"))
    diff.call("GET", "sys/plugins/catalog/secret/no-such-plugin", label="unknown plugin")
