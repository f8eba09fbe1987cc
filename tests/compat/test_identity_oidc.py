"""Vault's identity tokens (``identity/oidc/*``) through hvac's
``client.secrets.identity``: named keys, roles, signed ID tokens verified
with PyJWT against the published key set, introspection, rotation, and the
unauthenticated (but audited) discovery endpoints.

Every test runs against a Coffer dev server and against OpenBao's
(``bao server -dev``) with the same requests, so the two are held to the
same answers; where they differ on purpose the test says why
(``COFFER`` branches, and ARCHITECTURE.md's identity tokens section).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import hvac
import jwt
import pytest
import requests

from conftest import bao_bin, free_port, gen_token, start_server, uid

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"]


class Side:
    """One server under test: its address, root token and audit directory."""

    def __init__(self, name: str, addr: str, token: str, workdir, stop):
        self.name, self.addr, self.token, self.workdir, self._stop = name, addr, token, workdir, stop

    @property
    def coffer(self) -> bool:
        return self.name == "coffer"

    def client(self, token: str | None = ...) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.token if token is ... else token, timeout=30)

    def raw(self, method: str, path: str, token: str | None = ..., **kw) -> requests.Response:
        tok = self.token if token is ... else token
        headers = {"X-Vault-Token": tok} if tok else {}
        return requests.request(method, f"{self.addr}/v1/{path}", headers=headers, timeout=30, **kw)


def _start_bao(workdir) -> Side:
    port = free_port()
    token = gen_token()
    log = open(workdir / "bao.log", "wb")
    proc = subprocess.Popen(
        [str(bao_bin()), "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
        cwd=workdir,
        env={"HOME": str(workdir), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{addr}/v1/sys/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("bao did not start")

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    return Side("openbao", addr, token, workdir, stop)


def _start_coffer(workdir) -> Side:
    port = free_port()
    token = gen_token()
    srv = start_server(
        [
            "server",
            "--dev",
            "--dev-listen-address",
            f"127.0.0.1:{port}",
            "--dev-root-token-id",
            token,
            "--dev-audit-dir",
            str(workdir),
        ],
        workdir,
        port,
    )
    return Side("coffer", srv.addr, token, workdir, srv.stop)


@pytest.fixture(scope="module", params=["coffer", "openbao"])
def side(request, tmp_path_factory):
    """A fresh dev server of each kind, for this module alone."""
    workdir = tmp_path_factory.mktemp(request.param)
    if request.param == "openbao" and not bao_bin().exists():
        pytest.skip("bao not installed")
    s = _start_coffer(workdir) if request.param == "coffer" else _start_bao(workdir)
    yield s
    s._stop()


@pytest.fixture(scope="module")
def user(side):
    """A userpass user whose token has an entity and may mint from the
    roles named ``mint-*`` only; (client, entity id)."""
    root = side.client()
    mount = uid("up")
    root.sys.enable_auth_method("userpass", path=mount)
    policy = 'path "identity/oidc/token/mint-*" { capabilities = ["read"] }'
    root.sys.create_or_update_policy(name="oidc-mint", policy=policy)
    password = "pw-" + secrets.token_hex(12)
    root.auth.userpass.create_or_update_user("alice", password, policies=["oidc-mint"], mount_point=mount)
    c = side.client(None)
    login = c.auth.userpass.login("alice", password, mount_point=mount)
    eid = login["auth"]["entity_id"]
    r = side.raw("POST", f"identity/entity/id/{eid}", json={"metadata": {"team": "billing"}})
    assert r.status_code in (200, 204), r.text
    return c, eid


def _jwks(side) -> dict:
    r = side.raw("GET", "identity/oidc/.well-known/keys", token=None)
    assert r.status_code == 200, r.text
    return r.json()


def _verify(token: str, jwks: dict, audience: str, issuer: str) -> dict:
    """PyJWT's check of the token against the published key of its kid."""
    kid = jwt.get_unverified_header(token)["kid"]
    match = [k for k in jwks["keys"] if k["kid"] == kid]
    assert match, f"kid {kid} not published"
    key = jwt.PyJWK(match[0])
    return jwt.decode(token, key=key, algorithms=[match[0]["alg"]], audience=audience, issuer=issuer)


