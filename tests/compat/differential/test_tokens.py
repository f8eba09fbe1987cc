"""The token store: create, lookup, renew, revoke, accessors and roles."""

from __future__ import annotations

import pytest

from conftest import uid
from differential.harness import V



@pytest.fixture
def child(diff):
    t = diff.call("POST", "auth/token/create", {"policies": ["default"], "ttl": "1h", "meta": {"app": "x"}, "display_name": "kid", "renewable": True})
    diff.bind("tok", t, "auth", "client_token")
    diff.bind("acc", t, "auth", "accessor")
    return t


@pytest.mark.xfail(reason="pending: token lookup fields: bound_cidrs/period/role, dev root token path (h/tokenlease)", strict=False)
def test_create_and_lookup(diff, child):
    diff.call("GET", "auth/token/lookup-self", token=V("tok"))
    diff.call("POST", "auth/token/lookup", {"token": V("tok")})
    diff.call("POST", "auth/token/lookup-accessor", {"accessor": V("acc")})
    diff.call("GET", "auth/token/lookup-self", label="root lookup-self")


def test_create_options(diff):
    diff.call("POST", "auth/token/create", {"policies": ["default"], "no_parent": True, "ttl": "10m"}, label="orphan via no_parent")
    diff.call("POST", "auth/token/create-orphan", {"ttl": "10m"})
    diff.call("POST", "auth/token/create", {"num_uses": 3, "explicit_max_ttl": "2h", "period": "30m"}, label="periodic")
    diff.call("POST", "auth/token/create", {"ttl": "notaduration"}, label="bad ttl")
    diff.call("POST", "auth/token/create", {"type": "service", "ttl": "5m"}, label="service type")


def test_batch_token(diff):
    t = diff.call("POST", "auth/token/create", {"type": "batch", "policies": ["default"], "ttl": "10m", "no_parent": True})
    diff.bind("b", t, "auth", "client_token")
    diff.call("GET", "auth/token/lookup-self", token=V("b"))


@pytest.mark.xfail(reason="pending: token lookup fields: bound_cidrs/period/role, dev root token path (h/tokenlease); renew-accessor increment", strict=False)
def test_renew_and_revoke(diff, child):
    diff.call("POST", "auth/token/renew-self", {"increment": "30m"}, token=V("tok"))
    diff.call("POST", "auth/token/renew", {"token": V("tok"), "increment": "20m"})
    diff.call("POST", "auth/token/renew-accessor", {"accessor": V("acc")})
    diff.call("POST", "auth/token/revoke-accessor", {"accessor": V("acc")})
    diff.call("GET", "auth/token/lookup-self", token=V("tok"), label="lookup-self revoked")
    diff.call("POST", "auth/token/lookup", {"token": V("tok")}, label="lookup revoked")
    diff.call("POST", "auth/token/revoke", {"token": V("tok")}, label="revoke revoked")
    diff.call("POST", "auth/token/lookup", {"token": "nope"}, label="lookup unknown")
    diff.call("POST", "auth/token/lookup-accessor", {"accessor": "nope"}, label="lookup unknown accessor")


def test_revoke_self_and_orphan(diff):
    p = diff.call("POST", "auth/token/create", {"ttl": "1h"}, label="parent")
    diff.bind("p", p, "auth", "client_token")
    c = diff.call("POST", "auth/token/create", {"ttl": "1h"}, token=V("p"), label="child of parent")
    diff.bind("c", c, "auth", "client_token")
    diff.call("POST", "auth/token/revoke-orphan", {"token": V("p")})
    diff.call("GET", "auth/token/lookup-self", token=V("c"), label="orphaned child lookup")
    diff.call("POST", "auth/token/revoke-self", token=V("c"))
    diff.call("GET", "auth/token/lookup-self", token=V("c"), label="revoked child lookup")


def test_accessors_list(diff):
    d = diff.call("LIST", "auth/token/accessors", compare=False)
    diff.compare(d, "LIST auth/token/accessors", only=["data"], volatile=("data.keys",))


@pytest.mark.xfail(reason="pending: token role read fields and warnings (h/tokenlease)", strict=False)
def test_roles(diff):
    r = uid("role")
    diff.call("POST", f"auth/token/roles/{r}", {"allowed_policies": ["default", "p1"], "orphan": True, "token_period": "1h", "renewable": True})
    diff.call("GET", f"auth/token/roles/{r}")
    d = diff.call("LIST", "auth/token/roles", compare=False)
    for body in (d.bj, d.cj):
        assert r in body["data"]["keys"], body
    t = diff.call("POST", f"auth/token/create/{r}", {"policies": ["p1"]})
    diff.bind("rt", t, "auth", "client_token")
    diff.call("GET", "auth/token/lookup-self", token=V("rt"), label="role token lookup")
    diff.call("POST", f"auth/token/create/{r}", {"policies": ["p2"]}, label="role disallowed policy")
    diff.call("DELETE", f"auth/token/roles/{r}")
    diff.call("GET", f"auth/token/roles/{r}", label="read deleted role")
    diff.call("POST", f"auth/token/create/{uid('none')}", {}, label="create with missing role")


@pytest.mark.xfail(reason="pending: tidy 202 (h/sysapi)", strict=False)
def test_tidy(diff):
    diff.call("POST", "auth/token/tidy")
