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


def test_jwt_wrap_format(diff):
    """X-Vault-Wrap-Format: jwt on both servers: the JWT is looked up,
    unwrapped once (in the header and in the body) and rewrapped; a JWT
    cut short is refused as an unknown token."""
    diff.call("POST", "secret/data/wrapjwt", {"data": {"a": "b"}})
    jwt = {"X-Vault-Wrap-TTL": "60", "X-Vault-Wrap-Format": "jwt"}
    w = diff.call("GET", "secret/data/wrapjwt", headers=jwt, label="jwt wrap a read")
    diff.bind("j", w, "wrap_info", "token")
    diff.call("POST", "sys/wrapping/lookup", {"token": V("j")}, label="jwt lookup")
    diff.call("POST", "sys/wrapping/unwrap", token=V("j"), label="jwt unwrap in the header")
    diff.call("POST", "sys/wrapping/unwrap", token=V("j"), label="jwt unwrap twice")
    w = diff.call("POST", "sys/wrapping/wrap", {"k": "v"}, headers=jwt, label="jwt wrap data")
    diff.bind("k", w, "wrap_info", "token")
    r = diff.call("POST", "sys/wrapping/rewrap", {"token": V("k")}, headers={"X-Vault-Wrap-Format": "jwt"},
                  label="jwt rewrap")
    diff.bind("k2", r, "wrap_info", "token")
    diff.call("POST", "sys/wrapping/unwrap", {"token": V("k2")}, label="jwt unwrap in the body")
    diff.call("POST", "sys/wrapping/unwrap", {"token": "eyJhbGciOiJFUzUxMiJ9.e30.AA"}, label="jwt forged")
