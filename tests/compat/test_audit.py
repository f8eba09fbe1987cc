"""Audit devices through hvac's client.sys audit methods, on a server of this module's own
(enabling a device changes what every request does, so the shared dev server is left alone)."""

from __future__ import annotations

import json
import secrets

import hvac
import pytest
from hvac import exceptions

from conftest import free_port, gen_token, start_server, uid


@pytest.fixture(scope="module")
def audit_server(tmp_path_factory):
    """A dev server for this module, and its working directory."""
    workdir = tmp_path_factory.mktemp("audit")
    port = free_port()
    token = gen_token()
    # File devices may write only under the directory the server is given.
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
    yield srv, token, workdir
    srv.stop()


@pytest.fixture
def ac(audit_server) -> hvac.Client:
    """hvac client with the root token."""
    srv, token, _ = audit_server
    return hvac.Client(url=srv.addr, token=token, timeout=30)


def entries(path) -> list[dict]:
    """The JSON entries of an audit file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_enable_list_hash_disable(ac, audit_server):
    _, _, workdir = audit_server
    name = uid("file")
    log = workdir / f"{name}.log"
    ac.sys.enable_audit_device("file", options={"file_path": str(log)}, path=name, description="test log")

    listed = ac.sys.list_enabled_audit_devices()
    assert listed["data"][f"{name}/"]["type"] == "file"
    assert listed["data"][f"{name}/"]["options"] == {"file_path": str(log)}
    assert listed["data"][f"{name}/"]["description"] == "test log"
    assert f"{name}/" in listed  # Vault answers the table at the top level as well

    value = "v-" + secrets.token_hex(16)
    ac.secrets.kv.v2.create_or_update_secret(path=uid("s"), secret={"password": value})
    digest = ac.sys.calculate_hash(name, value)["data"]["hash"]
    assert digest.startswith("hmac-sha256:") and len(digest) == len("hmac-sha256:") + 64

    text = log.read_text()
    assert value not in text
    assert digest in text
    writes = [e for e in entries(log) if e["type"] == "request" and e["request"]["path"].startswith("secret/data/")]
    assert writes and writes[-1]["request"]["data"]["data"]["password"] == digest
    assert writes[-1]["auth"]["client_token"].startswith("hmac-sha256:")
    assert all("seq" in e and "prev" in e for e in entries(log))

    # The same input hashes the same way; another input does not.
    assert ac.sys.calculate_hash(name, value)["data"]["hash"] == digest
    assert ac.sys.calculate_hash(name, value + "x")["data"]["hash"] != digest

    key = ac.read(f"sys/audit/{name}/verify-key")["data"]
    assert key["algorithm"] == "ed25519" and len(key["public_key"]) == 44

    ac.sys.disable_audit_device(name)
    assert f"{name}/" not in ac.sys.list_enabled_audit_devices()["data"]
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.calculate_hash(name, value)
    # Disabling closes the log with a signed checkpoint.
    last = entries(log)[-1]
    assert last["type"] == "checkpoint" and last["checkpoint"]["reason"] == "disable"


def test_invalid_devices_are_refused(ac, audit_server):
    _, _, workdir = audit_server
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("nosuch", path=uid("x"))
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("file", options={}, path=uid("x"))
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("file", options={"file_path": str(workdir / "no" / "dir" / "a.log")}, path=uid("x"))
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("socket", options={"address": f"127.0.0.1:{free_port()}"}, path=uid("x"))
    # Files only inside the server's audit directory, never executable.
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("file", options={"file_path": "/etc/cron.d/" + uid("x")}, path=uid("x"))
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("file", options={"file_path": "../" + uid("x")}, path=uid("x"))
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("file", options={"file_path": str(workdir / "m.log"), "mode": "0777"}, path=uid("x"))
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("file", options={"file_path": str(workdir / "b.log"), "log_raw": "perhaps"}, path=uid("x"))
    name = uid("dup")
    ac.sys.enable_audit_device("file", options={"file_path": str(workdir / f"{name}.log")}, path=name)
    with pytest.raises(exceptions.InvalidRequest):
        ac.sys.enable_audit_device("file", options={"file_path": str(workdir / f"{name}.log")}, path=name)
    ac.sys.disable_audit_device(name)


def test_audit_endpoints_need_sudo(ac, audit_server):
    srv, _, workdir = audit_server
    policy = uid("auditor")
    ac.sys.create_or_update_policy(policy, 'path "sys/audit*" { capabilities = ["create", "read", "update", "delete", "list"] }')
    tok = ac.auth.token.create(policies=[policy])["auth"]["client_token"]
    limited = hvac.Client(url=srv.addr, token=tok, timeout=30)
    with pytest.raises(exceptions.Forbidden):
        limited.sys.list_enabled_audit_devices()
    with pytest.raises(exceptions.Forbidden):
        limited.sys.enable_audit_device(
            "file", options={"file_path": str(workdir / "raw.log"), "log_raw": "true"}, path=uid("raw")
        )


def test_log_raw_and_hmac_accessor_options(ac, audit_server):
    _, _, workdir = audit_server
    name = uid("raw")
    log = workdir / f"{name}.log"
    ac.sys.enable_audit_device(
        "file", options={"file_path": str(log), "log_raw": "true", "hmac_accessor": "false"}, path=name
    )
    value = "v-" + secrets.token_hex(8)
    path = uid("s")
    ac.secrets.kv.v2.create_or_update_secret(path=path, secret={"k": value})
    ac.sys.disable_audit_device(name)
    writes = [e for e in entries(log) if e["type"] == "request" and e["request"]["path"] == f"secret/data/{path}"]
    assert writes[0]["request"]["data"]["data"]["k"] == value  # log_raw: values in clear, as asked
    accessor = writes[0]["auth"]["accessor"]
    assert accessor and not accessor.startswith("hmac-sha256:")
    assert writes[0]["auth"]["client_token"] == ac.token


def test_entries_name_the_granting_policies_the_client_and_the_mount(ac, audit_server):
    """Vault's audit fields, as OpenBao 2.7 writes them: `auth.policy_results`
    (allowed, and which policies granted), `request.client_id` (the entity, or
    a hash of a token's sorted policies), the mount's class and version, and
    the client's port."""
    import base64
    import hashlib

    srv, _, workdir = audit_server
    name = uid("fields")
    log = workdir / f"{name}.log"
    ac.sys.enable_audit_device("file", options={"file_path": str(log)}, path=name)
    path = uid("p")
    ac.secrets.kv.v2.create_or_update_secret(path=path, secret={"k": "v"})
    narrow, broad = uid("narrow"), uid("broad")
    # Both policies hold a rule for the path; only `broad`'s grants read.
    ac.sys.create_or_update_policy(narrow, f'path "secret/data/{path}" {{ capabilities = ["list"] }}')
    ac.sys.create_or_update_policy(broad, f'path "secret/data/{path}" {{ capabilities = ["read", "list"] }}')
    tok = ac.auth.token.create(policies=[narrow, broad], no_default_policy=True)["auth"]["client_token"]
    user = hvac.Client(url=srv.addr, token=tok, timeout=30)
    user.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=False)
    with pytest.raises(exceptions.Forbidden):
        user.secrets.kv.v2.create_or_update_secret(path=path, secret={"k": "w"})
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=srv.addr, token="cfs.not-a-token", timeout=30).secrets.kv.v2.read_secret_version(
            path=path, raise_on_deleted_version=False
        )

    def last(pred):
        found = [e for e in entries(log) if e["type"] == "request" and pred(e)]
        assert found, "no matching audit entry"
        return found[-1]

    read = last(lambda e: e["request"]["path"] == f"secret/data/{path}" and e["request"]["operation"] == "read"
                and "client_id" in e["request"])
    assert read["auth"]["policy_results"] == {
        "allowed": True,
        "granting_policies": [{"name": broad, "namespace_id": "root", "type": "acl"}],
    }
    req = read["request"]
    expected = base64.b64encode(
        hashlib.sha256(("\x7f".join(sorted([narrow, broad])) + "\x00root").encode()).digest()
    ).decode()
    assert req["client_id"] == expected
    assert req["mount_point"] == "secret/" and req["mount_type"] == "kv" and req["mount_class"] == "secret"
    assert req["mount_running_version"].endswith("+builtin.coffer")
    assert isinstance(req["remote_port"], int) and req["remote_port"] > 0

    denied = last(lambda e: e["request"]["path"] == f"secret/data/{path}" and e["request"]["operation"] in ("create", "update")
                  and e["auth"].get("policy_results") == {"allowed": False})
    assert denied["error"]
    bogus = last(lambda e: e["request"]["path"] == f"secret/data/{path}" and "client_id" not in e["request"])
    assert "policy_results" not in bogus["auth"]

    root_read = [e for e in entries(log) if e["type"] == "response" and e["request"]["path"] in ("sys/policy/" + broad, "sys/policies/acl/" + broad)]
    assert root_read and root_read[-1]["auth"]["policy_results"]["granting_policies"][0]["name"] == "root"
    resp = root_read[-1]["response"]
    assert resp["mount_point"] == "sys/" and resp["mount_type"] == "system" and resp["mount_class"] == "secret"
    assert resp["mount_running_plugin_version"].endswith("+builtin.coffer")
    ac.sys.disable_audit_device(name)
