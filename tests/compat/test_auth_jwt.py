"""JWT auth through hvac's ``client.auth.jwt``: configure, roles, and logins
with JWTs signed at run time by RSA, EC P-256 and Ed25519 keys generated here.

The module runs its own dev server so that its deliberate login failures do
not count against the shared server's per-address login rate limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import hvac
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hvac import exceptions

from conftest import gen_token, start_dev_server, uid

ISSUER = "https://token.actions.example.test"
AUDIENCE = "https://coffer.example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dev server of this module's own."""
    workdir = tmp_path_factory.mktemp("jwt")
    srv, token = start_dev_server(workdir)
    yield srv, token
    srv.stop()


class Key:
    """A key pair of one family and the JOSE algorithm it signs with."""

    def __init__(self, alg: str):
        self.alg = alg
        if alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def jwk(self, kid: str) -> dict:
        jwk = json.loads(pyjwt.get_algorithm_by_name(self.alg).to_jwk(self.private.public_key()))
        jwk["kid"] = kid
        return jwk

    def sign(self, claims: dict, kid: str | None = None) -> str:
        headers = {"kid": kid} if kid else None
        return pyjwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**extra) -> dict:
    now = int(time.time())
    c = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        # A distinct subject per token: repeated failures of one identity
        # would (rightly) lock it out.
        "sub": f"repo:acme/billing:ref:refs/heads/main:run:{uid('run')}",
        "repository": "acme/billing",
        "ref": "refs/heads/main",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def setup_mount(root: hvac.Client, keys: list[Key], policy_path: str) -> str:
    """A jwt mount trusting ``keys``, a role ``ci`` and its policy."""
    path = uid("jwt")
    root.sys.enable_auth_method("jwt", path=path)
    r = root.auth.jwt.configure(
        jwt_validation_pubkeys=[k.public_pem() for k in keys], bound_issuer=ISSUER, path=path
    )
    assert r.status_code == 204, r.text
    policy = uid("ci")
    root.sys.create_or_update_acl_policy(policy, f'path "secret/data/{policy_path}/*" {{ capabilities = ["read"] }}')
    root.auth.jwt.create_role(
        name="ci",
        role_type="jwt",
        user_claim="sub",
        allowed_redirect_uris=[],
        bound_audiences=[AUDIENCE],
        bound_claims_type="glob",
        bound_claims={"repository": "acme/billing", "ref": ["refs/heads/main", "refs/tags/v*"]},
        claim_mappings={"repository": "repo"},
        token_policies=[policy],
        token_ttl="15m",
        path=path,
    )
    return path


def test_configure_and_read_config(root):
    keys = [Key("RS256"), Key("ES256"), Key("EdDSA")]
    path = uid("jwt")
    root.sys.enable_auth_method("jwt", path=path)
    root.auth.jwt.configure(
        jwt_validation_pubkeys=[k.public_pem() for k in keys],
        bound_issuer=ISSUER,
        jwt_supported_algs=["RS256", "ES256", "EdDSA"],
        default_role="ci",
        path=path,
    )
    cfg = root.auth.jwt.read_config(path=path)["data"]
    assert [p.strip() for p in cfg["jwt_validation_pubkeys"]] == [k.public_pem().strip() for k in keys]
    assert cfg["bound_issuer"] == ISSUER
    assert cfg["default_role"] == "ci"
    assert cfg["jwt_supported_algs"] == ["RS256", "ES256", "EdDSA"]
    assert cfg["oidc_discovery_url"] == "" and cfg["jwks_url"] == ""
    assert "oidc_client_secret" not in cfg


@pytest.mark.parametrize(
    "field,value",
    [
        ("oidc_discovery_url", "https://accounts.example.test"),
        ("jwks_url", "https://issuer.example.test/keys"),
    ],
)
def test_configure_refuses_keys_fetched_over_the_network(root, field, value):
    path = uid("jwt")
    root.sys.enable_auth_method("jwt", path=path)
    with pytest.raises(exceptions.InvalidRequest) as e:
        root.auth.jwt.configure(path=path, **{field: value})
    assert field in e.value.errors[0]
    with pytest.raises(exceptions.InvalidRequest) as e:
        root.auth.jwt.configure(path=path, jwt_validation_pubkeys=["not a key"])
    assert e.value.errors[0].startswith("error parsing public key")
    with pytest.raises(exceptions.InvalidRequest) as e:
        root.auth.jwt.configure(path=path, jwt_validation_pubkeys=[Key("ES256").public_pem()], jwt_supported_algs=["HS256"])
    assert e.value.errors[0].startswith("invalid jwt_supported_algs")


