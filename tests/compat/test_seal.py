"""sys/init, sys/unseal, sys/seal, sys/seal-status and sys/health as Vault documents them."""

from __future__ import annotations

import base64
import secrets

import hvac
import pytest
import requests
from hvac import exceptions

from conftest import uid


def health(addr: str, method: str = "GET", **params) -> requests.Response:
    """A raw sys/health call (no token), query overrides as keyword arguments."""
    return requests.request(method, f"{addr}/v1/sys/health", params=params, timeout=10)


# --- sys/init -------------------------------------------------------------------------------


def test_fresh_server_is_not_initialized(prod_server):
    c = prod_server.client()
    assert c.sys.is_initialized() is False
    assert c.sys.read_init_status() == {"initialized": False}
    status = c.sys.read_seal_status()
    assert status["sealed"] is True
    assert status["initialized"] is False


def test_initialize_returns_keys_and_root_token(prod_server):
    c = prod_server.client()
    init = c.sys.initialize(secret_shares=5, secret_threshold=3)
    assert len(init["keys"]) == 5
    assert len(init["keys_base64"]) == 5
    assert len(set(init["keys"])) == 5, "shares must differ"
    for hex_key, b64_key in zip(init["keys"], init["keys_base64"]):
        assert bytes.fromhex(hex_key) == base64.b64decode(b64_key)
    assert isinstance(init["root_token"], str) and init["root_token"]
    assert c.sys.is_initialized() is True
    assert c.sys.read_init_status()["initialized"] is True
    status = c.sys.read_seal_status()
    assert status["sealed"] is True
    assert status["t"] == 3
    assert status["n"] == 5
    assert status["progress"] == 0


def test_initialize_twice_is_refused(prod_server):
    c = prod_server.client()
    c.sys.initialize(secret_shares=1, secret_threshold=1)
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.initialize(secret_shares=1, secret_threshold=1)


