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
