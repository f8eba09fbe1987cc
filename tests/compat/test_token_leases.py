"""Token leases and batch tokens through hvac: a login's lease is listed,
looked up and revoked by prefix through ``client.sys``; batch tokens are
created, looked up and refused renewal through ``client.auth.token``.
"""

from __future__ import annotations

import secrets

import hvac
import pytest
from hvac import exceptions

from conftest import start_dev_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dev server of this module's own (its logins do not count against others)."""
    workdir = tmp_path_factory.mktemp("token-leases")
    srv, token = start_dev_server(workdir)
    yield srv, token
    srv.stop()


def test_login_leases_are_listed_looked_up_and_revoked_by_prefix(server):
    srv, token = server
    root = hvac.Client(url=srv.addr, token=token, timeout=30)
    root.sys.enable_auth_method("userpass")
    pw = "pw-" + secrets.token_urlsafe(12)
    root.auth.userpass.create_or_update_user("carol", pw, token_ttl="1h")
    user = hvac.Client(url=srv.addr, timeout=30)
    user.auth.userpass.login("carol", pw)
    assert user.is_authenticated()

    keys = root.sys.list_leases("auth/userpass/login/carol/")["data"]["keys"]
    assert len(keys) == 1 and keys[0].startswith("h")
    lease_id = f"auth/userpass/login/carol/{keys[0]}"
    lease = root.sys.read_lease(lease_id)["data"]
    assert lease["id"] == lease_id
    assert lease["renewable"] is True
    assert 0 < lease["ttl"] <= 3600
    with pytest.raises(exceptions.InvalidRequest, match="tokens cannot be renewed"):
        root.sys.renew_lease(lease_id)

    root.sys.revoke_prefix("auth/userpass/login/carol")
    assert not user.is_authenticated()
    with pytest.raises(exceptions.InvalidPath):
        root.sys.list_leases("auth/userpass/login/carol/")


def test_batch_tokens(server):
    srv, token = server
    root = hvac.Client(url=srv.addr, token=token, timeout=30)
    auth = root.auth.token.create(type="batch", policies=["p"], ttl="10m")["auth"]
    assert auth["token_type"] == "batch"
    assert auth["accessor"] == ""
    assert auth["renewable"] is False
    batch = hvac.Client(url=srv.addr, token=auth["client_token"], timeout=30)
    looked = batch.auth.token.lookup_self()["data"]
    assert looked["type"] == "batch"
    assert looked["policies"] == ["default", "p"]
    with pytest.raises(exceptions.InvalidRequest, match="batch tokens cannot be renewed"):
        batch.auth.token.renew_self()
    with pytest.raises(exceptions.InvalidRequest, match="batch tokens cannot be root tokens"):
        root.auth.token.create(type="batch")
    # An accessor whose token is gone revokes idempotently, as Vault's.
    svc = root.auth.token.create(policies=["p"], ttl="10m")["auth"]
    root.auth.token.revoke_accessor(svc["accessor"])
    root.auth.token.revoke_accessor(svc["accessor"])