@pytest.mark.parametrize("shares,threshold", [(3, 4), (0, 0), (2, 0)])
def test_initialize_rejects_bad_share_parameters(prod_server, shares, threshold):
    r = requests.put(
        prod_server.url("sys/init"),
        json={"secret_shares": shares, "secret_threshold": threshold},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert isinstance(r.json()["errors"], list)
    assert requests.get(prod_server.url("sys/init"), timeout=10).json() == {"initialized": False}


def test_initialize_rejects_wrong_types(prod_server):
    r = requests.put(
        prod_server.url("sys/init"),
        json={"secret_shares": "many", "secret_threshold": 1},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert "errors" in r.json()


# --- sys/unseal, sys/seal -------------------------------------------------------------------


def test_unseal_progress_reset_and_completion(prod_server):
    c = prod_server.client()
    init = c.sys.initialize(secret_shares=3, secret_threshold=2)
    keys = init["keys"]

    st = c.sys.submit_unseal_key(keys[0])
    assert (st["sealed"], st["t"], st["n"], st["progress"]) == (True, 2, 3, 1)
    assert c.sys.read_seal_status()["progress"] == 1

    st = c.sys.submit_unseal_key(reset=True)
    assert (st["sealed"], st["progress"]) == (True, 0)

    st = c.sys.submit_unseal_key(keys[2])
    assert (st["sealed"], st["progress"]) == (True, 1)
    st = c.sys.submit_unseal_key(keys[1])
    assert st["sealed"] is False
    assert st["progress"] == 0
    assert c.sys.is_sealed() is False


def test_unseal_accepts_base64_shares(prod_server):
    c = prod_server.client()
    init = c.sys.initialize(secret_shares=2, secret_threshold=2)
    st = c.sys.submit_unseal_keys(init["keys_base64"])
    assert st["sealed"] is False


def test_unseal_with_a_malformed_key_is_400(prod_server):
    c = prod_server.client()
    c.sys.initialize(secret_shares=1, secret_threshold=1)
    r = requests.put(prod_server.url("sys/unseal"), json={"key": "not-a-key!!"}, timeout=10)
    assert r.status_code == 400, r.text
    assert c.sys.read_seal_status()["sealed"] is True


def test_unseal_with_shares_never_issued_fails(prod_server):
    c = prod_server.client()
    init = c.sys.initialize(secret_shares=2, secret_threshold=2)
    # Well-formed shares of the right length that this server never issued.
    nbytes = len(init["keys"][0]) // 2
    bogus = [secrets.token_hex(nbytes), secrets.token_hex(nbytes)]
    codes = []
    for key in bogus:
        r = requests.put(prod_server.url("sys/unseal"), json={"key": key}, timeout=10)
        codes.append(r.status_code)
        assert r.status_code < 500, r.text
    assert codes[-1] == 400 or codes[0] == 400, codes
    assert c.sys.read_seal_status()["sealed"] is True
    # The real shares still work afterwards.
    c.sys.submit_unseal_key(reset=True)
    assert c.sys.submit_unseal_keys(init["keys"])["sealed"] is False


def test_seal_then_unseal_keeps_data(unsealed_prod):
    c = unsealed_prod.client()
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    c.secrets.kv.v2.create_or_update_secret("app/db", {"password": "p-" + uid()}, mount_point="kv")
    before = c.secrets.kv.v2.read_secret_version("app/db", mount_point="kv", raise_on_deleted_version=True)

    r = c.sys.seal()
    assert r.status_code == 204
    assert c.sys.is_sealed() is True
    c.sys.submit_unseal_keys(unsealed_prod.keys[1:3])
    assert c.sys.is_sealed() is False
    after = c.secrets.kv.v2.read_secret_version("app/db", mount_point="kv", raise_on_deleted_version=True)
    assert after["data"]["data"] == before["data"]["data"]


def test_seal_needs_a_token(unsealed_prod):
    r = requests.put(unsealed_prod.prod.url("sys/seal"), timeout=10)
    assert r.status_code == 403, r.text
    assert unsealed_prod.prod.client().sys.is_sealed() is False


def test_data_survives_restart(unsealed_prod):
    c = unsealed_prod.client()
    c.sys.enable_secrets_engine("kv-v2", path="kv")
    value = "v-" + uid()
    c.secrets.kv.v2.create_or_update_secret("persist", {"value": value}, mount_point="kv")
    unsealed_prod.prod.restart()
    c = unsealed_prod.client()
    assert c.sys.is_initialized() is True
    assert c.sys.is_sealed() is True, "a restarted server starts sealed"
    c.sys.submit_unseal_keys(unsealed_prod.keys[:2])
    got = c.secrets.kv.v2.read_secret_version("persist", mount_point="kv", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"value": value}


def test_sealed_server_answers_503_to_everything_else(unsealed_prod):
    prod = unsealed_prod.prod
    tok = unsealed_prod.root_token
    c = unsealed_prod.client()
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    c.sys.seal()
    hdr = {"X-Vault-Token": tok}
    for method, path in [
        ("GET", "kv/data/x"),
        ("POST", "kv/data/x"),
        ("LIST", "kv/metadata"),
        ("GET", "sys/mounts"),
        ("GET", "sys/key-status"),
        ("GET", "auth/token/lookup-self"),
        ("GET", "no/such/mount"),
    ]:
        r = requests.request(method, prod.url(path), headers=hdr, json={"data": {"a": "b"}}, timeout=10)
        assert r.status_code == 503, (method, path, r.status_code, r.text)
        assert isinstance(r.json()["errors"], list) and r.json()["errors"], r.text
    # hvac maps the 503 to VaultDown.
    with pytest.raises(exceptions.VaultDown):
        c.secrets.kv.v2.read_secret_version("x", mount_point="kv", raise_on_deleted_version=True)
    # Unauthenticated too: sealed wins over a missing token.
    r = requests.get(prod.url("kv/data/x"), timeout=10)
    assert r.status_code == 503, r.text
    # The seal endpoints keep working while sealed.
    assert requests.get(prod.url("sys/seal-status"), timeout=10).status_code == 200
    assert requests.get(prod.url("sys/init"), timeout=10).status_code == 200


def test_uninitialized_server_refuses_ordinary_requests(prod_server):
    r = requests.get(prod_server.url("sys/mounts"), headers={"X-Vault-Token": "x"}, timeout=10)
    assert r.status_code == 503, r.text
    assert "errors" in r.json()


def test_seal_status_needs_no_token_and_has_vault_fields(dev_server):
    st = hvac.Client(url=dev_server.addr).sys.read_seal_status()
    for field in ("type", "initialized", "sealed", "t", "n", "progress", "version"):
        assert field in st, (field, st)
    assert st["sealed"] is False
    assert st["initialized"] is True


# --- sys/health -----------------------------------------------------------------------------


def test_health_active_unsealed(dev_server):
    r = health(dev_server.addr)
    assert r.status_code == 200
    body = r.json()
    assert body["initialized"] is True
    assert body["sealed"] is False
    assert body["standby"] is False
    assert "version" in body and "server_time_utc" in body
    hv = hvac.Client(url=dev_server.addr).sys.read_health_status(method="GET")
    assert hv["sealed"] is False


def test_health_head_has_status_and_no_body(dev_server):
    r = health(dev_server.addr, method="HEAD")
    assert r.status_code == 200
    assert r.content == b""
    resp = hvac.Client(url=dev_server.addr).sys.read_health_status(method="HEAD")
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"activecode": "299"}, 299),
        ({"activecode": "204"}, 204),
        ({"standbyok": "true"}, 200),
        ({"sealedcode": "200"}, 200),  # not sealed: sealedcode does not apply
        ({"uninitcode": "299"}, 200),  # initialised: uninitcode does not apply
    ],
)
def test_health_overrides_on_active_node(dev_server, params, expected):
    assert health(dev_server.addr, **params).status_code == expected
    assert health(dev_server.addr, method="HEAD", **params).status_code == expected


