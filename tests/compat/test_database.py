"""Database secrets engine (PostgreSQL) through hvac, against real PostgreSQL.

Needs COFFER_TEST_PG_URL (the shared trust-auth server); every test skips
with a notice when it is unset. Logins are checked with psql.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
import urllib.parse

import hvac
import pytest
from hvac import exceptions

from conftest import uid

PG_URL = os.environ.get("COFFER_TEST_PG_URL", "")
pytestmark = pytest.mark.skipif(not PG_URL, reason="COFFER_TEST_PG_URL is not set: no PostgreSQL to test against")

CREATION = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
]


def psql_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
    return found[-1] if found else (shutil.which("psql") or "psql")


def pg_parts() -> urllib.parse.ParseResult:
    return urllib.parse.urlparse(PG_URL)


def psql(sql: str, user: str | None = None, password: str = "") -> subprocess.CompletedProcess:
    u = pg_parts()
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    return subprocess.run(
        [psql_bin(), "-X", "-w", "-tA", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432),
         "-U", user or u.username or "postgres", "-d", u.path.lstrip("/") or "postgres", "-c", sql],
        capture_output=True, text=True, env=env, timeout=30,
    )


def role_exists(name: str) -> bool:
    r = psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{name}'")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip() == "1"


def can_login(user: str, password: str) -> bool:
    r = psql("SELECT current_user", user=user, password=password)
    return r.returncode == 0 and r.stdout.strip() == user


def templated_url() -> str:
    u = pg_parts()
    return f"postgresql://{{{{username}}}}:{{{{password}}}}@{u.hostname}:{u.port or 5432}{u.path}?sslmode=disable"


def mount_and_configure(client: hvac.Client) -> str:
    mount = uid("db")
    client.sys.enable_secrets_engine("database", path=mount)
    client.secrets.database.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        allowed_roles=["*"],
        connection_url=templated_url(),
        username=pg_parts().username or "postgres",
        password="unused-" + uid("p"),
        mount_point=mount,
    )
    return mount


def test_configure_read_list_and_delete_connection(client):
    mount = mount_and_configure(client)
    got = client.secrets.database.read_connection("pg", mount_point=mount)["data"]
    assert got["plugin_name"] == "postgresql-database-plugin"
    assert got["allowed_roles"] == ["*"]
    assert got["connection_details"]["connection_url"] == templated_url()
    assert "password" not in got["connection_details"]
    assert client.secrets.database.list_connections(mount_point=mount)["data"]["keys"] == ["pg"]
    with pytest.raises(exceptions.InvalidRequest):
        client.secrets.database.configure(
            name="bad", plugin_name="mysql-database-plugin", connection_url="x", mount_point=mount
        )
    client.secrets.database.reset_connection("pg", mount_point=mount)
    client.secrets.database.delete_connection("pg", mount_point=mount)
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.database.read_connection("pg", mount_point=mount)


def test_roles_credentials_and_lease_calls(client):
    mount = mount_and_configure(client)
    client.secrets.database.create_role(
        name="ro", db_name="pg", creation_statements=CREATION, default_ttl="1h", max_ttl="2h", mount_point=mount
    )
    role = client.secrets.database.read_role("ro", mount_point=mount)["data"]
    assert role["db_name"] == "pg"
    assert role["creation_statements"] == CREATION
    assert role["default_ttl"] == 3600 and role["max_ttl"] == 7200
    assert client.secrets.database.list_roles(mount_point=mount)["data"]["keys"] == ["ro"]

    creds = client.secrets.database.generate_credentials("ro", mount_point=mount)
    user, password = creds["data"]["username"], creds["data"]["password"]
    lease_id = creds["lease_id"]
    assert lease_id.startswith(f"{mount}/creds/ro/")
    assert creds["lease_duration"] == 3600 and creds["renewable"] is True
    assert role_exists(user) and can_login(user, password)

    lease = client.sys.read_lease(lease_id)["data"]
    assert lease["id"] == lease_id and lease["renewable"] is True
    assert 3500 < lease["ttl"] <= 3600
    renewed = client.sys.renew_lease(lease_id, increment=120)
    assert renewed["lease_id"] == lease_id and renewed["lease_duration"] == 120

    client.sys.revoke_lease(lease_id)
    assert not role_exists(user)
    assert not can_login(user, password)

    client.secrets.database.delete_role("ro", mount_point=mount)
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.database.read_role("ro", mount_point=mount)
    with pytest.raises(exceptions.InvalidRequest):
        client.secrets.database.generate_credentials("ro", mount_point=mount)


def test_revoke_prefix_drops_every_user_of_a_role(client):
    mount = mount_and_configure(client)
    client.secrets.database.create_role(name="many", db_name="pg", creation_statements=CREATION, mount_point=mount)
    users = [client.secrets.database.generate_credentials("many", mount_point=mount)["data"]["username"] for _ in range(3)]
    assert all(role_exists(u) for u in users)
    client.sys.revoke_prefix(f"{mount}/creds/many")
    assert not any(role_exists(u) for u in users)


def test_static_role_and_root_rotation_calls(client):
    # The shared server trusts every login, so this checks the API shapes and
    # the rotation bookkeeping; crates/coffer/tests/database_pg.rs proves the
    # passwords change on a scram-sha-256 cluster.
    mount = mount_and_configure(client)
    name = "st_" + uid("u").replace("-", "_")
    r = psql(f"CREATE ROLE {name} LOGIN")
    assert r.returncode == 0, r.stderr
    try:
        client.secrets.database.create_static_role(
            name="st", db_name="pg", username=name,
            rotation_statements=["ALTER USER \"{{name}}\" WITH PASSWORD '{{password}}';"],
            rotation_period=3600, mount_point=mount,
        )
        role = client.secrets.database.read_static_role("st", mount_point=mount)["data"]
        assert role["username"] == name and role["rotation_period"] == 3600
        assert client.secrets.database.list_static_roles(mount_point=mount)["data"]["keys"] == ["st"]
        c1 = client.secrets.database.get_static_credentials("st", mount_point=mount)["data"]
        assert c1["username"] == name and len(c1["password"]) >= 20
        assert 3500 < c1["ttl"] <= 3600 and c1["rotation_period"] == 3600
        time.sleep(1.1)
        client.secrets.database.rotate_static_role_credentials("st", mount_point=mount)
        c2 = client.secrets.database.get_static_credentials("st", mount_point=mount)["data"]
        assert c2["password"] != c1["password"]
        assert c2["last_vault_rotation"] > c1["last_vault_rotation"]
        # A cron schedule instead of a period (hvac has no parameter for it: raw write).
        client.write_data(f"{mount}/static-roles/sched", data=dict(
            db_name="pg", username=name, rotation_schedule="*/30 * * * *", rotation_window="1h"))
        sched = client.secrets.database.get_static_credentials("sched", mount_point=mount)["data"]
        assert sched["rotation_schedule"] == "*/30 * * * *" and sched["rotation_window"] == 3600
        assert sched["rotation_period"] == 0 and 0 <= sched["ttl"] <= 1800
        with pytest.raises(exceptions.InvalidRequest):
            client.write_data(f"{mount}/static-roles/both", data=dict(
                db_name="pg", username=name, rotation_schedule="* * * * *", rotation_period=60))
        client.secrets.database.delete_static_role("sched", mount_point=mount)
        with pytest.raises(exceptions.InvalidRequest):
            client.secrets.database.create_role(name="st", db_name="pg", creation_statements=CREATION, mount_point=mount)

        # rotate-root on a dedicated superuser so the shared admin is untouched.
        root = "root_" + uid("r").replace("-", "_")
        assert psql(f"CREATE ROLE {root} LOGIN SUPERUSER").returncode == 0
        try:
            client.secrets.database.configure(
                name="rootrot", plugin_name="postgresql-database-plugin", allowed_roles=["*"],
                connection_url=templated_url(), username=root, password="x-" + uid("p"), mount_point=mount,
            )
            client.secrets.database.rotate_root_credentials("rootrot", mount_point=mount)
            r = psql(f"SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = '{root}'")
            assert r.stdout.strip() == "t", r
        finally:
            psql(f"DROP ROLE IF EXISTS {root}")
        client.secrets.database.delete_static_role("st", mount_point=mount)
    finally:
        psql(f"DROP ROLE IF EXISTS {name}")


def test_lease_ended_while_down_is_revoked_at_unseal(unsealed_prod):
    c = unsealed_prod.client()
    mount = mount_and_configure(c)
    c.secrets.database.create_role(
        name="brief", db_name="pg", creation_statements=CREATION, default_ttl="4s", mount_point=mount
    )
    user = c.secrets.database.generate_credentials("brief", mount_point=mount)["data"]["username"]
    assert role_exists(user)
    unsealed_prod.prod.server.stop()
    time.sleep(6)
    assert role_exists(user), "nothing revoked while the server was down"
    unsealed_prod.prod.restart()
    unsealed_prod.prod.client().sys.submit_unseal_keys(unsealed_prod.keys[:2])
    deadline = time.monotonic() + 15
    while role_exists(user) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not role_exists(user), "expired lease not revoked after restart and unseal"


def test_credentials_follow_the_connections_password_policy(client):
    """Vault's `password_policy` on a connection: dynamic passwords follow it;
    a policy that could put a quote into the SQL literal is refused."""
    pins = uid("pins")
    client.write_data(
        f"sys/policies/password/{pins}",
        data={"policy": 'length = 24\nrule "charset" {\n  charset = "0123456789"\n  min-chars = 24\n}\n'},
    )
    quoted = uid("quoted")
    client.write_data(
        f"sys/policies/password/{quoted}",
        data={"policy": 'length = 8\nrule "charset" {\n  charset = "ab\'"\n}\n'},
    )
    mount = mount_and_configure(client)
    client.secrets.database.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        allowed_roles=["*"],
        connection_url=templated_url(),
        username=pg_parts().username or "postgres",
        password="unused-" + uid("p"),
        password_policy=pins,
        mount_point=mount,
    )
    client.secrets.database.create_role(name="pp", db_name="pg", creation_statements=CREATION, mount_point=mount)
    creds = client.secrets.database.generate_credentials("pp", mount_point=mount)
    user, password = creds["data"]["username"], creds["data"]["password"]
    assert len(password) == 24 and password.isdigit(), password
    assert can_login(user, password)
    client.sys.revoke_lease(creds["lease_id"])
    client.secrets.database.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        allowed_roles=["*"],
        connection_url=templated_url(),
        username=pg_parts().username or "postgres",
        password="unused-" + uid("p"),
        password_policy=quoted,
        mount_point=mount,
    )
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.secrets.database.generate_credentials("pp", mount_point=mount)
    assert "cannot be placed in SQL" in str(e.value)
