"""The transit engine, asked of OpenBao and Coffer alike: key lifecycle,
encrypt/decrypt/rewrap/datakey with batches and their errors, sign/verify,
HMAC, hash, random, export and the refusals. Ciphertexts, signatures,
HMACs, key material and times are random per side: compared by presence
and type; each side decrypts and verifies its own."""

from __future__ import annotations

import base64

import pytest

from conftest import uid
from differential.harness import V

#: Values random per side wherever they appear.
RANDOM = ("*ciphertext", "*signature", "*plaintext", "*public_key", "*random_bytes", "data.keys.*", "*hmac")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def tr(diff):
    m = uid("transit")
    diff.call("POST", f"sys/mounts/{m}", {"type": "transit"}, label="mount transit")
    return m


def test_key_lifecycle(diff, tr):
    diff.call("POST", f"{tr}/keys/k1", {}, volatile=RANDOM, label="create aes256")
    diff.call("GET", f"{tr}/keys/k1", volatile=RANDOM, label="read aes256")
    diff.call("POST", f"{tr}/keys/k1", {"type": "ed25519"}, volatile=RANDOM, label="create existing")
    diff.call("POST", f"{tr}/keys/Mixed.Case_1", {"type": "chacha20-poly1305"}, volatile=RANDOM, label="create chacha")
    diff.call("POST", f"{tr}/keys/a128", {"type": "aes128-gcm96", "exportable": True}, volatile=RANDOM)
    diff.call("POST", f"{tr}/keys/ed", {"type": "ed25519"}, volatile=RANDOM, label="create ed25519")
    diff.call("POST", f"{tr}/keys/ec", {"type": "ecdsa-p256", "exportable": True}, volatile=RANDOM, label="create ecdsa")
    diff.call("POST", f"{tr}/keys/r2", {"type": "rsa-2048"}, volatile=RANDOM, label="create rsa")
    diff.call("POST", f"{tr}/keys/hm", {"type": "hmac", "key_size": 32}, volatile=RANDOM, label="create hmac")
    diff.call("POST", f"{tr}/keys/d", {"derived": True}, volatile=RANDOM, label="create derived")
    diff.call("POST", f"{tr}/keys/hm0", {"type": "hmac"}, label="transit: bad key parameters")
    diff.call("POST", f"{tr}/keys/bad", {"type": "nope"}, label="unknown type")
    diff.call("POST", f"{tr}/keys/bad", {"convergent_encryption": True}, label="convergent without derived")
    diff.call("POST", f"{tr}/keys/bad", {"auto_rotate_period": "10m"}, label="auto rotate too short")
    diff.call("LIST", f"{tr}/keys")
    diff.call("GET", f"{tr}/keys", params={"list": "true"}, label="GET keys?list=true")
    diff.call("GET", f"{tr}/keys/missing", label="read missing")
    diff.call("POST", f"{tr}/keys/k1/rotate", volatile=RANDOM, label="rotate")
    diff.call("POST", f"{tr}/keys/missing/rotate", label="rotate missing")
    diff.call("POST", f"{tr}/keys/k1/config", {"min_decryption_version": 2}, volatile=RANDOM, label="config min_decryption")
    diff.call("POST", f"{tr}/keys/k1/config", {"min_decryption_version": 5}, label="config min_decryption too high")
    diff.call("POST", f"{tr}/keys/k1/config", {"min_encryption_version": 3}, label="config min_encryption too high")
    diff.call("POST", f"{tr}/keys/k1/config", {"auto_rotate_period": "30m"}, label="config auto rotate too short")
    diff.call("POST", f"{tr}/keys/k1/config", {"auto_rotate_period": "1h"}, volatile=RANDOM, label="config auto rotate")
    diff.call("POST", f"{tr}/keys/missing/config", {"deletion_allowed": True}, label="config missing")
    diff.call("GET", f"{tr}/keys/k1/config", label="read config")
    diff.call("POST", f"{tr}/keys/k1/trim", {"min_available_version": 2}, label="trim without min encryption")
    diff.call("DELETE", f"{tr}/keys/k1", label="delete not allowed")
    diff.call("POST", f"{tr}/keys/k1/config", {"deletion_allowed": True}, volatile=RANDOM, label="allow deletion")
    diff.call("DELETE", f"{tr}/keys/k1", label="delete")
    diff.call("GET", f"{tr}/keys/k1", label="read deleted")
    diff.call("DELETE", f"{tr}/keys/k1", label="delete missing")