def test_health_uninitialized_is_501_and_overridable(prod_server):
    r = health(prod_server.addr)
    assert r.status_code == 501
    assert r.json()["initialized"] is False
    assert health(prod_server.addr, method="HEAD").status_code == 501
    assert health(prod_server.addr, uninitcode="200").status_code == 200
    assert health(prod_server.addr, method="HEAD", uninitcode="299").status_code == 299
    resp = prod_server.client().sys.read_health_status(method="GET", uninit_code=200)
    assert resp["initialized"] is False


def test_health_sealed_is_503_and_overridable(prod_server):
    prod_server.client().sys.initialize(secret_shares=1, secret_threshold=1)
    r = health(prod_server.addr)
    assert r.status_code == 503
    body = r.json()
    assert body["initialized"] is True and body["sealed"] is True
    assert health(prod_server.addr, method="HEAD").status_code == 503
    assert health(prod_server.addr, sealedcode="200").status_code == 200
    assert health(prod_server.addr, method="HEAD", sealedcode="299").status_code == 299
    # activecode does not apply to a sealed node
    assert health(prod_server.addr, activecode="299").status_code == 503


def test_health_after_init_and_unseal_is_200(unsealed_prod):
    assert health(unsealed_prod.prod.addr).status_code == 200


def test_health_rejects_a_non_numeric_code(dev_server):
    r = health(dev_server.addr, activecode="abc")
    assert r.status_code == 400, r.text


def test_health_wrong_method_is_405(dev_server):
    r = requests.delete(f"{dev_server.addr}/v1/sys/health", timeout=10)
    assert r.status_code == 405, r.text


def test_unseal_without_key_or_reset_is_400(prod_server):
    c = prod_server.client()
    c.sys.initialize(secret_shares=1, secret_threshold=1)
    r = requests.put(prod_server.url("sys/unseal"), json={}, timeout=10)
    assert r.status_code == 400, r.text
    assert isinstance(r.json()["errors"], list)


def test_unseal_on_an_unsealed_server_reports_status(dev_server):
    r = requests.put(dev_server.url("sys/unseal"), json={"key": secrets.token_hex(32)}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["sealed"] is False


def test_seal_status_while_sealed_has_vault_fields(prod_server):
    c = prod_server.client()
    init = c.sys.initialize(secret_shares=3, secret_threshold=2)
    st = c.sys.submit_unseal_key(init["keys"][0])
    for field in ("type", "initialized", "sealed", "t", "n", "progress", "nonce", "version"):
        assert field in st, (field, st)
    assert st["type"] == "shamir"
    assert st["nonce"], "Vault reports the unseal attempt's nonce while progress > 0"
