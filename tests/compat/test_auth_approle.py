"""AppRole auth through hvac's ``client.auth.approle``: roles, RoleIDs,
SecretIDs (generated and custom, by value and by accessor), login, and the
least-privilege result: the app's token reads its paths and nothing else.

The module runs its own dev server so that its deliberate login failures do
not count against the shared server's per-address login rate limit.
"""

from __future__ import annotations

import secrets

import hvac
import pytest
from hvac import exceptions

from conftest import start_dev_server, uid

BILLING_POLICY = 'path "secret/data/billing/*" {\n  capabilities = ["read"]\n}\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dev server of this module's own, with AppRole and a billing policy."""
    workdir = tmp_path_factory.mktemp("approle")
    srv, token = start_dev_server(workdir)
    c = hvac.Client(url=srv.addr, token=token, timeout=30)
    c.sys.enable_auth_method("approle")
    c.sys.create_or_update_policy("billing", BILLING_POLICY)
    c.secrets.kv.v2.create_or_update_secret("billing/db", {"dsn": secrets.token_hex(8)})
    c.secrets.kv.v2.create_or_update_secret("payroll/db", {"dsn": secrets.token_hex(8)})
    yield srv, token
    srv.stop()


def role_id_of(root: hvac.Client, role: str) -> str:
    return root.auth.approle.read_role_id(role)["data"]["role_id"]


def test_enable_lists_approle(root):
    methods = root.sys.list_auth_methods()["data"]
    assert methods["approle/"]["type"] == "approle"


def test_role_create_read_list_delete(root):
    name = uid("role")
    root.auth.approle.create_or_update_approle(
        name,
        token_policies=["billing"],
        token_ttl="10m",
        token_max_ttl="30m",
        secret_id_num_uses=5,
        secret_id_ttl="1h",
        token_bound_cidrs=["127.0.0.1/32"],
    )
    data = root.auth.approle.read_role(name)["data"]
    assert data["token_policies"] == ["billing"]
    assert data["token_ttl"] == 600
    assert data["token_max_ttl"] == 1800
    assert data["secret_id_num_uses"] == 5
    assert data["secret_id_ttl"] == 3600
    assert data["bind_secret_id"] is True
    assert data["secret_id_bound_cidrs"] is None  # unset: null, as OpenBao answers
    assert data["token_bound_cidrs"] == ["127.0.0.1/32"]
    assert data["token_type"] == "default"
    assert "role_id" not in data
    assert name in root.auth.approle.list_roles()["data"]["keys"]

    # An update keeps what it does not name.
    root.auth.approle.create_or_update_approle(name, token_ttl="5m")
    data = root.auth.approle.read_role(name)["data"]
    assert (data["token_ttl"], data["secret_id_num_uses"]) == (300, 5)

    root.auth.approle.delete_role(name)
    with pytest.raises(exceptions.InvalidPath):
        root.auth.approle.read_role(name)


def test_role_id_read_and_custom(root):
    a, b = uid("a"), uid("b")
    root.auth.approle.create_or_update_approle(a)
    root.auth.approle.create_or_update_approle(b)
    generated = role_id_of(root, a)
    assert len(generated) == 36
    custom = uid("rid")
    root.auth.approle.update_role_id(a, custom)
    assert role_id_of(root, a) == custom
    with pytest.raises(exceptions.InvalidRequest, match="role_id already in use"):
        root.auth.approle.update_role_id(b, custom)
    with pytest.raises(exceptions.InvalidPath):
        root.auth.approle.read_role_id(uid("missing"))


def test_login_reads_only_billing(root, anon):
    name = uid("app")
    root.auth.approle.create_or_update_approle(name, token_policies=["billing"], token_ttl="1h")
    role_id = role_id_of(root, name)
    gen = root.auth.approle.generate_secret_id(name, metadata={"team": "billing"})["data"]
    assert set(gen) >= {"secret_id", "secret_id_accessor", "secret_id_ttl", "secret_id_num_uses"}

    auth = anon.auth.approle.login(role_id, gen["secret_id"])["auth"]
    assert auth["policies"] == ["billing", "default"]
    assert auth["token_policies"] == ["billing", "default"]
    assert auth["metadata"] == {"role_name": name, "team": "billing"}
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True
    assert anon.token == auth["client_token"]

    got = anon.secrets.kv.v2.read_secret_version("billing/db", raise_on_deleted_version=True)
    assert "dsn" in got["data"]["data"]
    with pytest.raises(exceptions.Forbidden):
        anon.secrets.kv.v2.read_secret_version("payroll/db", raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        anon.secrets.kv.v2.create_or_update_secret("billing/db", {"x": "y"})
    with pytest.raises(exceptions.Forbidden):
        anon.auth.approle.generate_secret_id(name)
    with pytest.raises(exceptions.Forbidden):
        anon.auth.approle.list_roles()


def test_wrong_credentials_answer_400_like_vault(root, server):
    srv, _ = server
    name = uid("app")
    root.auth.approle.create_or_update_approle(name, token_policies=["billing"])
    role_id = role_id_of(root, name)
    fresh = hvac.Client(url=srv.addr, timeout=30)
    with pytest.raises(exceptions.InvalidRequest) as e:
        fresh.auth.approle.login(role_id, secrets.token_hex(16))
    assert e.value.errors == ["invalid role or secret ID"]
    with pytest.raises(exceptions.InvalidRequest) as e:
        fresh.auth.approle.login(uid("nobody"), secrets.token_hex(16))
    assert e.value.errors == ["invalid role or secret ID"]
    assert fresh.token is None


def test_secret_id_uses_are_counted(root, anon):
    name = uid("app")
    root.auth.approle.create_or_update_approle(name, token_policies=["billing"], secret_id_num_uses=2)
    role_id = role_id_of(root, name)
    secret_id = root.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    assert root.auth.approle.read_secret_id(name, secret_id)["data"]["secret_id_num_uses"] == 2
    anon.auth.approle.login(role_id, secret_id, use_token=False)
    assert root.auth.approle.read_secret_id(name, secret_id)["data"]["secret_id_num_uses"] == 1
    anon.auth.approle.login(role_id, secret_id, use_token=False)
    with pytest.raises(exceptions.InvalidRequest):
        anon.auth.approle.login(role_id, secret_id, use_token=False)


def test_secret_id_lookup_list_and_destroy(root, anon):
    name = uid("app")
    root.auth.approle.create_or_update_approle(name, token_policies=["billing"])
    role_id = role_id_of(root, name)
    first = root.auth.approle.generate_secret_id(name, metadata={"k": "v"}, cidr_list=["127.0.0.0/8"])["data"]
    custom_value = secrets.token_hex(16)
    second = root.auth.approle.create_custom_secret_id(name, custom_value)["data"]
    assert second["secret_id"] == custom_value

    keys = root.auth.approle.list_secret_id_accessors(name)["data"]["keys"]
    assert sorted(keys) == sorted([first["secret_id_accessor"], second["secret_id_accessor"]])

    info = root.auth.approle.read_secret_id(name, first["secret_id"])["data"]
    assert info["secret_id_accessor"] == first["secret_id_accessor"]
    assert info["metadata"] == {"k": "v"}
    assert info["cidr_list"] == ["127.0.0.0/8"]
    assert info["expiration_time"] == "0001-01-01T00:00:00Z"
    for field in ("creation_time", "last_updated_time", "secret_id_num_uses", "secret_id_ttl", "token_bound_cidrs"):
        assert field in info, field
    assert "secret_id" not in info

    by_accessor = root.auth.approle.read_secret_id_accessor(name, second["secret_id_accessor"])["data"]
    assert by_accessor["secret_id_accessor"] == second["secret_id_accessor"]

    root.auth.approle.destroy_secret_id(name, first["secret_id"])
    with pytest.raises(exceptions.InvalidRequest):
        anon.auth.approle.login(role_id, first["secret_id"], use_token=False)
    root.auth.approle.destroy_secret_id_accessor(name, second["secret_id_accessor"])
    with pytest.raises(exceptions.InvalidPath):
        root.auth.approle.read_secret_id_accessor(name, second["secret_id_accessor"])
    with pytest.raises(exceptions.InvalidPath):
        root.auth.approle.list_secret_id_accessors(name)


def test_secret_id_cidr_binding(root, anon):
    name = uid("app")
    root.auth.approle.create_or_update_approle(name, token_policies=["billing"])
    role_id = role_id_of(root, name)
    elsewhere = root.auth.approle.generate_secret_id(name, cidr_list=["10.0.0.0/8"])["data"]["secret_id"]
    with pytest.raises(exceptions.InvalidRequest):
        anon.auth.approle.login(role_id, elsewhere, use_token=False)
    here = root.auth.approle.generate_secret_id(name, cidr_list=["127.0.0.1/32"])["data"]["secret_id"]
    anon.auth.approle.login(role_id, here, use_token=False)


def test_generate_for_missing_role_is_404(root):
    with pytest.raises(exceptions.InvalidPath):
        root.auth.approle.generate_secret_id(uid("missing"))


def test_tidy_secret_id(root, server):
    srv, token = server
    import requests

    r = requests.post(f"{srv.addr}/v1/auth/approle/tidy/secret-id", headers={"X-Vault-Token": token}, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["warnings"]
