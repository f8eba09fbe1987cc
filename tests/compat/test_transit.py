"""The transit engine through hvac's client.secrets.transit methods:
encrypt/decrypt, batch input, datakeys, sign/verify, HMAC, rotation with
min_decryption_version, and export refused for keys that are not
exportable."""

from __future__ import annotations

import base64
import re

import pytest
from hvac import exceptions

from conftest import uid

CIPHERTEXT = re.compile(r"^vault:v(\d+):[A-Za-z0-9+/]+={0,2}$")


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


@pytest.fixture
def transit(client):
    """A fresh transit mount and hvac's transit API bound to it."""
    path = uid("transit")
    client.sys.enable_secrets_engine("transit", path=path)
    yield client.secrets.transit, path
    client.sys.disable_secrets_engine(path)


def test_encrypt_decrypt_round_trip(transit):
    t, mp = transit
    t.create_key("app", mount_point=mp)
    key = t.read_key("app", mount_point=mp)["data"]
    assert key["type"] == "aes256-gcm96"
    assert key["latest_version"] == 1
    assert key["supports_encryption"] and not key["supports_signing"]
    plain = f"secret {uid('v')}"
    enc = t.encrypt_data("app", plaintext=b64(plain), mount_point=mp)["data"]
    m = CIPHERTEXT.match(enc["ciphertext"])
    assert m and m.group(1) == "1", enc
    assert enc["key_version"] == 1
    raw = base64.b64decode(enc["ciphertext"].split(":", 2)[2])
    assert len(raw) == 12 + len(plain) + 16  # nonce || ciphertext || tag
    dec = t.decrypt_data("app", ciphertext=enc["ciphertext"], mount_point=mp)["data"]
    assert base64.b64decode(dec["plaintext"]).decode() == plain
    assert t.list_keys(mount_point=mp)["data"]["keys"] == ["app"]


# hvac 2.4 refuses aes128-gcm96 in create_key; the differential suite covers it.
@pytest.mark.parametrize("key_type", ["chacha20-poly1305", "rsa-2048"])
def test_other_encryption_types(transit, key_type):
    t, mp = transit
    name = key_type.replace("-", "")
    t.create_key(name, key_type=key_type, mount_point=mp)
    enc = t.encrypt_data(name, plaintext=b64("typed"), mount_point=mp)["data"]
    assert CIPHERTEXT.match(enc["ciphertext"])
    dec = t.decrypt_data(name, ciphertext=enc["ciphertext"], mount_point=mp)["data"]
    assert base64.b64decode(dec["plaintext"]) == b"typed"


def test_batch_input_with_a_failing_item(transit):
    t, mp = transit
    t.create_key("batch", mount_point=mp)
    items = [{"plaintext": b64("one"), "reference": "a"}, {"plaintext": b64("two"), "reference": "b"}]
    res = t.encrypt_data("batch", batch_input=items, mount_point=mp)["data"]["batch_results"]
    assert [r["reference"] for r in res] == ["a", "b"]
    assert all(CIPHERTEXT.match(r["ciphertext"]) for r in res)
    dec = t.decrypt_data(
        "batch", batch_input=[{"ciphertext": r["ciphertext"]} for r in res], mount_point=mp
    )["data"]["batch_results"]
    assert [base64.b64decode(r["plaintext"]) for r in dec] == [b"one", b"two"]
    with pytest.raises(exceptions.InvalidRequest):
        t.encrypt_data("batch", batch_input=[{"plaintext": b64("ok")}, {"plaintext": "!!"}], mount_point=mp)


def test_datakey_plaintext_and_wrapped(transit):
    t, mp = transit
    t.create_key("dk", mount_point=mp)
    plain = t.generate_data_key("dk", key_type="plaintext", bits=256, mount_point=mp)["data"]
    assert len(base64.b64decode(plain["plaintext"])) == 32
    back = t.decrypt_data("dk", ciphertext=plain["ciphertext"], mount_point=mp)["data"]
    assert back["plaintext"] == plain["plaintext"]
    wrapped = t.generate_data_key("dk", key_type="wrapped", mount_point=mp)["data"]
    assert "plaintext" not in wrapped and CIPHERTEXT.match(wrapped["ciphertext"])


