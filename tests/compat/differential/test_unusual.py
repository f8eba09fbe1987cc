"""Unusual requests: trailing slashes, LIST spellings, missing objects, bad
JSON, wrong methods, and tokens without the rights or already revoked."""

from __future__ import annotations

import pytest

from conftest import uid
from differential.harness import V


def test_trailing_slash_and_list_spellings(diff):
    diff.call("POST", "secret/data/ts/a", {"data": {"a": "1"}})
    diff.call("GET", "secret/data/ts/a/", label="read with trailing slash")
    diff.call("LIST", "secret/metadata/ts", label="LIST without slash")
    diff.call("LIST", "secret/metadata/ts/", label="LIST with slash")
    diff.call("GET", "secret/metadata/ts/", params={"list": "true"}, label="GET ?list=true with slash")
    diff.call("GET", "secret/metadata/ts", params={"list": "1"}, label="GET ?list=1")
    diff.call("GET", "sys/mounts/", only=["data.secret/"], label="sys/mounts/ with slash")


def test_missing_and_unknown(diff):
    diff.call("GET", f"{uid('nomount')}/x", label="no such mount")
    diff.call("GET", "sys/nonexistent", label="unknown sys path")
    diff.call("GET", "secret/nonsense/x", label="unknown kv2 sub-path")
    diff.call("GET", "auth/nomethod/login", label="unknown auth mount")


def test_bad_bodies(diff):
    hj = {"Content-Type": "application/json"}
    diff.call("POST", "secret/data/bad", raw_body="{", headers=hj, label="truncated JSON")
    diff.call("POST", "secret/data/bad", raw_body="[1,2]", headers=hj, label="JSON array body")
    diff.call("POST", "sys/policies/acl/x", raw_body="null", headers=hj, label="JSON null body")
    diff.call("POST", "auth/token/create", raw_body="not json", headers=hj, label="token create bad JSON")


@pytest.mark.xfail(reason="pending: PATCH without merge-patch content type: 400 vs 415 (http); token lookup fields: bound_cidrs/period/role, dev root token path (h/tokenlease)", strict=False)
def test_wrong_methods(diff):
    diff.call("DELETE", "sys/health", label="DELETE sys/health")
    diff.call("POST", "sys/seal-status", label="POST seal-status")
    diff.call("PATCH", "sys/mounts/secret", label="PATCH mount")
    diff.call("PUT", "auth/token/lookup-self", label="PUT lookup-self")
    diff.call("DELETE", "secret/config", label="DELETE kv config")


def test_least_privilege_and_revoked_tokens(diff):
    p = uid("lp")
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": 'path "secret/data/lp/*" { capabilities = ["read"] }\npath "secret/metadata/lp/*" { capabilities = ["list"] }'})
    diff.call("POST", "secret/data/lp/a", {"data": {"x": "y"}})
    t = diff.call("POST", "auth/token/create", {"policies": [p], "ttl": "1h"})
    diff.bind("t", t, "auth", "client_token")
    diff.call("GET", "secret/data/lp/a", token=V("t"), label="allowed read")
    diff.call("POST", "secret/data/lp/a", {"data": {"x": "z"}}, token=V("t"), label="denied write")
    diff.call("LIST", "secret/metadata/lp/", token=V("t"), label="allowed list")
    diff.call("GET", "secret/metadata/lp/a", token=V("t"), label="denied metadata read")
    diff.call("GET", "sys/mounts", token=V("t"), label="denied sys/mounts")
    diff.call("GET", "sys/policies/acl/default", token=V("t"), label="denied policy read")
    diff.call("POST", "auth/token/create", {}, token=V("t"), label="default policy cannot create tokens")
    diff.call("GET", "auth/token/lookup-self", token=V("t"), label="default policy lookup-self")
    diff.call("POST", "auth/token/revoke-self", token=V("t"))
    diff.call("GET", "secret/data/lp/a", token=V("t"), label="revoked token read")
    diff.call("GET", "secret/data/lp/a", token="bogus-token", label="unknown token read")
    diff.call("GET", "secret/data/lp/a", token=None, label="no token read")
    diff.call("GET", "secret/data/lp/a", token=None, headers={"Authorization": "Bearer " + "bogus"}, label="bearer unknown token")


def test_path_dots(diff):
    diff.call("GET", "secret/data/a/../b", label="dot-dot segment")
    diff.call("GET", "secret/data/a//b", label="empty segment")


def test_list_with_trailing_slash_honours_a_more_specific_deny(diff):
    # OpenBao before 2.6.0 let a trailing-slash LIST skip a more specific
    # deny rule under a broader list grant; the oracle (2.7.2) has the fix.
    p = uid("lsd")
    pol = 'path "secret/metadata/*" { capabilities = ["list"] }\npath "secret/metadata/private/*" { capabilities = ["deny"] }\n'
    diff.call("PUT", f"sys/policies/acl/{p}", {"policy": pol})
    diff.call("POST", "secret/data/private/k", {"data": {"x": "y"}})
    t = diff.call("POST", "auth/token/create", {"policies": [p], "no_default_policy": True, "ttl": "10m"}, compare=False)
    diff.bind("t", t, "auth", "client_token")
    diff.call("LIST", "secret/metadata/private/", token=V("t"), label="LIST denied subtree with slash")
    diff.call("LIST", "secret/metadata/private", token=V("t"), label="LIST denied subtree without slash")
    diff.call("GET", "secret/metadata/private/", params={"list": "true"}, token=V("t"), label="GET ?list=true denied subtree")
    diff.call("LIST", "secret/metadata/", token=V("t"), label="LIST allowed parent")
