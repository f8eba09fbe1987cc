"""hvac's ``client.secrets.identity`` against Coffer: entities, entity
aliases, groups (internal, nested, external with a group alias), lookups,
merge, and a userpass login mapped to an entity whose group policy applies
to the token at once."""

from __future__ import annotations

import secrets

import hvac
import pytest

from conftest import uid


def _accessor(client: hvac.Client, mount: str) -> str:
    return client.sys.list_auth_methods()["data"][f"{mount}/"]["accessor"]


@pytest.fixture
def userpass(client):
    m = uid("up")
    client.sys.enable_auth_method("userpass", path=m)
    yield m
    client.sys.disable_auth_method(m)


def test_entity_crud_lookup_and_aliases(client, userpass):
    ident = client.secrets.identity
    name = uid("ent")
    created = ident.create_or_update_entity(name=name, policies=["p1"], metadata={"team": "billing"})
    eid = created["data"]["id"]
    assert created["data"]["name"] == name
    read = ident.read_entity(entity_id=eid)["data"]
    assert read["name"] == name
    assert read["policies"] == ["p1"]
    assert read["metadata"] == {"team": "billing"}
    assert read["disabled"] is False
    assert read["aliases"] == []
    assert ident.read_entity_by_name(name=name)["data"]["id"] == eid
    # An update by id answers 204, and changes only what it names.
    ident.create_or_update_entity(name=name, entity_id=eid, policies=["p2"])
    read = ident.read_entity(entity_id=eid)["data"]
    assert read["policies"] == ["p2"]
    assert read["metadata"] == {"team": "billing"}
    ident.create_or_update_entity_by_name(name=name, disabled=True)
    assert ident.read_entity(entity_id=eid)["data"]["disabled"] is True
    assert eid in ident.list_entities()["data"]["keys"]
    assert name in ident.list_entities_by_name()["data"]["keys"]

    acc = _accessor(client, userpass)
    alias = ident.create_or_update_entity_alias(name="alice", canonical_id=eid, mount_accessor=acc)
    aid = alias["data"]["id"]
    assert alias["data"]["canonical_id"] == eid
    got = ident.read_entity_alias(alias_id=aid)["data"]
    assert (got["name"], got["mount_accessor"], got["mount_path"], got["mount_type"]) == (
        "alice",
        acc,
        f"auth/{userpass}/",
        "userpass",
    )
    assert aid in ident.list_entity_aliases()["data"]["keys"]
    assert ident.read_entity(entity_id=eid)["data"]["aliases"][0]["id"] == aid
    found = ident.lookup_entity(alias_name="alice", alias_mount_accessor=acc)
    assert found["data"]["id"] == eid
    assert ident.lookup_entity(name=name)["data"]["id"] == eid
    with pytest.raises(hvac.exceptions.InvalidRequest):
        ident.create_or_update_entity_alias(name="x", canonical_id=eid, mount_accessor="nope")

    # Merge: the other entity's alias moves over, the other entity goes.
    other = ident.create_or_update_entity(name=uid("ent"))["data"]["id"]
    ident.delete_entity_alias(alias_id=aid)
    ident.create_or_update_entity_alias(name="bob", canonical_id=other, mount_accessor=acc)
    ident.merge_entities(from_entity_ids=[other], to_entity_id=eid)
    aliases = ident.read_entity(entity_id=eid)["data"]["aliases"]
    assert [a["name"] for a in aliases] == ["bob"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_entity(entity_id=other)

    ident.delete_entity(entity_id=eid)
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_entity(entity_id=eid)


def test_groups_nested_external_and_a_login_getting_the_group_policy(client, userpass):
    ident = client.secrets.identity
    pol = uid("billing-read")
    client.sys.create_or_update_policy(pol, 'path "secret/data/billing/*" { capabilities = ["read"] }')
    client.secrets.kv.v2.create_or_update_secret(path="billing/db", secret={"v": secrets.token_hex(8)})
    pw = secrets.token_hex(12)
    client.write(f"auth/{userpass}/users/alice", password=pw)
    acc = _accessor(client, userpass)
    eid = ident.create_or_update_entity(name=uid("alice"))["data"]["id"]
    ident.create_or_update_entity_alias(name="alice", canonical_id=eid, mount_accessor=acc)
    team = uid("team")
    inner = ident.create_or_update_group(name=team, member_entity_ids=[eid])["data"]["id"]
    outer_name = uid("billing")
    outer = ident.create_or_update_group(name=outer_name, policies=[pol], member_group_ids=[inner])["data"]["id"]
    g = ident.read_group(group_id=outer)["data"]
    assert (g["name"], g["type"], g["policies"], g["member_group_ids"]) == (outer_name, "internal", [pol], [inner])
    assert ident.read_group_by_name(name=team)["data"]["parent_group_ids"] == [outer]
    assert outer in ident.list_groups()["data"]["keys"]
    assert team in ident.list_groups_by_name()["data"]["keys"]
    assert ident.lookup_group(name=outer_name)["data"]["id"] == outer
    e = ident.read_entity(entity_id=eid)["data"]
    assert e["direct_group_ids"] == [inner] and e["inherited_group_ids"] == [outer]

    login = client.auth.userpass.login(username="alice", password=pw, mount_point=userpass, use_token=False)
    assert login["auth"]["entity_id"] == eid
    assert login["auth"]["identity_policies"] == [pol]
    alice = hvac.Client(url=client.url, token=login["auth"]["client_token"], timeout=30)
    assert alice.secrets.kv.v2.read_secret_version(path="billing/db", raise_on_deleted_version=True)["data"]
    me = alice.auth.token.lookup_self()["data"]
    assert me["entity_id"] == eid and me["identity_policies"] == [pol]
    # Out of the inner group: the token loses the policy at once.
    ident.create_or_update_group(name=team, group_id=inner, member_entity_ids=[])
    with pytest.raises(hvac.exceptions.Forbidden):
        alice.secrets.kv.v2.read_secret_version(path="billing/db", raise_on_deleted_version=True)

    # External group with an alias on the userpass mount.
    ext = ident.create_or_update_group(name=uid("ext"), group_type="external", policies=[pol])["data"]["id"]
    ga = ident.create_or_update_group_alias(name="ops", mount_accessor=acc, canonical_id=ext)["data"]["id"]
    alias = ident.read_group_alias(alias_id=ga)["data"]
    assert (alias["name"], alias["canonical_id"], alias["mount_accessor"]) == ("ops", ext, acc)
    assert ga in ident.list_group_aliases()["data"]["keys"]
    assert ident.read_group(group_id=ext)["data"]["alias"]["id"] == ga
    with pytest.raises(hvac.exceptions.InvalidRequest):
        ident.create_or_update_group_alias(name="ops2", mount_accessor=acc, canonical_id=inner)
    ident.delete_group_alias(entity_id=ga)  # hvac names the alias id so
    for gid in (outer, inner, ext):
        ident.delete_group(group_id=gid)
    with pytest.raises(hvac.exceptions.InvalidPath):
        ident.read_group(group_id=outer)
    ident.delete_entity(entity_id=eid)
