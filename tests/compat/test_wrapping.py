"""Response wrapping through hvac (``client.sys.wrap``/``unwrap``, ``wrap_ttl``
on AppRole SecretID generation) and the OpenBao CLI (``bao write -wrap-ttl``
then ``bao unwrap``) against Coffer.

The ``bao`` binary is taken from ``$BAO_BIN``, else ``PATH``, else the
virtualenv next to the running Python; the CLI test is skipped only when
none is found.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import hvac
import pytest
import requests
from hvac import exceptions

from conftest import start_dev_server, uid

INVALID = "wrapping token is not valid or does not exist"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dev server of this module's own, with AppRole enabled."""
    workdir = tmp_path_factory.mktemp("wrapping")
    srv, token = start_dev_server(workdir)
    c = hvac.Client(url=srv.addr, token=token, timeout=30)
    c.sys.enable_auth_method("approle")
    yield srv, token
    srv.stop()


def test_wrap_and_unwrap_arbitrary_data(root):
    payload = {"user": uid("u"), "pw": secrets.token_hex(12)}
    wrapped = root.sys.wrap(payload=payload, ttl="2m")
    info = wrapped["wrap_info"]
    assert wrapped["data"] is None
    assert info["ttl"] == 120
    assert info["creation_path"] == "sys/wrapping/wrap"
    out = root.sys.unwrap(token=info["token"])
    assert out["data"] == payload
    with pytest.raises(exceptions.InvalidRequest) as e:
        root.sys.unwrap(token=info["token"])
    assert INVALID in str(e.value)


def test_unwrap_with_the_wrapping_token_itself(server, root):
    srv, _ = server
    wrapped = root.sys.wrap(payload={"k": "v"}, ttl=60)
    c = hvac.Client(url=srv.addr, token=wrapped["wrap_info"]["token"], timeout=30)
    assert c.sys.unwrap()["data"] == {"k": "v"}
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.unwrap()


