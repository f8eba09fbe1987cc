"""userpass auth through hvac's ``client.auth.userpass``: users, password and
policy updates, login, the least-privilege result, and Vault's user lockout.

The module runs its own dev server so that its deliberate login failures do
not count against the shared server's per-address login rate limit.
"""

from __future__ import annotations

import secrets

import hvac
import pytest
import requests
from hvac import exceptions

from conftest import start_dev_server, uid

BILLING_POLICY = 'path "secret/data/billing/*" {\n  capabilities = ["read"]\n}\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dev server of this module's own, with userpass and a billing policy."""
    workdir = tmp_path_factory.mktemp("userpass")
    srv, token = start_dev_server(workdir)
    c = hvac.Client(url=srv.addr, token=token, timeout=30)
    c.sys.enable_auth_method("userpass")
    c.sys.create_or_update_policy("billing", BILLING_POLICY)
    c.secrets.kv.v2.create_or_update_secret("billing/db", {"dsn": secrets.token_hex(8)})
    c.secrets.kv.v2.create_or_update_secret("payroll/db", {"dsn": secrets.token_hex(8)})
    yield srv, token
    srv.stop()


def password() -> str:
    """A password assembled at run time."""
    return "pw-" + secrets.token_urlsafe(12)


def test_user_create_read_list_delete(root):
    name = uid("user")
    pw = password()
    root.auth.userpass.create_or_update_user(name, pw, policies=["billing"], token_ttl="20m")
    data = root.auth.userpass.read_user(name)["data"]
    assert data["token_policies"] == ["billing"]
    assert data["policies"] == ["billing"]
    assert data["token_ttl"] == 1200
    for field in ("token_max_ttl", "token_bound_cidrs", "token_num_uses", "token_period", "token_type"):
        assert field in data, field
    assert "password" not in data and pw not in str(data)
    assert name in root.auth.userpass.list_user()["data"]["keys"]
    root.auth.userpass.delete_user(name)
    with pytest.raises(exceptions.InvalidPath):
        root.auth.userpass.read_user(name)


def test_create_without_password_is_refused(root):
    with pytest.raises(exceptions.InvalidRequest, match="missing password"):
        root.auth.userpass.create_or_update_user(uid("user"), token_policies=["billing"])


def test_usernames_are_lower_cased(root, anon):
    name = uid("Mixed")
    pw = password()
    root.auth.userpass.create_or_update_user(name, pw)
    assert name.lower() in root.auth.userpass.list_user()["data"]["keys"]
    auth = anon.auth.userpass.login(name.upper(), pw, use_token=False)["auth"]
    assert auth["metadata"] == {"username": name.lower()}


def test_login_reads_only_billing(root, anon):
    name = uid("op")
    pw = password()
    root.auth.userpass.create_or_update_user(name, pw, token_policies=["billing"], token_ttl="1h")
    auth = anon.auth.userpass.login(name, pw)["auth"]
    assert auth["policies"] == ["billing", "default"]
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True
    assert anon.token == auth["client_token"]
    assert anon.auth.token.lookup_self()["data"]["display_name"] == f"userpass-{name}"

    got = anon.secrets.kv.v2.read_secret_version("billing/db", raise_on_deleted_version=True)
    assert "dsn" in got["data"]["data"]
    with pytest.raises(exceptions.Forbidden):
        anon.secrets.kv.v2.read_secret_version("payroll/db", raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        anon.auth.userpass.list_user()


def test_wrong_password_and_unknown_user_look_alike(root, anon):
    name = uid("op")
    root.auth.userpass.create_or_update_user(name, password())
    with pytest.raises(exceptions.InvalidRequest) as known:
        anon.auth.userpass.login(name, password())
    with pytest.raises(exceptions.InvalidRequest) as unknown:
        anon.auth.userpass.login(uid("ghost"), password())
    assert known.value.errors == unknown.value.errors == ["invalid username or password"]


def test_update_password_and_policies(root, anon):
    name = uid("op")
    old, new = password(), password()
    root.auth.userpass.create_or_update_user(name, old, token_policies=["billing"])
    root.auth.userpass.update_password_on_user(name, new)
    with pytest.raises(exceptions.InvalidRequest):
        anon.auth.userpass.login(name, old, use_token=False)
    anon.auth.userpass.login(name, new, use_token=False)

    # Updating other fields keeps the password.
    root.auth.userpass.create_or_update_user(name, token_ttl="5m")
    assert anon.auth.userpass.login(name, new, use_token=False)["auth"]["lease_duration"] == 300

    srv_addr = root.url
    r = requests.post(
        f"{srv_addr}/v1/auth/userpass/users/{name}/policies",
        headers={"X-Vault-Token": root.token},
        json={"token_policies": "default"},
        timeout=30,
    )
    assert r.status_code == 204, r.text
    assert root.auth.userpass.read_user(name)["data"]["token_policies"] == ["default"]
    assert anon.auth.userpass.login(name, new, use_token=False)["auth"]["policies"] == ["default"]


def test_lockout_after_five_failures(root, anon):
    name = uid("victim")
    pw = password()
    root.auth.userpass.create_or_update_user(name, pw, token_policies=["billing"])
    for _ in range(5):
        with pytest.raises(exceptions.InvalidRequest):
            anon.auth.userpass.login(name, password(), use_token=False)
    with pytest.raises(exceptions.Forbidden):
        anon.auth.userpass.login(name, pw, use_token=False)
    # Other users are unaffected.
    other = uid("bystander")
    other_pw = password()
    root.auth.userpass.create_or_update_user(other, other_pw)
    anon.auth.userpass.login(other, other_pw, use_token=False)