def test_role_create_read_list_delete(root):
    path = setup_mount(root, [Key("RS256")], "billing")
    role = root.auth.jwt.read_role("ci", path=path)["data"]
    assert role["role_type"] == "jwt"
    assert role["user_claim"] == "sub"
    assert role["bound_audiences"] == [AUDIENCE]
    assert role["bound_claims_type"] == "glob"
    assert role["bound_claims"]["ref"] == ["refs/heads/main", "refs/tags/v*"]
    assert role["claim_mappings"] == {"repository": "repo"}
    assert role["token_ttl"] == 900
    assert role["clock_skew_leeway"] == 0 and role["expiration_leeway"] == 0

    root.auth.jwt.create_role(name="deploy", user_claim="sub", allowed_redirect_uris=[], bound_subject="x", path=path)
    assert root.auth.jwt.list_roles(path=path)["data"]["keys"] == ["ci", "deploy"]
    root.auth.jwt.delete_role("deploy", path=path)
    assert root.auth.jwt.list_roles(path=path)["data"]["keys"] == ["ci"]
    with pytest.raises(exceptions.InvalidPath):
        root.auth.jwt.read_role("deploy", path=path)

    with pytest.raises(exceptions.InvalidRequest) as e:
        root.auth.jwt.create_role(name="x", user_claim="sub", allowed_redirect_uris=[], path=path)
    assert e.value.errors == ["must have at least one bound constraint when creating/updating a role"]
    with pytest.raises(exceptions.InvalidRequest) as e:
        root.auth.jwt.create_role(
            name="x", user_claim="sub", role_type="oidc", allowed_redirect_uris=["http://localhost:8250/oidc/callback"], path=path
        )
    assert "not supported" in e.value.errors[0]


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_jwt_login_reads_only_allowed_paths(root, anon, alg):
    key = Key(alg)
    area = uid("billing")
    path = setup_mount(root, [key], area)
    root.secrets.kv.v2.create_or_update_secret(f"{area}/db", {"password": gen_token()})
    root.secrets.kv.v2.create_or_update_secret(f"{uid('payroll')}/db", {"password": gen_token()})

    resp = anon.auth.jwt.jwt_login(role="ci", jwt=key.sign(claims()), path=path)
    auth = resp["auth"]
    assert auth["client_token"] and anon.token == auth["client_token"]
    assert "default" in auth["policies"]
    assert auth["metadata"] == {"role": "ci", "repo": "acme/billing"}
    assert auth["lease_duration"] == 900

    got = anon.secrets.kv.v2.read_secret_version(f"{area}/db", raise_on_deleted_version=True)
    assert "password" in got["data"]["data"]
    with pytest.raises(exceptions.Forbidden):
        anon.secrets.kv.v2.read_secret_version(f"{uid('payroll')}/db", raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        anon.secrets.kv.v2.create_or_update_secret(f"{area}/db", {"password": "x"})
    with pytest.raises(exceptions.Forbidden):
        anon.auth.jwt.read_config(path=path)


def refused(anon: hvac.Client, path: str, token: str) -> str:
    with pytest.raises(exceptions.InvalidRequest) as e:
        anon.auth.jwt.jwt_login(role="ci", jwt=token, path=path, use_token=False)
    assert len(e.value.errors) == 1
    message = e.value.errors[0]
    assert token.split(".")[1][:16] not in message
    return message


def test_jwt_login_refusals(root, anon):
    key = Key("ES256")
    path = setup_mount(root, [key], "anything")
    now = int(time.time())

    assert (
        refused(anon, path, key.sign(claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600)))
        == "error validating token: invalid expiration time (exp) claim: token is expired"
    )
    assert (
        refused(anon, path, key.sign(claims(nbf=now + 3600, iat=None, exp=now + 7200)))
        == "error validating token: invalid not before (nbf) claim: token not yet valid"
    )
    assert refused(anon, path, key.sign(claims(iss="https://evil.example.test"))) == (
        "error validating token: invalid issuer (iss) claim"
    )
    assert refused(anon, path, key.sign(claims(aud="https://other.example.test"))).startswith(
        "error validating token: invalid audience (aud) claim"
    )
    assert refused(anon, path, key.sign(claims(ref="refs/heads/feature"))) == (
        'error validating claims: claim "ref" does not match any associated bound claim values'
    )
    # Glob: any v* tag is allowed.
    anon.auth.jwt.jwt_login(role="ci", jwt=key.sign(claims(ref="refs/tags/v1.2.3")), path=path, use_token=False)

    bad_sig = "error validating token: error verifying token signature: no known key successfully validated the token signature"
    assert refused(anon, path, Key("ES256").sign(claims())) == bad_sig
    good = key.sign(claims(repository="acme/other"))
    head, _, sig = good.split(".")
    tampered = f"{head}.{b64(json.dumps(claims()).encode())}.{sig}"
    assert refused(anon, path, tampered) == bad_sig

    body = b64(json.dumps(claims()).encode())
    unsigned = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{body}."
    assert "failed to parse JWT" in refused(anon, path, unsigned)
    # HS256 keyed with the trusted public key: the classic algorithm confusion.
    h = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{body}"
    mac = hmac.new(key.public_pem().encode(), h.encode(), hashlib.sha256).digest()
    assert refused(anon, path, f"{h}.{b64(mac)}").startswith("error validating token: invalid algorithm (alg) header")


def test_inline_jwks_with_key_ids(root, anon):
    """A JWKS given inline (Coffer's `jwks` field) selects keys by `kid`."""
    signer, other = Key("EdDSA"), Key("RS256")
    path = uid("jwt")
    root.sys.enable_auth_method("jwt", path=path)
    r = root.adapter.post(
        f"/v1/auth/{path}/config",
        json={"jwks": {"keys": [signer.jwk("k1"), other.jwk("k2")]}, "bound_issuer": ISSUER},
    )
    assert r.status_code == 204, r.text
    assert root.auth.jwt.read_config(path=path)["data"]["jwks"]["keys"][0]["kid"] == "k1"
    root.auth.jwt.create_role(
        name="ci", user_claim="repository", allowed_redirect_uris=[], bound_audiences=AUDIENCE, path=path
    )
    auth = anon.auth.jwt.jwt_login(role="ci", jwt=signer.sign(claims(), kid="k1"), path=path, use_token=False)["auth"]
    assert auth["metadata"]["role"] == "ci"
    bad_sig = "error validating token: error verifying token signature: no known key successfully validated the token signature"
    assert refused(anon, path, signer.sign(claims(), kid="unknown")) == bad_sig
    assert refused(anon, path, signer.sign(claims(), kid="k2")) == bad_sig