def test_tokens_of_every_algorithm_verify_with_the_published_keys(side, user):
    root = side.client()
    ident = root.secrets.identity
    c, eid = user
    issuer = ident.read_well_known_configurations()["issuer"]
    assert issuer == f"{side.addr}/v1/identity/oidc"
    # The closing braces are spaced: "}}}" would read as a template's end
    # (unbalanced, in Vault's templating and here).
    template = '{"team": {{identity.entity.metadata.team}}, "who": {"groups": {{identity.entity.groups.names}} } }'
    for alg in ALGORITHMS:
        key = uid("k")
        ident.create_named_key(key, algorithm=alg, allowed_client_ids=["*"], rotation_period="1h", verification_ttl="2h")
        assert ident.read_named_key(key)["data"] == {
            "algorithm": alg,
            "allowed_client_ids": ["*"],
            "rotation_period": 3600,
            "verification_ttl": 7200,
        }
        role = f"mint-{uid('r')}"
        ident.create_or_update_role(role, key=key, template=template, ttl="30m")
        read = ident.read_role(role)["data"]
        assert (read["key"], read["ttl"], read["template"]) == (key, 1800, template)
        minted = c.secrets.identity.generate_signed_id_token(role)["data"]
        assert minted["client_id"] == read["client_id"] and minted["ttl"] == 1800
        claims = _verify(minted["token"], _jwks(side), read["client_id"], issuer)
        assert claims["sub"] == eid and claims["namespace"] == "root"
        assert claims["exp"] - claims["iat"] == 1800
        assert claims["team"] == "billing" and claims["who"] == {"groups": None}
        header = jwt.get_unverified_header(minted["token"])
        assert header["alg"] == alg
        assert ident.introspect_signed_id_token(minted["token"], client_id=read["client_id"]) == {"active": True}
        wrong = ident.introspect_signed_id_token(minted["token"], client_id="someone-else")
        assert wrong["active"] is False and "invalid audience claim (aud)" in wrong["error"]
    assert side.raw("GET", "identity/oidc/.well-known/openid-configuration", token=None).json()[
        "id_token_signing_alg_values_supported"
    ] == ALGORITHMS


def test_rotation_keeps_old_tokens_verifiable_until_verification_ttl(side, user):
    ident = side.client().secrets.identity
    c, _ = user
    key, role = uid("k"), f"mint-{uid('r')}"
    ident.create_named_key(key, algorithm="ES256", allowed_client_ids=["*"], verification_ttl="24h")
    ident.create_or_update_role(role, key=key, ttl="1h")
    cid = ident.read_role(role)["data"]["client_id"]
    issuer = ident.read_well_known_configurations()["issuer"]
    old = c.secrets.identity.generate_signed_id_token(role)["data"]["token"]
    # hvac's rotate_named_key posts to the key itself, not .../rotate: raw call.
    r = side.raw("POST", f"identity/oidc/key/{key}/rotate", json={"verification_ttl": "1h"})
    assert r.status_code == 204, r.text
    new = c.secrets.identity.generate_signed_id_token(role)["data"]["token"]
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    jwks = _jwks(side)
    for t in (old, new):
        _verify(t, jwks, cid, issuer)
        assert ident.introspect_signed_id_token(t) == {"active": True}
    # verification_ttl 0: the replaced public key goes at once.
    r = side.raw("POST", f"identity/oidc/key/{key}/rotate", json={"verification_ttl": 0})
    assert r.status_code == 204, r.text
    kids = {k["kid"] for k in _jwks(side)["keys"]}
    assert jwt.get_unverified_header(new)["kid"] not in kids
    assert jwt.get_unverified_header(old)["kid"] in kids
    gone = ident.introspect_signed_id_token(new)
    assert gone == {"active": False, "error": "unable to validate the token signature"}
    assert side.raw("POST", "identity/oidc/key/nope/rotate", json={}).status_code == 400


