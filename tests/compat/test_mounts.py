"""sys/mounts (enable, list, tune, disable) and sys/rotate + sys/key-status."""

from __future__ import annotations

import pytest
import requests
from hvac import exceptions

from conftest import uid


def test_dev_server_mounts_kv_v2_at_secret(client):
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    assert "secret/" in mounts, mounts.keys()
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"]["version"] == "2"


@pytest.mark.parametrize("backend_type,options", [("kv", {"version": "2"}), ("kv-v2", None)])
def test_enable_kv_v2_list_use_and_disable(client, backend_type, options):
    path = uid("kv")
    r = client.sys.enable_secrets_engine(backend_type, path=path, options=options, description="compat test")
    assert r.status_code == 204, r.text

    mounts = client.sys.list_mounted_secrets_engines()["data"]
    entry = mounts[f"{path}/"]
    assert entry["type"] == "kv"
    assert entry["options"]["version"] == "2"
    assert entry["description"] == "compat test"
    for field in ("accessor", "config", "local", "seal_wrap"):
        assert field in entry, (field, entry)

    client.secrets.kv.v2.create_or_update_secret("a", {"k": "v"}, mount_point=path)
    got = client.secrets.kv.v2.read_secret_version("a", mount_point=path, raise_on_deleted_version=True)
    assert got["data"]["data"] == {"k": "v"}

    r = client.sys.disable_secrets_engine(path)
    assert r.status_code == 204
    assert f"{path}/" not in client.sys.list_mounted_secrets_engines()["data"]
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version("a", mount_point=path, raise_on_deleted_version=True)


def test_remount_at_same_path_starts_empty(client):
    path = uid("kv")
    client.sys.enable_secrets_engine("kv-v2", path=path)
    client.secrets.kv.v2.create_or_update_secret("gone", {"k": "v"}, mount_point=path)
    client.sys.disable_secrets_engine(path)
    client.sys.enable_secrets_engine("kv-v2", path=path)
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version("gone", mount_point=path, raise_on_deleted_version=True)


def test_enable_on_a_used_path_is_400(client):
    path = uid("kv")
    client.sys.enable_secrets_engine("kv-v2", path=path)
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine("kv-v2", path=path)
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine("kv-v2", path="secret")


def test_enable_unknown_type_is_400(client):
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine("no-such-engine-type", path=uid("x"))


def test_tune_mount_configuration(client):
    path = uid("kv")
    client.sys.enable_secrets_engine("kv-v2", path=path)
    r = client.sys.tune_mount_configuration(path, default_lease_ttl="30m", max_lease_ttl="2h", description="tuned")
    assert r.status_code == 204, r.text
    conf = client.sys.read_mount_configuration(path)["data"]
    assert conf["default_lease_ttl"] == 1800
    assert conf["max_lease_ttl"] == 7200
    assert conf["description"] == "tuned"
    entry = client.sys.list_mounted_secrets_engines()["data"][f"{path}/"]
    assert entry["description"] == "tuned"
    assert entry["config"]["default_lease_ttl"] == 1800
    assert entry["config"]["max_lease_ttl"] == 7200


def test_tune_unknown_mount_is_400(client):
    with pytest.raises((exceptions.InvalidRequest, exceptions.InvalidPath)):
        client.sys.tune_mount_configuration(uid("none"), max_lease_ttl="1h")


def test_mounts_need_a_token(dev_server):
    r = requests.get(dev_server.url("sys/mounts"), timeout=10)
    assert r.status_code == 403, r.text
    r = requests.post(dev_server.url(f"sys/mounts/{uid('kv')}"), json={"type": "kv"}, timeout=10)
    assert r.status_code == 403, r.text


# --- sys/rotate and sys/key-status ---------------------------------------------------------


def test_key_status_and_rotate(client):
    st = client.sys.get_encryption_key_status()["data"]
    term = st["term"]
    assert isinstance(term, int) and term >= 1
    assert "install_time" in st

    path = uid("rot")
    client.secrets.kv.v2.create_or_update_secret(path, {"before": "rotation"})
    r = client.sys.rotate_encryption_key()
    assert r.status_code == 204, r.text
    st2 = client.sys.get_encryption_key_status()["data"]
    assert st2["term"] == term + 1
    assert st2["install_time"] >= st["install_time"]

    # Data written under the old term still reads; new writes work.
    got = client.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
    assert got["data"]["data"] == {"before": "rotation"}
    client.secrets.kv.v2.create_or_update_secret(path, {"after": "rotation"})
    got = client.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
    assert got["data"]["data"] == {"after": "rotation"}


def test_rotate_needs_a_token(dev_server):
    assert requests.put(dev_server.url("sys/rotate"), timeout=10).status_code == 403
    assert requests.get(dev_server.url("sys/key-status"), timeout=10).status_code == 403


def test_rotate_then_seal_unseal_and_restart_reads_old_and_new(unsealed_prod):
    c = unsealed_prod.client()
    c.sys.enable_secrets_engine("kv-v2", path="kv")
    c.secrets.kv.v2.create_or_update_secret("old", {"v": "1"}, mount_point="kv")
    c.sys.rotate_encryption_key()
    c.sys.rotate_encryption_key()
    c.secrets.kv.v2.create_or_update_secret("new", {"v": "2"}, mount_point="kv")
    term = c.sys.get_encryption_key_status()["data"]["term"]
    assert term == 3

    c.sys.seal()
    c.sys.submit_unseal_keys(unsealed_prod.keys[:2])
    unsealed_prod.prod.restart()
    c = unsealed_prod.client()
    c.sys.submit_unseal_keys(unsealed_prod.keys[1:])
    assert c.sys.get_encryption_key_status()["data"]["term"] == 3
    for path, v in (("old", "1"), ("new", "2")):
        got = c.secrets.kv.v2.read_secret_version(path, mount_point="kv", raise_on_deleted_version=True)
        assert got["data"]["data"] == {"v": v}


def test_nested_mount_path(client):
    path = f"{uid('team')}/kv"
    client.sys.enable_secrets_engine("kv-v2", path=path)
    assert f"{path}/" in client.sys.list_mounted_secrets_engines()["data"]
    client.secrets.kv.v2.create_or_update_secret("a", {"k": "v"}, mount_point=path)
    got = client.secrets.kv.v2.read_secret_version("a", mount_point=path, raise_on_deleted_version=True)
    assert got["data"]["data"] == {"k": "v"}
    client.sys.disable_secrets_engine(path)


def test_overlapping_mount_is_400(client):
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine("kv-v2", path=f"secret/{uid('inner')}")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine("kv-v2", path="sys")