@pytest.mark.parametrize(
    "key_type,extra",
    [("ed25519", {}), ("ecdsa-p256", {}), ("rsa-2048", {"signature_algorithm": "pss"}), ("rsa-4096", {"signature_algorithm": "pkcs1v15"})],
)
def test_sign_and_verify(transit, key_type, extra):
    t, mp = transit
    name = key_type.replace("-", "")
    t.create_key(name, key_type=key_type, mount_point=mp)
    data = b64(f"document {uid('d')}")
    sig = t.sign_data(name, hash_input=data, mount_point=mp, **extra)["data"]["signature"]
    assert CIPHERTEXT.match(sig)
    ok = t.verify_signed_data(name, hash_input=data, signature=sig, mount_point=mp, **extra)["data"]
    assert ok["valid"] is True
    bad = t.verify_signed_data(name, hash_input=b64("tampered"), signature=sig, mount_point=mp, **extra)["data"]
    assert bad["valid"] is False


def test_hmac_and_verify(transit):
    t, mp = transit
    t.create_key("mac", mount_point=mp)
    data = b64("to authenticate")
    mac = t.generate_hmac("mac", hash_input=data, algorithm="sha2-256", mount_point=mp)["data"]["hmac"]
    assert CIPHERTEXT.match(mac)
    assert t.verify_signed_data("mac", hash_input=data, hmac=mac, mount_point=mp)["data"]["valid"] is True
    assert t.verify_signed_data("mac", hash_input=b64("x"), hmac=mac, mount_point=mp)["data"]["valid"] is False


def test_rotate_and_min_decryption_version(transit):
    t, mp = transit
    t.create_key("rot", mount_point=mp)
    v1 = t.encrypt_data("rot", plaintext=b64("old"), mount_point=mp)["data"]["ciphertext"]
    t.rotate_key("rot", mount_point=mp)
    key = t.read_key("rot", mount_point=mp)["data"]
    assert key["latest_version"] == 2 and sorted(key["keys"]) == ["1", "2"]
    v2 = t.encrypt_data("rot", plaintext=b64("new"), mount_point=mp)["data"]["ciphertext"]
    assert v2.startswith("vault:v2:")
    assert base64.b64decode(t.decrypt_data("rot", ciphertext=v1, mount_point=mp)["data"]["plaintext"]) == b"old"
    rewrapped = t.rewrap_data("rot", ciphertext=v1, mount_point=mp)["data"]["ciphertext"]
    assert rewrapped.startswith("vault:v2:")
    t.update_key_configuration("rot", min_decryption_version=2, mount_point=mp)
    with pytest.raises(exceptions.InvalidRequest):
        t.decrypt_data("rot", ciphertext=v1, mount_point=mp)
    assert base64.b64decode(t.decrypt_data("rot", ciphertext=rewrapped, mount_point=mp)["data"]["plaintext"]) == b"old"
    assert base64.b64decode(t.decrypt_data("rot", ciphertext=v2, mount_point=mp)["data"]["plaintext"]) == b"new"


def test_export_refused_unless_exportable(transit):
    t, mp = transit
    t.create_key("closed", mount_point=mp)
    for kind in ("encryption-key", "hmac-key"):
        with pytest.raises(exceptions.InvalidRequest):
            t.export_key("closed", key_type=kind, mount_point=mp)
    t.create_key("open", exportable=True, mount_point=mp)
    keys = t.export_key("open", key_type="encryption-key", mount_point=mp)["data"]["keys"]
    assert len(base64.b64decode(keys["1"])) == 32


def test_delete_only_when_allowed_and_tools(transit):
    t, mp = transit
    t.create_key("gone", mount_point=mp)
    with pytest.raises(exceptions.InvalidRequest):
        t.delete_key("gone", mount_point=mp)
    t.update_key_configuration("gone", deletion_allowed=True, mount_point=mp)
    t.delete_key("gone", mount_point=mp)
    with pytest.raises(exceptions.InvalidPath):
        t.read_key("gone", mount_point=mp)
    assert len(t.generate_random_bytes(n_bytes=24, output_format="hex", mount_point=mp)["data"]["random_bytes"]) == 48
    digest = t.hash_data(b64("hello"), algorithm="sha2-256", output_format="hex", mount_point=mp)["data"]["sum"]
    assert digest == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