def test_encrypt_decrypt_and_batches(diff, tr):
    diff.call("POST", f"{tr}/keys/e", {}, volatile=RANDOM, label="create")
    d = diff.call("POST", f"{tr}/encrypt/e", {"plaintext": b64("hello")}, volatile=RANDOM, label="encrypt")
    diff.bind("ct1", d, "data", "ciphertext")
    diff.call("POST", f"{tr}/decrypt/e", {"ciphertext": V("ct1")}, label="decrypt")
    diff.call("POST", f"{tr}/encrypt/e", {"plaintext": ""}, volatile=RANDOM, label="encrypt empty")
    diff.call("POST", f"{tr}/encrypt/e", {}, label="encrypt nothing")
    diff.call("POST", f"{tr}/encrypt/e", {"plaintext": "!!"}, label="encrypt bad base64")
    diff.call("POST", f"{tr}/decrypt/e", {}, label="decrypt nothing")
    for label, ct in [
        ("no prefix", "garbage"),
        ("version too new", "vault:v9:AAAA"),
        ("short", "vault:v1:AAAA"),
        ("bad version", "vault:vx:AAAA"),
        ("bad base64", "vault:v1:!!!"),
    ]:
        diff.call("POST", f"{tr}/decrypt/e", {"ciphertext": ct}, label=f"decrypt {label}")
    diff.call("POST", f"{tr}/decrypt/nokey", {"ciphertext": "vault:v1:AAAA"}, label="decrypt missing key")
    diff.call(
        "POST",
        f"{tr}/encrypt/e",
        {"batch_input": [{"plaintext": b64("a"), "reference": "r1"}, {"plaintext": "!!", "reference": "r2"}]},
        volatile=RANDOM,
        label="batch encrypt with a bad item",
    )
    d = diff.call(
        "POST",
        f"{tr}/encrypt/e",
        {"batch_input": [{"plaintext": b64("a")}, {"plaintext": b64("b"), "reference": "x"}]},
        volatile=RANDOM,
        label="batch encrypt",
    )
    diff.bind("b0", d, "data", "batch_results", 0, "ciphertext")
    diff.call(
        "POST",
        f"{tr}/decrypt/e",
        {"batch_input": [{"ciphertext": V("b0")}, {"ciphertext": "bad"}]},
        label="batch decrypt with a bad item",
    )
    diff.call("POST", f"{tr}/encrypt/e", {"batch_input": []}, label="empty batch")
    diff.call("POST", f"{tr}/keys/e/rotate", volatile=RANDOM, label="rotate")
    diff.call("POST", f"{tr}/rewrap/e", {"ciphertext": V("ct1")}, volatile=RANDOM, label="rewrap")
    diff.call("POST", f"{tr}/rewrap/e", {"batch_input": [{"ciphertext": "bad"}]}, label="batch rewrap bad")
    diff.call("POST", f"{tr}/encrypt/e", {"plaintext": b64("x"), "key_version": 1}, volatile=RANDOM, label="encrypt v1")
    diff.call("POST", f"{tr}/encrypt/e", {"plaintext": b64("x"), "key_version": 5}, label="encrypt v5")
    diff.call("POST", f"{tr}/keys/e/config", {"min_decryption_version": 2}, volatile=RANDOM, label="raise min decryption")
    diff.call("POST", f"{tr}/decrypt/e", {"ciphertext": V("ct1")}, label="decrypt too old")
    diff.call("POST", f"{tr}/encrypt/e", {"plaintext": b64("x"), "key_version": 1}, label="encrypt v1 below min")
    diff.call("POST", f"{tr}/datakey/plaintext/e", {}, volatile=RANDOM, label="datakey plaintext")
    diff.call("POST", f"{tr}/datakey/wrapped/e", {"bits": 512}, volatile=RANDOM, label="datakey wrapped")
    diff.call("POST", f"{tr}/datakey/wrapped/e", {"bits": 100}, label="datakey bad bits")
    diff.call("POST", f"{tr}/datakey/bogus/e", {}, label="datakey bad kind")
    diff.call("POST", f"{tr}/datakey/plaintext/nokey", {}, label="datakey missing key")


def test_create_on_encrypt_and_derivation(diff, tr):
    diff.call("POST", f"{tr}/encrypt/upserted", {"plaintext": b64("x")}, volatile=RANDOM, label="encrypt creates")
    diff.call("GET", f"{tr}/keys/upserted", volatile=RANDOM, label="read upserted")
    diff.call("POST", f"{tr}/encrypt/up2", {"plaintext": b64("x"), "type": "ed25519"}, label="upsert signing type")
    diff.call("POST", f"{tr}/encrypt/up3", {"plaintext": b64("x"), "type": "chacha20-poly1305"}, volatile=RANDOM, label="upsert chacha")
    diff.call("POST", f"{tr}/encrypt/up4", {"batch_input": [{"plaintext": b64("x"), "context": b64("c")}]}, volatile=RANDOM, label="upsert derived")
    diff.call("GET", f"{tr}/keys/up4", volatile=RANDOM, label="read upserted derived")
    diff.call("POST", f"{tr}/encrypt/up4", {"plaintext": b64("x")}, label="derived without context")
    d = diff.call("POST", f"{tr}/encrypt/up4", {"plaintext": b64("x"), "context": b64("c")}, volatile=RANDOM, label="derived encrypt")
    diff.bind("dct", d, "data", "ciphertext")
    diff.call("POST", f"{tr}/decrypt/up4", {"ciphertext": V("dct"), "context": b64("c")}, label="derived decrypt")
    diff.call("POST", f"{tr}/keys/ecd", {"type": "ecdsa-p256", "derived": True}, label="transit: bad key parameters")


