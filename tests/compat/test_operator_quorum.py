"""Rekey, root token generation and mount moves through hvac, as Vault documents them."""

from __future__ import annotations

import base64

import hvac
import pytest
from hvac import exceptions

from conftest import uid


def test_rekey_through_hvac_replaces_the_unseal_keys(unsealed_prod):
    c = unsealed_prod.client()
    status = c.sys.read_rekey_progress()
    assert status["started"] is False
    started = c.sys.start_rekey(secret_shares=2, secret_threshold=2)
    assert started["started"] is True and started["n"] == 2 and started["t"] == 2
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.rekey(unsealed_prod.keys[0], nonce="not-the-nonce")
    nonce = started["nonce"]
    progress = c.sys.rekey(unsealed_prod.keys[0], nonce=nonce)
    assert progress["progress"] == 1 and not progress.get("complete")  # the status, as Vault answers
    done = c.sys.rekey(unsealed_prod.keys[1], nonce=nonce)
    assert done["complete"] is True
    new_keys = done["keys"]
    assert len(new_keys) == 2 and len(done["keys_base64"]) == 2

    c.sys.seal()
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.submit_unseal_keys(unsealed_prod.keys[:2])  # the old keys no longer unseal
    c.sys.submit_unseal_key(reset=True)
    assert c.sys.submit_unseal_keys(new_keys)["sealed"] is False


def test_rekey_cancel_and_bad_parameters(unsealed_prod):
    c = unsealed_prod.client()
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.start_rekey(secret_shares=1, secret_threshold=2)
    c.sys.start_rekey(secret_shares=3, secret_threshold=2)
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.start_rekey(secret_shares=3, secret_threshold=2)
    c.sys.cancel_rekey()
    assert c.sys.read_rekey_progress()["started"] is False


def test_generate_root_through_hvac_makes_a_root_token(unsealed_prod):
    c = unsealed_prod.client()
    assert c.sys.read_root_generation_progress()["started"] is False
    length = c.sys.read_root_generation_progress()["otp_length"]
    otp = base64.urlsafe_b64encode(b"o" * length).decode()[:length]
    started = c.sys.start_root_token_generation(otp=otp)
    assert started["started"] is True
    nonce = started["nonce"]
    c.sys.generate_root(unsealed_prod.keys[0], nonce=nonce)
    done = c.sys.generate_root(unsealed_prod.keys[1], nonce=nonce)
    assert done["complete"] is True
    raw = base64.b64decode(done["encoded_token"] + "=" * (-len(done["encoded_token"]) % 4))
    token = bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()
    fresh = unsealed_prod.prod.client(token)
    assert fresh.lookup_token()["data"]["policies"] == ["root"]
    c.sys.start_root_token_generation(otp=otp)
    c.sys.cancel_root_generation()
    assert c.sys.read_root_generation_progress()["started"] is False


def test_move_backend_through_hvac_keeps_the_data(client):
    src, dst = uid("src"), uid("dst")
    client.sys.enable_secrets_engine("kv", path=src, options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret(path="app", secret={"k": "v"}, mount_point=src)
    moved = client.sys.move_backend(src, dst)
    assert moved["data"]["migration_id"]
    read = client.secrets.kv.v2.read_secret_version(path="app", mount_point=dst, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"k": "v"}
    assert f"{src}/" not in client.sys.list_mounted_secrets_engines()["data"]
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.move_backend("sys", uid("x"))
    client.sys.disable_secrets_engine(dst)


def test_rekey_endpoints_take_no_token(unsealed_prod):
    anonymous = hvac.Client(url=unsealed_prod.prod.addr)
    assert anonymous.sys.read_rekey_progress()["started"] is False
    assert anonymous.sys.read_root_generation_progress()["started"] is False
