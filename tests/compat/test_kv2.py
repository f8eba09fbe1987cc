"""KV v2 through hvac's client.secrets.kv.v2 methods, checked against Vault's documented behaviour."""

from __future__ import annotations

import re

import pytest
from hvac import exceptions

from conftest import uid

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def go_duration_seconds(text: str) -> float:
    """Seconds in a Go duration string such as "1h30m0s" or "0s"."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", text):
        total += float(num) * units[unit]
    return total


@pytest.fixture
def kv(client):
    """The KV v2 API of the dev server's secret/ mount."""
    return client.secrets.kv.v2


@pytest.fixture
def mount(client):
    """A fresh KV v2 mount (for tests that change mount-wide config)."""
    path = uid("kvm")
    client.sys.enable_secrets_engine("kv-v2", path=path)
    yield path
    client.sys.disable_secrets_engine(path)


def read(kv, path, version=None, mount_point="secret"):
    return kv.read_secret_version(path, version=version, mount_point=mount_point, raise_on_deleted_version=True)


def test_create_returns_version_metadata(kv):
    path = uid()
    resp = kv.create_or_update_secret(path, {"user": "app", "n": 1, "nested": {"x": [1, 2]}})
    meta = resp["data"]
    assert meta["version"] == 1
    assert meta["destroyed"] is False
    assert meta["deletion_time"] == ""
    assert RFC3339.match(meta["created_time"]), meta
    assert "custom_metadata" in meta
    assert "data" not in meta, "a write answers with the version metadata only"

    got = read(kv, path)["data"]
    assert got["data"] == {"user": "app", "n": 1, "nested": {"x": [1, 2]}}
    assert got["metadata"]["version"] == 1
    assert got["metadata"]["created_time"] == meta["created_time"]


def test_versions_read_by_number_and_latest(kv):
    path = uid()
    for i in range(1, 4):
        assert kv.create_or_update_secret(path, {"i": i})["data"]["version"] == i
    assert read(kv, path)["data"]["data"] == {"i": 3}
    assert read(kv, path, version=0)["data"]["data"] == {"i": 3}
    assert read(kv, path, version=1)["data"]["data"] == {"i": 1}
    assert read(kv, path, version=2)["data"]["metadata"]["version"] == 2
    with pytest.raises(exceptions.InvalidPath):
        read(kv, path, version=9)


def test_missing_secret_is_404(kv):
    with pytest.raises(exceptions.InvalidPath):
        read(kv, uid("missing"))


def test_cas(kv):
    path = uid()
    kv.create_or_update_secret(path, {"a": "1"}, cas=0)
    with pytest.raises(exceptions.InvalidRequest):
        kv.create_or_update_secret(path, {"a": "2"}, cas=0)  # exists already
    with pytest.raises(exceptions.InvalidRequest):
        kv.create_or_update_secret(path, {"a": "2"}, cas=5)  # wrong version
    assert kv.create_or_update_secret(path, {"a": "2"}, cas=1)["data"]["version"] == 2
    assert read(kv, path)["data"]["data"] == {"a": "2"}


def test_hvac_patch_merges(kv):
    path = uid()
    kv.create_or_update_secret(path, {"a": "1", "b": "2"})
    resp = kv.patch(path, {"b": "3", "c": "4"})
    assert resp["data"]["version"] == 2
    assert read(kv, path)["data"]["data"] == {"a": "1", "b": "3", "c": "4"}


def test_hvac_patch_of_missing_secret_fails(kv):
    with pytest.raises(exceptions.InvalidPath):
        kv.patch(uid("missing"), {"a": "1"})


def test_read_metadata(kv):
    path = uid()
    kv.create_or_update_secret(path, {"a": "1"})
    kv.create_or_update_secret(path, {"a": "2"})
    md = kv.read_secret_metadata(path)["data"]
    for field in (
        "cas_required",
        "created_time",
        "current_version",
        "delete_version_after",
        "max_versions",
        "oldest_version",
        "updated_time",
        "custom_metadata",
        "versions",
    ):
        assert field in md, (field, md)
    assert md["current_version"] == 2
    assert md["oldest_version"] in (0, 1)
    assert md["max_versions"] == 0
    assert md["cas_required"] is False
    assert go_duration_seconds(md["delete_version_after"]) == 0
    assert set(md["versions"]) == {"1", "2"}
    for v in md["versions"].values():
        assert v["destroyed"] is False
        assert v["deletion_time"] == ""
        assert RFC3339.match(v["created_time"])
    assert RFC3339.match(md["created_time"]) and RFC3339.match(md["updated_time"])


