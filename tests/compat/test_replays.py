"""Replays of the HTTP calls two real Vault clients make, sent to OpenBao and
to Coffer and compared like the differential suite (differential/harness.py).

What was replayed, read from the clients' public sources:

* External Secrets Operator, Vault provider (external-secrets main branch,
  ``providers/v1/vault``: ``client_get_all_secrets.go`` at 0ce2841,
  ``client_push.go`` at 0740259). ESO uses Vault's Go API client, which sends
  ``X-Vault-Request: true`` and ``X-Vault-Token`` on every call and turns a
  LIST into ``GET ...?list=true``. Sequence: a token check
  (``GET auth/token/lookup-self``); ``GET <mount>/data/<key>?version=N`` for
  an ExternalSecret with a version; ``find`` by tags: recursive
  ``GET <mount>/metadata/<path>/?list=true`` (descending into every key
  ending in ``/``), then ``GET <mount>/metadata/<key>`` for each candidate,
  matching ``custom_metadata`` against the tags, then reading the matches;
  PushSecret to KV v2: read the secret, read its metadata, write
  ``POST <mount>/metadata/<key>`` with ``custom_metadata``
  (``managed-by: external-secrets``) BEFORE the data, then
  ``POST <mount>/data/<key>`` with ``options.cas`` (0 for a new secret, the
  metadata's ``current_version`` otherwise) when the store requires CAS;
  DeleteSecret: delete data, then metadata.
* Terraform's Vault provider (hashicorp/terraform-provider-vault,
  ``vault/resource_kv_secret_v2.go`` at 084e531, and the provider's
  mount, auth-backend and policy resources). At start it looks its token up
  and makes a short-lived child token (``POST auth/token/create`` with
  ``ttl`` 20m, display name ``terraform``) used for the rest; then
  ``vault_mount`` (``POST sys/mounts/<path>``, read back with
  ``GET sys/mounts/<path>``), ``vault_auth_backend`` (``POST sys/auth/<path>``,
  read back with ``GET sys/auth``), ``vault_policy`` (``PUT
  sys/policy/<name>``, ``GET sys/policy/<name>``), ``vault_kv_secret_v2``
  (``PUT <mount>/data/<name>`` with ``data`` and ``options``, read back with
  ``GET <mount>/data/<name>`` reading ``data.data`` and ``data.metadata``;
  destroy ``DELETE <mount>/metadata/<name>`` with delete_all_versions).
  Headers: ``X-Vault-Request: true``, ``X-Vault-Token`` and a
  ``User-Agent`` naming Terraform and the provider.
"""

from __future__ import annotations

import pytest

from conftest import uid
from differential.harness import V

GO_API = {"X-Vault-Request": "true"}
TF = {"X-Vault-Request": "true", "User-Agent": "Terraform/1.9.0 terraform-provider-vault/4.4.0"}


def eso_list(diff, mount: str, path: str) -> list[str]:
    """ESO's listSecrets: recursive LIST as GET ?list=true, compared at each level."""
    d = diff.call("GET", f"{mount}/metadata/{path}", params={"list": "true"}, headers=GO_API, label=f"eso list {path or '<root>'}")
    keys = (d.bj or {}).get("data", {}).get("keys", []) if d.b.status_code == 200 else []
    out = []
    for k in keys:
        full = path + k
        if k.endswith("/"):
            out += eso_list(diff, mount, full)
        else:
            out.append(full)
    return out


