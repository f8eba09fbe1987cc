"""Response wrapping: wrap, lookup, unwrap, rewrap, wrap a read."""

from __future__ import annotations

import pytest

from differential.harness import V



def test_wrap_lookup_unwrap(diff):
    w = diff.call("POST", "sys/wrapping/wrap", {"k": "v"}, headers={"X-Vault-Wrap-TTL": "5m"})
    diff.bind("w", w, "wrap_info", "token")
    diff.call("POST", "sys/wrapping/lookup", {"token": V("w")})
    r = diff.call("POST", "sys/wrapping/rewrap", {"token": V("w")})
    diff.bind("w2", r, "wrap_info", "token")
    diff.call("POST", "sys/wrapping/unwrap", {"token": V("w")}, label="unwrap rewrapped-away token")
    diff.call("POST", "sys/wrapping/unwrap", token=V("w2"))
    diff.call("POST", "sys/wrapping/unwrap", {"token": V("w2")}, label="unwrap twice")


def test_wrap_a_read(diff):
    diff.call("POST", "secret/data/wrapme", {"data": {"a": "b"}})
    w = diff.call("GET", "secret/data/wrapme", headers={"X-Vault-Wrap-TTL": "60"})
    diff.bind("w", w, "wrap_info", "token")
    diff.call("POST", "sys/wrapping/unwrap", {"token": V("w")})
    diff.call("GET", "secret/data/wrapme", headers={"X-Vault-Wrap-TTL": "junk"}, label="bad wrap ttl")


def test_cubbyhole(diff):
    diff.call("POST", "cubbyhole/x", {"a": "b"})
    diff.call("GET", "cubbyhole/x")
    diff.call("LIST", "cubbyhole/")
    diff.call("DELETE", "cubbyhole/x")
