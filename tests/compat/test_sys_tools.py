"""sys/tools (random, hash), sys/config/cors, key status and the UI mount
table through hvac, against a real Coffer dev server. hvac has no methods
for the tools or CORS, so those go through its adapter (its error mapping
included); key status and rotation use hvac's own calls."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hvac import exceptions

from conftest import uid


def test_generate_random_bytes(client):
    r = client.adapter.post("/v1/sys/tools/random", json={"bytes": 24})
    assert len(base64.b64decode(r["data"]["random_bytes"])) == 24
    r = client.adapter.post("/v1/sys/tools/random/5", json={"format": "hex"})
    assert len(r["data"]["random_bytes"]) == 10
    with pytest.raises(exceptions.InvalidRequest):
        client.adapter.post("/v1/sys/tools/random/0")


@pytest.mark.parametrize(
    "algorithm,fn",
    [("sha2-256", hashlib.sha256), ("sha2-512", hashlib.sha512), ("sha3-384", hashlib.sha3_384)],
)
def test_generate_hash(client, algorithm, fn):
    data = uid("hash").encode()
    r = client.adapter.post(
        f"/v1/sys/tools/hash/{algorithm}",
        json={"input": base64.b64encode(data).decode(), "format": "hex"},
    )
    assert r["data"]["sum"] == fn(data).hexdigest()


def test_configure_read_and_delete_cors(client):
    origin = f"https://{uid('o')}.example"
    client.adapter.put("/v1/sys/config/cors", json={"allowed_origins": [origin], "allowed_headers": ["X-Custom"]})
    r = client.adapter.get("/v1/sys/config/cors")
    assert r["data"]["enabled"] is True
    assert r["data"]["allowed_origins"] == [origin]
    assert "X-Custom" in r["data"]["allowed_headers"]
    client.adapter.delete("/v1/sys/config/cors")
    assert client.adapter.get("/v1/sys/config/cors")["data"]["enabled"] is False


def test_key_status_and_rotate(client):
    before = client.sys.get_encryption_key_status()["data"]
    client.sys.rotate_encryption_key()
    after = client.sys.get_encryption_key_status()["data"]
    assert after["term"] == before["term"] + 1
    assert isinstance(after["encryptions"], int)


def test_ui_mounts_are_filtered_by_policy(client, dev_server):
    import hvac

    mount = uid("kv")
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    name = uid("pol")
    client.sys.create_or_update_policy(name, f'path "{mount}/data/app/*" {{ capabilities = ["read"] }}')
    token = client.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    limited = hvac.Client(url=dev_server.addr, token=token)
    seen = limited.adapter.get("/v1/sys/internal/ui/mounts")["data"]["secret"]
    assert f"{mount}/" in seen and "secret/" not in seen
    one = limited.adapter.get(f"/v1/sys/internal/ui/mounts/{mount}/app/x")["data"]
    assert one["path"] == f"{mount}/" and one["options"]["version"] == "2"
    with pytest.raises(exceptions.Forbidden):
        limited.adapter.get("/v1/sys/internal/ui/mounts/secret/app/x")