def test_read_metadata_of_missing_secret_is_404(kv):
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_metadata(uid("missing"))


def test_update_metadata(kv):
    path = uid()
    kv.create_or_update_secret(path, {"a": "1"})
    r = kv.update_metadata(
        path,
        max_versions=5,
        cas_required=True,
        delete_version_after="3h25m19s",
        custom_metadata={"owner": "team-a", "ticket": "OPS-1"},
    )
    assert r.status_code == 204, r.text
    md = kv.read_secret_metadata(path)["data"]
    assert md["max_versions"] == 5
    assert md["cas_required"] is True
    assert go_duration_seconds(md["delete_version_after"]) == 3 * 3600 + 25 * 60 + 19
    assert md["custom_metadata"] == {"owner": "team-a", "ticket": "OPS-1"}
    assert md["current_version"] == 1, "a metadata write creates no version"
    assert read(kv, path)["data"]["metadata"]["custom_metadata"] == {"owner": "team-a", "ticket": "OPS-1"}


def test_metadata_on_a_new_path_creates_no_version(kv):
    path = uid()
    kv.update_metadata(path, max_versions=3)
    md = kv.read_secret_metadata(path)["data"]
    assert md["max_versions"] == 3
    assert md["current_version"] == 0
    assert md["versions"] == {}
    with pytest.raises(exceptions.InvalidPath):
        read(kv, path)
    assert kv.create_or_update_secret(path, {"a": "1"})["data"]["version"] == 1


def test_custom_metadata_must_be_strings(client):
    path = uid()
    client.secrets.kv.v2.create_or_update_secret(path, {"a": "1"})
    r = client.adapter.post(
        f"/v1/secret/metadata/{path}", json={"custom_metadata": {"n": {"nested": True}}}, raise_exception=False
    )
    assert r.status_code == 400, r.text


def test_cas_required_on_key(kv):
    path = uid()
    kv.create_or_update_secret(path, {"a": "1"})
    kv.update_metadata(path, cas_required=True)
    with pytest.raises(exceptions.InvalidRequest):
        kv.create_or_update_secret(path, {"a": "2"})
    assert kv.create_or_update_secret(path, {"a": "2"}, cas=1)["data"]["version"] == 2


def test_max_versions_prunes_oldest(kv):
    path = uid()
    kv.update_metadata(path, max_versions=2)
    for i in range(1, 5):
        kv.create_or_update_secret(path, {"i": i})
    md = kv.read_secret_metadata(path)["data"]
    assert md["current_version"] == 4
    assert md["oldest_version"] == 3
    assert set(md["versions"]) == {"3", "4"}
    with pytest.raises(exceptions.InvalidPath):
        read(kv, path, version=1)
    assert read(kv, path, version=3)["data"]["data"] == {"i": 3}


def test_mount_default_max_versions_is_10(kv):
    path = uid()
    for i in range(1, 13):
        kv.create_or_update_secret(path, {"i": i})
    md = kv.read_secret_metadata(path)["data"]
    assert md["current_version"] == 12
    assert set(md["versions"]) == {str(i) for i in range(3, 13)}
    assert md["oldest_version"] == 3


def test_mount_configuration(client, mount):
    kv = client.secrets.kv.v2
    conf = kv.read_configuration(mount_point=mount)["data"]
    assert conf["cas_required"] is False
    assert conf["max_versions"] == 0
    assert go_duration_seconds(conf["delete_version_after"]) == 0

    r = kv.configure(max_versions=3, cas_required=True, delete_version_after="1h", mount_point=mount)
    assert r.status_code == 204, r.text
    conf = kv.read_configuration(mount_point=mount)["data"]
    assert conf["max_versions"] == 3
    assert conf["cas_required"] is True
    assert go_duration_seconds(conf["delete_version_after"]) == 3600

    # cas_required on the mount applies to every key.
    with pytest.raises(exceptions.InvalidRequest):
        kv.create_or_update_secret("k", {"a": "1"}, mount_point=mount)
    kv.create_or_update_secret("k", {"a": "1"}, cas=0, mount_point=mount)
    for i in range(2, 6):
        kv.create_or_update_secret("k", {"a": str(i)}, cas=i - 1, mount_point=mount)
    md = kv.read_secret_metadata("k", mount_point=mount)["data"]
    assert set(md["versions"]) == {"3", "4", "5"}, "mount max_versions applies"


