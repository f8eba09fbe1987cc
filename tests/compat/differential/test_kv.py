"""KV v1 and v2, every endpoint, asked of OpenBao and Coffer alike."""

from __future__ import annotations

import json

import pytest

from conftest import uid

MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
def kv1(diff):
    m = uid("kv1")
    diff.call("POST", f"sys/mounts/{m}", {"type": "kv", "options": {"version": "1"}}, label="mount kv1")
    return m


@pytest.fixture
def kv2(diff):
    m = uid("kv2")
    diff.call("POST", f"sys/mounts/{m}", {"type": "kv", "options": {"version": "2"}}, label="mount kv2")
    return m


def test_kv1_crud_and_list(diff, kv1):
    diff.call("PUT", f"{kv1}/a/b", {"k": "v", "n": 1, "nested": {"x": [1, 2]}})
    diff.call("GET", f"{kv1}/a/b")
    diff.call("PUT", f"{kv1}/a/c", {"k": "w"})
    diff.call("PUT", f"{kv1}/top", {"k": "t"})
    diff.call("LIST", f"{kv1}/")
    diff.call("LIST", f"{kv1}/a")
    diff.call("GET", f"{kv1}/a", params={"list": "true"}, label="GET ?list=true")
    diff.call("LIST", f"{kv1}/nothing/")
    diff.call("GET", f"{kv1}/missing")
    diff.call("DELETE", f"{kv1}/a/b")
    diff.call("GET", f"{kv1}/a/b", label="read deleted")
    diff.call("DELETE", f"{kv1}/a/b", label="delete twice")
    diff.call("PUT", f"{kv1}/empty", {}, label="write empty")


def test_kv1_ttl(diff, kv1):
    diff.call("PUT", f"{kv1}/ttl", {"k": "v", "ttl": "30m"})
    diff.call("GET", f"{kv1}/ttl")


def test_kv2_config(diff, kv2):
    diff.call("GET", f"{kv2}/config")
    diff.call("POST", f"{kv2}/config", {"max_versions": 3, "cas_required": False, "delete_version_after": "1h"})
    diff.call("GET", f"{kv2}/config")


def test_kv2_write_read_versions(diff, kv2):
    diff.call("POST", f"{kv2}/data/app/db", {"data": {"user": "u", "pw": "p1"}})
    diff.call("POST", f"{kv2}/data/app/db", {"data": {"user": "u", "pw": "p2"}, "options": {}})
    diff.call("GET", f"{kv2}/data/app/db")
    diff.call("GET", f"{kv2}/data/app/db", params={"version": "1"}, label="read version 1")
    diff.call("GET", f"{kv2}/data/app/db", params={"version": "9"}, label="read version 9")
    diff.call("GET", f"{kv2}/data/app/missing")
    diff.call("GET", f"{kv2}/metadata/app/db")
    diff.call("LIST", f"{kv2}/metadata/")
    diff.call("LIST", f"{kv2}/metadata/app")
    diff.call("GET", f"{kv2}/metadata/app", params={"list": "true"}, label="GET metadata ?list=true")
    diff.call("LIST", f"{kv2}/metadata/none/")
    diff.call("POST", f"{kv2}/data/app/bad", {"nodata": 1}, label="write without data")
    diff.call("POST", f"{kv2}/data/app/bad", raw_body="{not json", headers={"Content-Type": "application/json"}, label="write bad JSON")


def test_kv2_list_pages(diff, kv2):
    """OpenBao 2.0's paginated LIST of metadata: ``after`` and ``limit``."""
    for k in ["a", "b", "c/d", "e", "f/g", "h"]:
        diff.call("POST", f"{kv2}/data/p/{k}", {"data": {"x": 1}}, label=f"write {k}")
    for params in [
        {"after": "b"},
        {"limit": "2"},
        {"after": "c/", "limit": "2"},
        {"after": "c", "limit": "2"},
        {"after": "zzz"},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"after": "a", "limit": "1000000"},
    ]:
        diff.call("LIST", f"{kv2}/metadata/p/", params=params, label=f"LIST {params}")
    diff.call("GET", f"{kv2}/metadata/p/", params={"list": "true", "after": "e", "limit": "1"}, label="GET ?list=true page")


def test_kv2_cas(diff, kv2):
    diff.call("POST", f"{kv2}/data/c", {"data": {"a": 1}, "options": {"cas": 0}})
    diff.call("POST", f"{kv2}/data/c", {"data": {"a": 2}, "options": {"cas": 0}}, label="cas 0 on existing")
    diff.call("POST", f"{kv2}/data/c", {"data": {"a": 2}, "options": {"cas": 1}})
    diff.call("POST", f"{kv2}/data/c", {"data": {"a": 3}, "options": {"cas": 1}}, label="stale cas")
    diff.call("POST", f"{kv2}/metadata/c", {"cas_required": True})
    diff.call("POST", f"{kv2}/data/c", {"data": {"a": 4}}, label="no cas when required")
    diff.call("GET", f"{kv2}/metadata/c")


