"""Password policies and sys/metrics through hvac; Vault's warnings; KV details.

hvac 2.4 has no methods of its own for password policies or metrics, so
these go through its generic client calls (read, write_data, list, delete),
as a user of hvac would.
"""

from __future__ import annotations

import pytest
import requests
from hvac import exceptions

from conftest import uid

POLICY = """
length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "0123456789"
  min-chars = 4
}
"""


def test_password_policy_lifecycle_and_generate(client):
    name = uid("pw")
    client.write_data(f"sys/policies/password/{name}", data={"policy": POLICY})
    read = client.read(f"sys/policies/password/{name}")
    assert read["data"]["policy"] == POLICY
    assert name in client.list("sys/policies/password")["data"]["keys"]
    for _ in range(10):
        pw = client.read(f"sys/policies/password/{name}/generate")["data"]["password"]
        assert len(pw) == 20
        assert sum(c.isdigit() for c in pw) >= 4
        assert all(c.islower() or c.isdigit() for c in pw)
    client.delete(f"sys/policies/password/{name}")
    # hvac's read answers None for a 404.
    assert client.read(f"sys/policies/password/{name}") is None


def test_an_unsatisfiable_password_policy_is_refused(client):
    bad = 'length = 4\nrule "charset" {\n  charset = "ab"\n  min-chars = 5\n}\n'
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.write_data(f"sys/policies/password/{uid('pw')}", data={"policy": bad})
    assert "require at least 5 characters but 4" in str(e.value)


def test_metrics_json_and_prometheus(client, dev_server):
    client.secrets.kv.v2.create_or_update_secret(uid("m"), {"k": "v"})
    metrics = client.read("sys/metrics")
    for key in ("Timestamp", "Gauges", "Counters", "Samples"):
        assert key in metrics, metrics.keys()
    names = {s["Name"] for s in metrics["Samples"]}
    assert {"vault.core.handle_request", "vault.barrier.get", "vault.barrier.put"} <= names
    gauges = {g["Name"] for g in metrics["Gauges"]}
    assert {"vault.token.count", "vault.expire.num_leases"} <= gauges
    r = requests.get(
        f"{dev_server.addr}/v1/sys/metrics",
        params={"format": "prometheus"},
        headers={"X-Vault-Token": dev_server.token},
        timeout=10,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "vault_core_handle_request_count" in text
    r = requests.get(f"{dev_server.addr}/v1/sys/metrics", timeout=10)
    assert r.status_code == 403


def test_token_create_warns_about_ignored_parameters_and_capped_ttl(raw):
    r = raw("POST", "auth/token/create", json={"ttl": "999999h", "zz": 1, "aa": 2})
    assert r.status_code == 200, r.text
    warnings = r.json()["warnings"]
    assert "Endpoint ignored these unrecognized parameters: [aa zz]" in warnings
    assert (
        'TTL of "999999h" exceeded the effective max_ttl of "768h"; TTL value is capped accordingly'
        in warnings
    )
    assert r.json()["auth"]["lease_duration"] == 2764800


def test_legacy_policy_rules_key_warns(raw):
    name = uid("legacy")
    r = raw("PUT", f"sys/policy/{name}", json={"rules": 'path "x" { capabilities = ["read"] }'})
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == ["'rules' is deprecated, please use 'policy' instead"]
    r = raw("PUT", f"sys/policies/acl/{name}", json={"rules": 'path "x" { capabilities = ["read"] }'})
    assert r.status_code == 400


def test_kv_v1_ttl_field_is_the_lease_duration(client):
    path = uid("kv1")
    client.sys.enable_secrets_engine("kv", path=path, options={"version": "1"})
    client.secrets.kv.v1.create_or_update_secret("a", {"ttl": "1h", "v": "x"}, mount_point=path)
    assert client.secrets.kv.v1.read_secret("a", mount_point=path)["lease_duration"] == 3600
    client.secrets.kv.v1.create_or_update_secret("b", {"v": "x"}, mount_point=path)
    assert client.secrets.kv.v1.read_secret("b", mount_point=path)["lease_duration"] == 2764800


def test_kv_v2_custom_metadata_numbers_and_booleans_become_strings(client):
    path = uid("cm")
    client.secrets.kv.v2.update_metadata(path, custom_metadata={"n": 5, "b": True, "s": "x"})
    meta = client.secrets.kv.v2.read_secret_metadata(path)["data"]
    assert meta["custom_metadata"] == {"n": "5", "b": "1", "s": "x"}