def test_sign_verify_hmac_tools_export(diff, tr):
    for name, kind in [("ed", "ed25519"), ("ec", "ecdsa-p256"), ("rs", "rsa-2048")]:
        diff.call("POST", f"{tr}/keys/{name}", {"type": kind, "exportable": True}, volatile=RANDOM, label=f"create {kind}")
        d = diff.call("POST", f"{tr}/sign/{name}", {"input": b64("msg")}, volatile=RANDOM, label=f"sign {kind}")
        diff.bind(f"sig_{name}", d, "data", "signature")
        diff.call("POST", f"{tr}/verify/{name}", {"input": b64("msg"), "signature": V(f"sig_{name}")}, label=f"verify {kind}")
        diff.call("POST", f"{tr}/verify/{name}", {"input": b64("other"), "signature": V(f"sig_{name}")}, label=f"verify {kind} wrong input")
        diff.call("GET", f"{tr}/export/signing-key/{name}", volatile=RANDOM, label=f"export {kind}")
        diff.call("GET", f"{tr}/export/signing-key/{name}/latest", volatile=RANDOM, label=f"export {kind} latest")
    d = diff.call("POST", f"{tr}/sign/rs/sha2-512", {"input": b64("msg"), "signature_algorithm": "pkcs1v15"}, volatile=RANDOM, label="sign rsa pkcs1v15 sha512")
    diff.bind("sig_rs512", d, "data", "signature")
    diff.call(
        "POST",
        f"{tr}/verify/rs/sha2-512",
        {"input": b64("msg"), "signature": V("sig_rs512"), "signature_algorithm": "pkcs1v15"},
        label="verify rsa pkcs1v15 sha512",
    )
    diff.call("POST", f"{tr}/sign/ed", {"batch_input": [{"input": b64("a")}, {"input": "!"}]}, volatile=RANDOM, label="batch sign with a bad item")
    diff.call("POST", f"{tr}/verify/ed", {"input": b64("msg")}, label="verify without signature")
    diff.call("POST", f"{tr}/verify/ed", {"input": b64("msg"), "signature": "vault:v1:AAAA"}, label="verify garbage signature")
    diff.call("POST", f"{tr}/sign/nokey", {"input": b64("m")}, label="sign missing key")
    diff.call("POST", f"{tr}/verify/nokey", {"input": b64("m"), "signature": "vault:v1:AAAA"}, label="verify missing key")
    diff.call("POST", f"{tr}/sign/ec/bogus", {"input": b64("m")}, label="sign bad hash")
    diff.call("POST", f"{tr}/keys/sym", {"type": "aes128-gcm96"}, volatile=RANDOM, label="create sym")
    diff.call("POST", f"{tr}/sign/sym", {"input": b64("m")}, label="sign with a symmetric key")
    d = diff.call("POST", f"{tr}/hmac/sym", {"input": b64("m")}, volatile=RANDOM, label="hmac")
    diff.bind("mac", d, "data", "hmac")
    diff.call("POST", f"{tr}/verify/sym", {"input": b64("m"), "hmac": V("mac")}, label="verify hmac")
    diff.call("POST", f"{tr}/hmac/sym/sha2-512", {"input": b64("m")}, volatile=RANDOM, label="hmac sha512")
    diff.call("POST", f"{tr}/hmac/sym", {"batch_input": [{"input": b64("m")}, {"input": "!"}]}, volatile=RANDOM, label="batch hmac")
    diff.call("POST", f"{tr}/hmac/nokey", {"input": b64("m")}, label="hmac missing key")
    diff.call("POST", f"{tr}/hash", {"input": b64("hello")}, label="hash")
    diff.call("POST", f"{tr}/hash/sha2-512", {"input": b64("hello"), "format": "base64"}, label="hash sha512 base64")
    diff.call("POST", f"{tr}/hash/bogus", {"input": b64("hello")}, label="hash bogus")
    diff.call("POST", f"{tr}/random", {}, volatile=RANDOM, label="random")
    diff.call("POST", f"{tr}/random/8", {"format": "hex"}, volatile=RANDOM, label="random 8 hex")
    diff.call("POST", f"{tr}/random/999999", {}, label="random too many")
    diff.call("GET", f"{tr}/export/encryption-key/sym", label="export not exportable")
    diff.call("GET", f"{tr}/export/encryption-key/ec", label="export encryption key of ecdsa")
    diff.call("GET", f"{tr}/export/signing-key/ec/3", label="export missing version")
    diff.call("GET", f"{tr}/export/bogus-key/ec", label="export bad type")
    diff.call("GET", f"{tr}/export/encryption-key/nokey", label="export missing key")