def test_kv2_patch(diff, kv2):
    diff.call("POST", f"{kv2}/data/p", {"data": {"a": "1", "b": "2"}})
    diff.call("PATCH", f"{kv2}/data/p", raw_body=json.dumps({"data": {"b": None, "c": "3"}}), headers=MERGE)
    diff.call("GET", f"{kv2}/data/p")
    diff.call("PATCH", f"{kv2}/data/p", raw_body=json.dumps({"data": {"d": "4"}, "options": {"cas": 1}}), headers=MERGE, label="patch stale cas")
    diff.call("PATCH", f"{kv2}/data/nope", raw_body=json.dumps({"data": {"d": "4"}}), headers=MERGE, label="patch missing")
    diff.call("POST", f"{kv2}/data/gone", {"data": {"a": "1"}}, label="write to soft-delete")
    diff.call("DELETE", f"{kv2}/data/gone", label="soft-delete")
    diff.call("PATCH", f"{kv2}/data/gone", raw_body=json.dumps({"data": {"d": "4"}}), headers=MERGE, label="patch soft-deleted")
    diff.call("PATCH", f"{kv2}/data/p", raw_body=json.dumps({"data": {"d": "4"}}), headers={"Content-Type": "application/json"}, label="patch wrong content type")
    diff.call("PATCH", f"{kv2}/metadata/p", raw_body=json.dumps({"max_versions": 5, "custom_metadata": {"team": "x"}}), headers=MERGE)
    diff.call("GET", f"{kv2}/metadata/p")


def test_kv2_delete_undelete_destroy(diff, kv2):
    for i in range(3):
        diff.call("POST", f"{kv2}/data/d", {"data": {"v": str(i)}}, label=f"write v{i + 1}")
    diff.call("DELETE", f"{kv2}/data/d")
    diff.call("GET", f"{kv2}/data/d", label="read soft-deleted latest")
    diff.call("POST", f"{kv2}/delete/d", {"versions": [1]})
    diff.call("POST", f"{kv2}/undelete/d", {"versions": [1, 3]})
    diff.call("GET", f"{kv2}/data/d", label="read undeleted")
    diff.call("POST", f"{kv2}/destroy/d", {"versions": [2]})
    diff.call("GET", f"{kv2}/data/d", params={"version": "2"}, label="read destroyed")
    diff.call("GET", f"{kv2}/metadata/d")
    diff.call("POST", f"{kv2}/delete/d", {}, label="delete without versions")
    diff.call("POST", f"{kv2}/destroy/d", {"versions": []}, label="destroy empty versions")
    diff.call("POST", f"{kv2}/undelete/missing", {"versions": [1]}, label="undelete missing")
    diff.call("DELETE", f"{kv2}/metadata/d")
    diff.call("GET", f"{kv2}/metadata/d", label="read deleted metadata")
    diff.call("GET", f"{kv2}/data/d", label="read after metadata delete")


def test_kv2_metadata_write(diff, kv2):
    diff.call("POST", f"{kv2}/metadata/m", {"max_versions": 2, "custom_metadata": {"owner": "ops"}, "delete_version_after": "3h"})
    diff.call("GET", f"{kv2}/metadata/m", label="metadata without versions")
    diff.call("POST", f"{kv2}/data/m", {"data": {"a": "b"}})
    diff.call("GET", f"{kv2}/data/m")
    diff.call("GET", f"{kv2}/metadata/m")
    diff.call("POST", f"{kv2}/metadata/m", {"max_versions": "lots"}, label="bad max_versions")


def test_kv2_custom_metadata_numbers(diff, kv2):
    diff.call("POST", f"{kv2}/metadata/n", {"custom_metadata": {"n": 1}}, label="custom_metadata number")
    diff.call("GET", f"{kv2}/metadata/n")


def test_kv2_subkeys(diff, kv2):
    diff.call("POST", f"{kv2}/data/s", {"data": {"a": {"b": {"c": 1}}, "x": 2}})
    diff.call("GET", f"{kv2}/subkeys/s")
    diff.call("GET", f"{kv2}/subkeys/s", params={"depth": "1"}, label="subkeys depth 1")
    diff.call("GET", f"{kv2}/subkeys/none")


def test_kv2_metadata_cas(diff, kv2):
    diff.call("POST", f"{kv2}/metadata/mc", {"max_versions": 4, "cas": 0}, label="metadata cas 0 on new key")
    diff.call("POST", f"{kv2}/metadata/mc", {"max_versions": 5, "cas": 0}, label="metadata stale cas")
    diff.call("POST", f"{kv2}/metadata/mc", {"max_versions": 5, "cas": 1}, label="metadata cas 1")
    diff.call("POST", f"{kv2}/data/mc", {"data": {"a": "b"}}, label="data write keeps metadata version")
    diff.call("GET", f"{kv2}/metadata/mc")
    diff.call("POST", f"{kv2}/config", {"metadata_cas_required": True})
    diff.call("GET", f"{kv2}/config", label="config with metadata_cas_required")
    diff.call("POST", f"{kv2}/metadata/mc", {"max_versions": 6}, label="metadata write without required cas")
    diff.call("POST", f"{kv2}/metadata/mc", {"max_versions": 6, "cas": 2}, label="metadata write with required cas")
    diff.call("GET", f"{kv2}/metadata/mc", label="metadata after cas writes")