def test_eso_read_find_and_push(diff):
    m = uid("eso")
    diff.call("POST", f"sys/mounts/{m}", {"type": "kv", "options": {"version": "2"}}, label="setup mount")
    for key, team in (("app/a", "red"), ("app/b", "blue"), ("app/deep/c", "red"), ("other", "red")):
        diff.call("POST", f"{m}/metadata/{key}", {"custom_metadata": {"team": team}}, label="setup metadata")
        diff.call("POST", f"{m}/data/{key}", {"data": {"k": key}}, label="setup data")
    diff.call("POST", f"{m}/data/app/a", {"data": {"k": "second"}}, label="setup v2")

    # SecretStore validation: the token checks itself.
    diff.call("GET", "auth/token/lookup-self", headers=GO_API, label="eso lookup-self")
    # ExternalSecret with a version.
    diff.call("GET", f"{m}/data/app/a", params={"version": "1"}, headers=GO_API, label="eso get version 1")
    diff.call("GET", f"{m}/data/app/a", headers=GO_API, label="eso get latest")
    diff.call("GET", f"{m}/data/app/none", headers=GO_API, label="eso get missing")
    # find by tags under app/: list recursively, read each metadata, match.
    cands = eso_list(diff, m, "app/")
    assert sorted(cands) == ["app/a", "app/b", "app/deep/c"], cands
    red = []
    for key in cands:
        md = diff.call("GET", f"{m}/metadata/{key}", headers=GO_API, label="eso read metadata")
        for side in (md.bj, md.cj):
            assert side and "custom_metadata" in side["data"], side
        if md.bj["data"]["custom_metadata"].get("team") == "red":
            red.append(key)
            diff.call("GET", f"{m}/data/{key}", headers=GO_API, label="eso read match")
    assert red == ["app/a", "app/deep/c"]

    # PushSecret (new secret, CheckAndSet required): read, metadata, data cas=0.
    diff.call("GET", f"{m}/data/pushed", headers=GO_API, label="eso push read (absent)")
    diff.call("POST", f"{m}/metadata/pushed", {"custom_metadata": {"managed-by": "external-secrets"}}, headers=GO_API, label="eso push metadata")
    diff.call("POST", f"{m}/data/pushed", {"data": {"token": "v1"}, "options": {"cas": 0}}, headers=GO_API, label="eso push data cas 0")
    # PushSecret update: read, read metadata (ownership + current_version), write with cas.
    diff.call("GET", f"{m}/data/pushed", headers=GO_API, label="eso push read")
    md = diff.call("GET", f"{m}/metadata/pushed", headers=GO_API, label="eso push read metadata")
    cv = md.get("data", "current_version")
    diff.set("cv", *cv)
    diff.call("POST", f"{m}/data/pushed", {"data": {"token": "v2"}, "options": {"cas": V("cv")}}, headers=GO_API, label="eso push data cas current")
    diff.call("POST", f"{m}/data/pushed", {"data": {"token": "v3"}, "options": {"cas": 0}}, headers=GO_API, label="eso push stale cas")
    # DeleteSecret: data, then metadata.
    diff.call("DELETE", f"{m}/data/pushed", headers=GO_API, label="eso delete data")
    diff.call("DELETE", f"{m}/metadata/pushed", headers=GO_API, label="eso delete metadata")
    diff.call("GET", f"{m}/metadata/pushed", headers=GO_API, label="eso read deleted metadata")


def test_terraform_apply_and_refresh(diff):
    m, a, p = uid("tfkv"), uid("tfup"), uid("tfpol")
    diff.call("GET", "auth/token/lookup-self", headers=TF, label="tf lookup-self")
    ct = diff.call("POST", "auth/token/create", {"display_name": "terraform", "ttl": "20m", "explicit_max_ttl": "20m", "no_parent": False}, headers=TF, label="tf child token")
    diff.bind("tf", ct, "auth", "client_token")
    tok = V("tf")
    # vault_mount
    diff.call("POST", f"sys/mounts/{m}", {"type": "kv", "options": {"version": "2"}, "description": "tf", "default_lease_ttl": "0s", "max_lease_ttl": "0s"}, token=tok, headers=TF, label="tf vault_mount create")
    diff.call("GET", f"sys/mounts/{m}", token=tok, headers=TF, label="tf vault_mount read")
    # vault_auth_backend
    diff.call("POST", f"sys/auth/{a}", {"type": "userpass", "description": "tf"}, token=tok, headers=TF, label="tf vault_auth_backend create")
    diff.call("GET", "sys/auth", token=tok, headers=TF, only=[f"data.{a}/"], label="tf vault_auth_backend read")
    diff.call("GET", f"sys/auth/{a}/tune", token=tok, headers=TF, label="tf vault_auth_backend tune read")
    # vault_policy
    diff.call("PUT", f"sys/policy/{p}", {"policy": 'path "secret/*" { capabilities = ["read"] }\n'}, token=tok, headers=TF, label="tf vault_policy create")
    diff.call("GET", f"sys/policy/{p}", token=tok, headers=TF, label="tf vault_policy read")
    # vault_kv_secret_v2 with custom_metadata: metadata first, then data, then read back.
    diff.call("POST", f"{m}/metadata/app", {"max_versions": 5, "custom_metadata": {"owner": "tf"}}, token=tok, headers=TF, label="tf kv metadata write")
    diff.call("PUT", f"{m}/data/app", {"data": {"user": "u"}, "options": {"cas": 0}}, token=tok, headers=TF, label="tf kv create")
    diff.call("GET", f"{m}/data/app", token=tok, headers=TF, label="tf kv read")
    diff.call("GET", f"{m}/metadata/app", token=tok, headers=TF, label="tf kv metadata read")
    diff.call("PUT", f"{m}/data/app", {"data": {"user": "v"}, "options": {}}, token=tok, headers=TF, label="tf kv update")
    diff.call("GET", f"{m}/data/app", token=tok, headers=TF, label="tf kv refresh")
    # destroy, in reverse order
    diff.call("DELETE", f"{m}/metadata/app", token=tok, headers=TF, label="tf kv destroy")
    diff.call("GET", f"{m}/data/app", token=tok, headers=TF, label="tf kv read destroyed")
    diff.call("DELETE", f"sys/policy/{p}", token=tok, headers=TF, label="tf vault_policy destroy")
    diff.call("DELETE", f"sys/auth/{a}", token=tok, headers=TF, label="tf vault_auth_backend destroy")
    diff.call("DELETE", f"sys/mounts/{m}", token=tok, headers=TF, label="tf vault_mount destroy")
    diff.call("GET", f"sys/mounts/{m}", token=tok, headers=TF, label="tf vault_mount read destroyed")