def test_refusals(side, user):
    root = side.client()
    ident = root.secrets.identity
    c, _ = user
    key = uid("k")
    ident.create_named_key(key, allowed_client_ids=["only-this-one"])
    role = f"mint-{uid('r')}"
    ident.create_or_update_role(role, key=key)
    # The key does not allow the role's client id.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="does not list the client ID"):
        c.secrets.identity.generate_signed_id_token(role)
    # A key a role uses cannot go; nor can the default key.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="currently referenced by these roles"):
        ident.delete_named_key(key)
    with pytest.raises(hvac.exceptions.InvalidRequest, match='deletion of key "default" not allowed'):
        ident.delete_named_key("default")
    # The root token has no entity.
    ident.create_named_key(key, allowed_client_ids=["*"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no entity associated with the request's token"):
        ident.generate_signed_id_token(role)
    # A role outside the user's policy.
    other = uid("other")
    ident.create_or_update_role(other, key=key)
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.identity.generate_signed_id_token(other)
    with pytest.raises(hvac.exceptions.InvalidRequest, match='role "mint-nope" not found'):
        c.secrets.identity.generate_signed_id_token("mint-nope")
    # Key and role validation.
    for params, message in [
        ({"rotation_period": "30s"}, "rotation_period must be at least one minute"),
        ({"algorithm": "HS256"}, 'unknown signing algorithm "HS256"'),
    ]:
        with pytest.raises(hvac.exceptions.InvalidRequest, match=message):
            ident.create_named_key(uid("k"), **params)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="cannot find key"):
        ident.create_or_update_role(uid("r"), key="missing")
    with pytest.raises(hvac.exceptions.InvalidRequest, match='top level key "iss" not allowed'):
        ident.create_or_update_role(uid("r"), key=key, template='{"iss": 1}')
    assert "default" in ident.list_named_keys()["data"]["keys"]
    assert role in ident.list_roles()["data"]["keys"]
    ident.delete_role(role)
    ident.delete_role(other)


def test_config_and_the_issuer(side, user):
    ident = side.client().secrets.identity
    assert ident.read_tokens_backend_configuration()["data"] == {"issuer": ""}
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid issuer"):
        ident.configure_tokens_backend(issuer="https://example.com/path")
    resp = ident.configure_tokens_backend(issuer="https://example.com:8200")
    assert resp["data"] is None and "issuer" in resp["warnings"][0]
    assert ident.read_tokens_backend_configuration()["data"] == {"issuer": "https://example.com:8200"}
    disc = ident.read_well_known_configurations()
    assert disc["issuer"] == "https://example.com:8200/v1/identity/oidc"
    assert disc["jwks_uri"] == "https://example.com:8200/v1/identity/oidc/.well-known/keys"
    ident.configure_tokens_backend(issuer="")
    assert ident.read_well_known_configurations()["issuer"] == f"{side.addr}/v1/identity/oidc"


def test_discovery_needs_no_token_and_is_audited_introspection_needs_one(side, user):
    root = side.client()
    name = uid("audit")
    log = side.workdir / f"{name}.log"
    # OpenBao 2.x enables audit devices only from its configuration file.
    if side.coffer:
        root.sys.enable_audit_device("file", options={"file_path": str(log)}, path=name)
    try:
        anon = side.client(None)
        disc = anon.secrets.identity.read_well_known_configurations()
        assert disc["response_types_supported"] == ["id_token"]
        assert disc["subject_types_supported"] == ["public"]
        assert "keys" in anon.secrets.identity.read_active_public_keys()
        r = side.raw("POST", "identity/oidc/introspect", token=None, json={"token": "x.y.z"})
        assert r.status_code == 403
        r = side.raw("POST", "identity/oidc/introspect", json={"token": "garbage"})
        assert r.status_code == 200
        body = r.json()
        assert body["active"] is False and body["error"].startswith("error parsing token: ")
        assert "request_id" not in body  # no envelope, as in Vault
    finally:
        if side.coffer:
            root.sys.disable_audit_device(name)
    if not side.coffer:
        return
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    paths = [e["request"]["path"] for e in entries if "request" in e]
    assert "identity/oidc/.well-known/openid-configuration" in paths
    assert "identity/oidc/.well-known/keys" in paths