def test_list_secrets(kv):
    base = uid("dir")
    for p in ("a", "b", "sub/c", "sub/deeper/d"):
        kv.create_or_update_secret(f"{base}/{p}", {"p": p})
    keys = kv.list_secrets(base)["data"]["keys"]
    assert sorted(keys) == ["a", "b", "sub/"]
    assert sorted(kv.list_secrets(f"{base}/sub")["data"]["keys"]) == ["c", "deeper/"]
    assert f"{base}/" in kv.list_secrets("")["data"]["keys"]


def test_list_missing_is_404(kv):
    with pytest.raises(exceptions.InvalidPath):
        kv.list_secrets(uid("nothing-here"))


def test_delete_latest_then_undelete(kv):
    path = uid()
    kv.create_or_update_secret(path, {"a": "1"})
    kv.create_or_update_secret(path, {"a": "2"})
    r = kv.delete_latest_version_of_secret(path)
    assert r.status_code == 204

    with pytest.raises(exceptions.InvalidPath) as e:
        read(kv, path)
    body = e.value.json
    assert body["data"]["data"] is None
    assert body["data"]["metadata"]["version"] == 2
    assert RFC3339.match(body["data"]["metadata"]["deletion_time"])
    assert body["data"]["metadata"]["destroyed"] is False
    # hvac's raise_on_deleted_version=False returns that body.
    soft = kv.read_secret_version(path, raise_on_deleted_version=False)
    assert soft["data"]["metadata"]["version"] == 2
    assert read(kv, path, version=1)["data"]["data"] == {"a": "1"}
    md = kv.read_secret_metadata(path)["data"]
    assert md["versions"]["2"]["deletion_time"] != ""

    r = kv.undelete_secret_versions(path, versions=[2])
    assert r.status_code == 204
    assert read(kv, path)["data"]["data"] == {"a": "2"}
    assert kv.read_secret_metadata(path)["data"]["versions"]["2"]["deletion_time"] == ""


def test_delete_specific_versions(kv):
    path = uid()
    for i in range(1, 4):
        kv.create_or_update_secret(path, {"i": i})
    r = kv.delete_secret_versions(path, versions=[1, 2])
    assert r.status_code == 204
    for v in (1, 2):
        with pytest.raises(exceptions.InvalidPath) as e:
            read(kv, path, version=v)
        assert e.value.json["data"]["metadata"]["deletion_time"] != ""
    assert read(kv, path)["data"]["data"] == {"i": 3}
    kv.undelete_secret_versions(path, versions=[1])
    assert read(kv, path, version=1)["data"]["data"] == {"i": 1}


def test_destroy_versions(kv):
    path = uid()
    kv.create_or_update_secret(path, {"a": "1"})
    kv.create_or_update_secret(path, {"a": "2"})
    r = kv.destroy_secret_versions(path, versions=[2])
    assert r.status_code == 204
    with pytest.raises(exceptions.InvalidPath) as e:
        read(kv, path)
    body = e.value.json
    assert body["data"]["data"] is None
    assert body["data"]["metadata"]["destroyed"] is True
    assert body["data"]["metadata"]["version"] == 2
    assert kv.read_secret_metadata(path)["data"]["versions"]["2"]["destroyed"] is True
    # A destroyed version cannot be undeleted.
    kv.undelete_secret_versions(path, versions=[2])
    with pytest.raises(exceptions.InvalidPath):
        read(kv, path)
    assert read(kv, path, version=1)["data"]["data"] == {"a": "1"}


def test_version_list_must_not_be_empty(client):
    path = uid()
    client.secrets.kv.v2.create_or_update_secret(path, {"a": "1"})
    for action in ("delete", "undelete", "destroy"):
        r = client.adapter.post(f"/v1/secret/{action}/{path}", json={"versions": []}, raise_exception=False)
        assert r.status_code == 400, (action, r.text)


def test_delete_metadata_and_all_versions(kv):
    base = uid("dir")
    path = f"{base}/gone"
    kv.create_or_update_secret(path, {"a": "1"})
    kv.create_or_update_secret(f"{base}/stays", {"a": "1"})
    r = kv.delete_metadata_and_all_versions(path)
    assert r.status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_metadata(path)
    with pytest.raises(exceptions.InvalidPath):
        read(kv, path, version=1)
    assert kv.list_secrets(base)["data"]["keys"] == ["stays"]
    # The path is free again: a new write starts at version 1.
    assert kv.create_or_update_secret(path, {"a": "new"})["data"]["version"] == 1


def test_write_to_a_disabled_or_missing_mount_is_404(client):
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.kv.v2.create_or_update_secret("x", {"a": "1"}, mount_point=uid("nomount"))