def test_lookup_needs_no_token_and_keeps_the_use(server, root):
    srv, _ = server
    info = root.sys.wrap(payload={"k": "v"}, ttl="90s")["wrap_info"]
    for _ in range(2):
        r = requests.post(f"{srv.addr}/v1/sys/wrapping/lookup", json={"token": info["token"]}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["creation_ttl"] == 90
    assert root.sys.unwrap(token=info["token"])["data"] == {"k": "v"}


def test_a_wrapped_kv_read(root):
    path = uid("wrapped")
    value = secrets.token_hex(10)
    root.secrets.kv.v2.create_or_update_secret(path, {"pw": value})
    r = root.adapter.get(f"/v1/secret/data/{path}", headers={"X-Vault-Wrap-TTL": "60s"})
    raw = r if isinstance(r, dict) else r.json()
    assert value not in json.dumps(raw)
    assert raw["wrap_info"]["creation_path"] == f"secret/data/{path}"
    out = root.sys.unwrap(token=raw["wrap_info"]["token"])
    assert out["data"]["data"]["pw"] == value


def test_approle_secret_id_with_wrap_ttl_logs_in(server, root):
    srv, _ = server
    role = uid("role").lower()
    root.auth.approle.create_or_update_approle(role, token_policies=["default"])
    wrapped = root.auth.approle.generate_secret_id(role, wrap_ttl="60s")
    info = wrapped["wrap_info"]
    assert wrapped["data"] is None
    assert info["creation_path"] == f"auth/approle/role/{role}/secret-id"
    assert info["wrapped_accessor"]
    unwrapped = root.sys.unwrap(token=info["token"])["data"]
    assert unwrapped["secret_id_accessor"] == info["wrapped_accessor"]
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    app = hvac.Client(url=srv.addr, timeout=30)
    login = app.auth.approle.login(role_id=role_id, secret_id=unwrapped["secret_id"])
    assert login["auth"]["client_token"]


def test_cubbyhole_is_per_token(server, root):
    srv, _ = server
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["cubbyhole/"]["type"] == "cubbyhole"
    mine = hvac.Client(url=srv.addr, token=root.auth.token.create(ttl="10m")["auth"]["client_token"], timeout=30)
    other = hvac.Client(url=srv.addr, token=root.auth.token.create(ttl="10m")["auth"]["client_token"], timeout=30)
    value = secrets.token_hex(8)
    mine.write("cubbyhole/note", v=value)
    assert mine.read("cubbyhole/note")["data"] == {"v": value}
    assert other.read("cubbyhole/note") is None


def bao_binary() -> str | None:
    """The OpenBao CLI: $BAO_BIN, PATH, or the running virtualenv's bin."""
    explicit = os.environ.get("BAO_BIN")
    if explicit and Path(explicit).exists():
        return explicit
    found = shutil.which("bao")
    if found:
        return found
    beside = Path(sys.executable).parent / "bao"
    return str(beside) if beside.exists() else None


def test_bao_cli_wrap_then_unwrap_round_trip(server, root):
    bao = bao_binary()
    if bao is None:
        pytest.skip("the bao CLI (openbao) is not installed; set BAO_BIN")
    srv, token = server
    role = uid("baorole").lower()
    root.auth.approle.create_or_update_approle(role, token_policies=["default"])
    home = tempfile.mkdtemp(prefix="bao-home-")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "VAULT_ADDR": srv.addr,
        "BAO_ADDR": srv.addr,
        "VAULT_TOKEN": token,
        "BAO_TOKEN": token,
    }

    def run(*args: str) -> dict:
        p = subprocess.run([bao, *args], env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"bao {' '.join(args)}: {p.stdout}\n{p.stderr}"
        return json.loads(p.stdout)

    wrapped = run("write", "-format=json", "-wrap-ttl=60s", "-f", f"auth/approle/role/{role}/secret-id")
    info = wrapped["wrap_info"]
    assert wrapped["data"] is None and info["token"]
    unwrapped = run("unwrap", "-format=json", info["token"])
    secret_id = unwrapped["data"]["secret_id"]
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    app = hvac.Client(url=srv.addr, timeout=30)
    assert app.auth.approle.login(role_id=role_id, secret_id=secret_id)["auth"]["client_token"]
    # the wrapping token is single use for the CLI too
    p = subprocess.run([bao, "unwrap", info["token"]], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert INVALID in p.stderr
    shutil.rmtree(home, ignore_errors=True)


def test_the_jwt_wrap_format_stands_for_a_single_use_wrapping_token(server, root):
    """`X-Vault-Wrap-Format: jwt`: the wrapping token comes as an ES512 JWT
    (Vault's claims), which lookup, unwrap and rewrap accept in the token
    header or the `token` parameter, once; a JWT whose claims were changed
    is refused."""
    import base64

    srv, token = server
    path = uid("jwt")
    value = secrets.token_hex(8)
    root.secrets.kv.v2.create_or_update_secret(path=path, secret={"k": value})

    def wrapped():
        r = requests.get(
            f"{srv.addr}/v1/secret/data/{path}",
            headers={"X-Vault-Token": token, "X-Vault-Wrap-TTL": "60", "X-Vault-Wrap-Format": "jwt"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        info = r.json()["wrap_info"]
        assert info["ttl"] == 60 and info["creation_path"] == f"secret/data/{path}"
        return info["token"]

    def b64(part):
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    jwt = wrapped()
    head, claims, _ = jwt.split(".")
    assert b64(head) == {"alg": "ES512", "typ": "JWT"}
    body = b64(claims)
    assert body["type"] == "wrapping" and body["accessor"] == ""
    assert body["exp"] - body["iat"] == 60 and body["nbf"] <= body["iat"]

    looked = requests.post(f"{srv.addr}/v1/sys/wrapping/lookup", json={"token": jwt}, timeout=10)
    assert looked.status_code == 200 and looked.json()["data"]["creation_ttl"] == 60
    out = requests.post(f"{srv.addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": jwt}, timeout=10)
    assert out.status_code == 200, out.text
    assert out.json()["data"]["data"] == {"k": value}
    again = requests.post(f"{srv.addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": jwt}, timeout=10)
    assert again.status_code == 400 and INVALID in again.text

    # In the body of a token holder's unwrap, too.
    jwt = wrapped()
    out = requests.post(
        f"{srv.addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": token}, json={"token": jwt}, timeout=10
    )
    assert out.status_code == 200 and out.json()["data"]["data"] == {"k": value}

    # Claims changed, signature kept: not a token of this server.
    jwt = wrapped()
    head, claims, sig = jwt.split(".")
    forged = dict(b64(claims), exp=b64(claims)["exp"] + 3600)
    forged = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    bad = requests.post(f"{srv.addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": f"{head}.{forged}.{sig}"}, timeout=10)
    assert bad.status_code == 403 and "signature could not be validated" in bad.text
    # The untouched one still unwraps: the forgery spent nothing.
    assert requests.post(f"{srv.addr}/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": jwt}, timeout=10).status_code == 200

    # Rewrap keeps the format asked for; another format value means the plain token, as in Vault.
    jwt = wrapped()
    re = requests.post(
        f"{srv.addr}/v1/sys/wrapping/rewrap",
        headers={"X-Vault-Token": token, "X-Vault-Wrap-Format": "jwt"},
        json={"token": jwt},
        timeout=10,
    )
    assert re.status_code == 200 and re.json()["wrap_info"]["token"].startswith("eyJ")
    plain = requests.get(
        f"{srv.addr}/v1/secret/data/{path}",
        headers={"X-Vault-Token": token, "X-Vault-Wrap-TTL": "60", "X-Vault-Wrap-Format": "xml"},
        timeout=10,
    )
    assert plain.json()["wrap_info"]["token"].startswith("cfs.")
