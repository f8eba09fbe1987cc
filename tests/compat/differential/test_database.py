"""The database engine on PostgreSQL: the same connection configured on
OpenBao and on Coffer, roles, credentials and their leases."""

from __future__ import annotations

import os

import pytest

from conftest import uid
from differential.harness import V

PG_URL = os.environ.get("COFFER_TEST_PG_URL", "")
pytestmark = pytest.mark.skipif(not PG_URL, reason="COFFER_TEST_PG_URL is not set: no PostgreSQL to compare on")

CREATION = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]


def conn_url() -> str:
    # postgres://user@host:port/db -> the template form both servers accept.
    rest = PG_URL.split("://", 1)[1]
    return "postgresql://{{username}}:{{password}}@" + rest.split("@", 1)[1]


def test_database_roles_and_creds(diff):
    m = uid("db")
    diff.call("POST", f"sys/mounts/{m}", {"type": "database"}, label="mount database")
    user = PG_URL.split("://", 1)[1].split("@", 1)[0].split(":")[0]
    diff.call(
        "POST",
        f"{m}/config/pg",
        {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": conn_url(),
            "username": user,
            "password": "unused-trust-auth",
            "allowed_roles": ["ro"],
            "verify_connection": True,
        },
    )
    diff.call("GET", f"{m}/config/pg")
    diff.call("LIST", f"{m}/config")
    diff.call("POST", f"{m}/roles/ro", {"db_name": "pg", "creation_statements": CREATION, "default_ttl": "10m", "max_ttl": "1h"})
    diff.call("GET", f"{m}/roles/ro")
    diff.call("LIST", f"{m}/roles")
    cr = diff.call("GET", f"{m}/creds/ro", volatile=("data.username", "data.password"))
    diff.bind("lease", cr, "lease_id")
    diff.call("POST", "sys/leases/lookup", {"lease_id": V("lease")})
    diff.call("LIST", f"sys/leases/lookup/{m}/creds/ro/", volatile=("data.keys",))
    diff.call("POST", "sys/leases/renew", {"lease_id": V("lease"), "increment": 300})
    diff.call("PUT", "sys/leases/revoke", {"lease_id": V("lease")})
    diff.call("POST", "sys/leases/lookup", {"lease_id": V("lease")}, label="lookup revoked lease")
    diff.call("POST", f"{m}/roles/other", {"db_name": "pg", "creation_statements": CREATION})
    diff.call("GET", f"{m}/creds/other", label="creds for role not allowed")
    diff.call("GET", f"{m}/creds/missing", label="creds for missing role")
    diff.call("POST", f"{m}/reset/pg")
    diff.call("DELETE", f"{m}/roles/ro")
    diff.call("POST", f"sys/leases/revoke-prefix/{m}/creds")
    diff.call("DELETE", f"{m}/config/pg")
    diff.call("GET", f"{m}/config/pg", label="read deleted connection")
    diff.call("DELETE", f"sys/mounts/{m}", label="unmount database")