def test_delete_version_after_expires_versions(kv):
    import time

    path = uid()
    kv.update_metadata(path, delete_version_after="2s")
    meta = kv.create_or_update_secret(path, {"a": "1"})["data"]
    # Vault sets the future deletion time on the version at write time.
    assert RFC3339.match(meta["deletion_time"]), meta
    assert read(kv, path)["data"]["data"] == {"a": "1"}
    time.sleep(3)
    with pytest.raises(exceptions.InvalidPath) as e:
        read(kv, path)
    assert e.value.json["data"]["metadata"]["version"] == 1
    assert e.value.json["data"]["metadata"]["deletion_time"] != ""
    assert e.value.json["data"]["metadata"]["destroyed"] is False


def test_soft_deleted_and_destroyed_keys_stay_listed(kv):
    base = uid("dir")
    kv.create_or_update_secret(f"{base}/soft", {"a": "1"})
    kv.create_or_update_secret(f"{base}/hard", {"a": "1"})
    kv.delete_latest_version_of_secret(f"{base}/soft")
    kv.destroy_secret_versions(f"{base}/hard", versions=[1])
    # Only a metadata delete removes a key from listings.
    assert sorted(kv.list_secrets(base)["data"]["keys"]) == ["hard", "soft"]


def test_list_is_sorted(kv):
    base = uid("dir")
    names = ["zeta", "alpha", "Mid", "beta/", "0num"]
    for n in names:
        kv.create_or_update_secret(f"{base}/{n.rstrip('/')}{'/x' if n.endswith('/') else ''}", {"a": "1"})
    keys = kv.list_secrets(base)["data"]["keys"]
    assert keys == sorted(keys)
    assert set(keys) == set(names)


def test_values_round_trip_exactly(kv):
    path = uid()
    data = {
        "unicode": "pässwörd-🔑-密码",
        "empty": "",
        "int": 42,
        "float": 1.5,
        "bool": True,
        "null": None,
        "list": [1, "two", {"three": 3}],
        "nested": {"a": {"b": {"c": "d"}}},
        "quote\"key": "line\nbreak\ttab",
    }
    kv.create_or_update_secret(path, data)
    assert read(kv, path)["data"]["data"] == data


def test_custom_metadata_limits(client):
    # Vault: at most 64 keys, keys up to 128 bytes, values up to 512 bytes.
    path = uid()
    client.secrets.kv.v2.create_or_update_secret(path, {"a": "1"})
    kv = client.secrets.kv.v2
    with pytest.raises(exceptions.InvalidRequest):
        kv.update_metadata(path, custom_metadata={f"k{i}": "v" for i in range(65)})
    with pytest.raises(exceptions.InvalidRequest):
        kv.update_metadata(path, custom_metadata={"k" * 129: "v"})
    with pytest.raises(exceptions.InvalidRequest):
        kv.update_metadata(path, custom_metadata={"k": "v" * 513})
    kv.update_metadata(path, custom_metadata={f"k{i}": "v" * 512 for i in range(64)})
    assert len(kv.read_secret_metadata(path)["data"]["custom_metadata"]) == 64


def test_write_without_data_is_400(client):
    r = client.adapter.post(f"/v1/secret/data/{uid()}", json={"options": {}}, raise_exception=False)
    assert r.status_code == 400, r.text


def _race(n, fn):
    """Run fn(i) on n threads at once; return the list of results or exceptions."""
    import threading

    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - collected and checked by the caller
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize("cas", [0, 1])
def test_concurrent_cas_writes_have_exactly_one_winner(dev_server, cas):
    import hvac

    path = uid("race")
    if cas == 1:
        hvac.Client(url=dev_server.addr, token=dev_server.token).secrets.kv.v2.create_or_update_secret(
            path, {"w": "seed"}
        )

    def write(i):
        c = hvac.Client(url=dev_server.addr, token=dev_server.token, timeout=30)
        return c.secrets.kv.v2.create_or_update_secret(path, {"w": str(i)}, cas=cas)

    results = _race(16, write)
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, exceptions.InvalidRequest)]
    assert len(wins) == 1, results
    assert len(losses) == 15, results
    md = hvac.Client(url=dev_server.addr, token=dev_server.token).secrets.kv.v2.read_secret_metadata(path)["data"]
    assert md["current_version"] == cas + 1
    assert wins[0]["data"]["version"] == cas + 1


def test_concurrent_writes_get_distinct_versions(dev_server):
    import hvac

    path = uid("race")

    def write(i):
        c = hvac.Client(url=dev_server.addr, token=dev_server.token, timeout=30)
        return c.secrets.kv.v2.create_or_update_secret(path, {"w": str(i)})["data"]["version"]

    versions = _race(16, write)
    assert sorted(versions) == list(range(1, 17)), versions
