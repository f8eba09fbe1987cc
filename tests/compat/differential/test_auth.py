"""userpass, approle and jwt auth methods, configured and used identically
on OpenBao and Coffer."""

from __future__ import annotations

import json
import secrets
import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import uid
from differential.harness import V


def enable(diff, kind: str) -> str:
    m = uid(kind)
    diff.call("POST", f"sys/auth/{m}", {"type": kind}, label=f"enable {kind}")
    return m


def test_userpass(diff):
    m = enable(diff, "userpass")
    pw = secrets.token_hex(12)
    diff.call("POST", f"auth/{m}/users/alice", {"password": pw, "token_policies": ["default", "p1"], "token_ttl": "1h"})
    diff.call("GET", f"auth/{m}/users/alice")
    diff.call("LIST", f"auth/{m}/users")
    lg = diff.call("POST", f"auth/{m}/login/alice", {"password": pw})
    diff.bind("t", lg, "auth", "client_token")
    diff.call("GET", "auth/token/lookup-self", token=V("t"), label="userpass token lookup")
    diff.call("POST", f"auth/{m}/users/alice/password", {"password": pw + "x"})
    diff.call("POST", f"auth/{m}/users/alice/policies", {"token_policies": "p2"})
    diff.call("GET", f"auth/{m}/users/alice", label="read after updates")
    diff.call("POST", f"auth/{m}/login/alice", {"password": "wrong"}, token=None, label="bad password")
    diff.call("POST", f"auth/{m}/login/bob", {"password": "x"}, token=None, label="unknown user")
    diff.call("POST", f"auth/{m}/login/alice", {}, token=None, label="no password")
    diff.call("DELETE", f"auth/{m}/users/alice")
    diff.call("GET", f"auth/{m}/users/alice", label="read deleted user")


def test_approle(diff):
    m = enable(diff, "approle")
    r = "app1"
    diff.call("POST", f"auth/{m}/role/{r}", {"token_policies": ["default"], "secret_id_ttl": "10m", "token_ttl": "20m", "secret_id_num_uses": 5})
    diff.call("GET", f"auth/{m}/role/{r}")
    diff.call("LIST", f"auth/{m}/role")
    rid = diff.call("GET", f"auth/{m}/role/{r}/role-id")
    diff.bind("rid", rid, "data", "role_id")
    sid = diff.call("POST", f"auth/{m}/role/{r}/secret-id", {"metadata": json.dumps({"env": "t"})})
    diff.bind("sid", sid, "data", "secret_id")
    diff.bind("sacc", sid, "data", "secret_id_accessor")
    diff.call("LIST", f"auth/{m}/role/{r}/secret-id", volatile=("data.keys",))
    diff.call("POST", f"auth/{m}/role/{r}/secret-id/lookup", {"secret_id": V("sid")})
    diff.call("POST", f"auth/{m}/role/{r}/secret-id-accessor/lookup", {"secret_id_accessor": V("sacc")})
    lg = diff.call("POST", f"auth/{m}/login", {"role_id": V("rid"), "secret_id": V("sid")}, token=None)
    diff.bind("t", lg, "auth", "client_token")
    diff.call("GET", "auth/token/lookup-self", token=V("t"), label="approle token lookup")
    diff.call("POST", f"auth/{m}/role/{r}/role-id", {"role_id": "custom-" + r})
    diff.call("GET", f"auth/{m}/role/{r}/role-id", label="custom role id", volatile=())
    diff.call("POST", f"auth/{m}/role/{r}/custom-secret-id", {"secret_id": "s-" + secrets.token_hex(8)}, volatile=("data.secret_id",))
    diff.call("POST", f"auth/{m}/role/{r}/secret-id/destroy", {"secret_id": V("sid")})
    diff.call("POST", f"auth/{m}/login", {"role_id": "custom-" + r, "secret_id": V("sid")}, token=None, label="login destroyed secret id")
    diff.call("POST", f"auth/{m}/login", {"role_id": "nope"}, token=None, label="login without secret id")
    diff.call("GET", f"auth/{m}/role/nope", label="read missing role")
    diff.call("POST", f"auth/{m}/tidy/secret-id")
    diff.call("DELETE", f"auth/{m}/role/{r}")


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_jwt(diff, rsa_key):
    m = enable(diff, "jwt")
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    iss, aud = "https://issuer.example.test", "https://coffer.example.test"
    diff.call("POST", f"auth/{m}/config", {"jwt_validation_pubkeys": [pem], "bound_issuer": iss})
    diff.call("GET", f"auth/{m}/config")
    diff.call(
        "POST",
        f"auth/{m}/role/ci",
        {
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [aud],
            "bound_claims": {"repo": "org/app"},
            "token_policies": ["default"],
            "token_ttl": "15m",
            "claim_mappings": {"repo": "repository"},
        },
    )
    diff.call("GET", f"auth/{m}/role/ci")
    diff.call("LIST", f"auth/{m}/role")
    now = int(time.time())
    claims = {"iss": iss, "aud": aud, "sub": "build-1", "repo": "org/app", "iat": now, "nbf": now - 5, "exp": now + 300}
    good = pyjwt.encode(claims, rsa_key, algorithm="RS256")
    lg = diff.call("POST", f"auth/{m}/login", {"role": "ci", "jwt": good}, token=None)
    diff.bind("t", lg, "auth", "client_token")
    diff.call("GET", "auth/token/lookup-self", token=V("t"), label="jwt token lookup")
    bad_aud = pyjwt.encode({**claims, "aud": "other"}, rsa_key, algorithm="RS256")
    diff.call("POST", f"auth/{m}/login", {"role": "ci", "jwt": bad_aud}, token=None, label="wrong audience")
    bad_claim = pyjwt.encode({**claims, "repo": "evil/app"}, rsa_key, algorithm="RS256")
    diff.call("POST", f"auth/{m}/login", {"role": "ci", "jwt": bad_claim}, token=None, label="wrong bound claim")
    expired = pyjwt.encode({**claims, "exp": now - 600, "nbf": now - 900, "iat": now - 900}, rsa_key, algorithm="RS256")
    diff.call("POST", f"auth/{m}/login", {"role": "ci", "jwt": expired}, token=None, label="expired jwt")
    diff.call("POST", f"auth/{m}/login", {"role": "ci", "jwt": "not.a.jwt"}, token=None, label="garbage jwt")
    diff.call("POST", f"auth/{m}/login", {"role": "nope", "jwt": good}, token=None, label="unknown role")
    diff.call("DELETE", f"auth/{m}/role/ci")


def test_userpass_token_strictly_bind_ip(diff):
    m = enable(diff, "userpass")
    pw = secrets.token_hex(12)
    diff.call("POST", f"auth/{m}/users/bound", {"password": pw, "token_strictly_bind_ip": True})
    diff.call("GET", f"auth/{m}/users/bound", label="read strictly bound user")
    lg = diff.call("POST", f"auth/{m}/login/bound", {"password": pw}, token=None, only=["auth.policies", "auth.renewable"])
    diff.bind("t", lg, "auth", "client_token")
    diff.call("GET", "auth/token/lookup-self", token=V("t"), only=["data.bound_cidrs"], label="lookup-self of strictly bound token")
    diff.call("GET", "secret/data/none", token=V("t"), label="strictly bound token used from the same address")
