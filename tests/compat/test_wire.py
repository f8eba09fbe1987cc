"""Raw wire checks with `requests`: envelope, error shape and codes, methods, tokens, hostile input."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from conftest import uid

ENVELOPE = ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth", "mount_type")
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def assert_error(r, code):
    """Status is `code` and the body is Vault's {"errors": [...]}."""
    assert r.status_code == code, (r.status_code, r.text[:500])
    body = r.json()
    assert isinstance(body.get("errors"), list), body


def raw_http(addr: str, method: str, target: str, token: str | None, body: bytes | None = None, headers=None):
    """Send a request with an exact, unnormalised target (for '..' and '//')."""
    parts = urlsplit(addr)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    hdrs = dict(headers or {})
    if token:
        hdrs["X-Vault-Token"] = token
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, target, body=body, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


# --- envelope -------------------------------------------------------------------------------


def test_read_envelope(raw):
    path = uid()
    assert raw("POST", f"secret/data/{path}", json={"data": {"k": "v"}}).status_code == 200
    r = raw("GET", f"secret/data/{path}")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    for key in ENVELOPE:
        assert key in body, (key, body)
    assert body["lease_id"] == ""
    assert body["renewable"] is False
    assert body["lease_duration"] == 0
    assert body["wrap_info"] is None
    assert body["auth"] is None
    assert body["mount_type"] == "kv"
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert body["data"]["data"] == {"k": "v"}


def test_write_envelope_and_distinct_request_ids(raw):
    path = uid()
    r1 = raw("POST", f"secret/data/{path}", json={"data": {"k": "v"}})
    r2 = raw("PUT", f"secret/data/{path}", json={"data": {"k": "w"}})  # PUT == POST
    for r in (r1, r2):
        assert r.status_code == 200, r.text
        for key in ENVELOPE:
            assert key in r.json(), key
    assert r1.json()["request_id"] != r2.json()["request_id"]
    assert r2.json()["data"]["version"] == 2


def test_no_content_answers_have_no_body(raw):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"k": "v"}})
    r = raw("DELETE", f"secret/data/{path}")
    assert r.status_code == 204
    assert r.content == b""


# --- tokens ---------------------------------------------------------------------------------


def test_missing_or_bad_token_is_403(raw):
    path = uid()
    assert_error(raw("GET", f"secret/data/{path}", token=None), 403)
    assert_error(raw("GET", f"secret/data/{path}", token="not-a-real-token"), 403)
    assert_error(raw("POST", f"secret/data/{path}", token="not-a-real-token", json={"data": {"a": "b"}}), 403)
    assert_error(raw("LIST", "secret/metadata/", token=None), 403)


def test_bearer_authorization_works_like_x_vault_token(raw, dev_server):
    path = uid()
    bearer = {"Authorization": f"Bearer {dev_server.token}"}
    r = raw("POST", f"secret/data/{path}", token=None, headers=bearer, json={"data": {"via": "bearer"}})
    assert r.status_code == 200, r.text
    r = raw("GET", f"secret/data/{path}", token=None, headers=bearer)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["data"] == {"via": "bearer"}
    bad = {"Authorization": "Bearer not-a-real-token"}
    assert_error(raw("GET", f"secret/data/{path}", token=None, headers=bad), 403)


# --- listing --------------------------------------------------------------------------------


def test_list_method_and_get_list_true_agree(raw):
    base = uid("dir")
    for p in ("x", "y/z"):
        raw("POST", f"secret/data/{base}/{p}", json={"data": {"a": "b"}})
    r1 = raw("LIST", f"secret/metadata/{base}")
    r2 = raw("GET", f"secret/metadata/{base}", params={"list": "true"})
    r3 = raw("GET", f"secret/metadata/{base}/", params={"list": "true"})
    for r in (r1, r2, r3):
        assert r.status_code == 200, r.text
        assert sorted(r.json()["data"]["keys"]) == ["x", "y/"]
    assert_error(raw("LIST", f"secret/metadata/{uid('none')}"), 404)


# --- PATCH (JSON merge patch) ---------------------------------------------------------------


def test_merge_patch(raw):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1", "b": "2", "obj": {"x": 1, "y": 2}}})
    patch = {"data": {"b": None, "c": "3", "obj": {"y": None, "z": 3}}}
    r = raw("PATCH", f"secret/data/{path}", headers=MERGE_PATCH, data=json.dumps(patch))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 2
    got = raw("GET", f"secret/data/{path}").json()["data"]["data"]
    assert got == {"a": "1", "c": "3", "obj": {"x": 1, "z": 3}}


def test_merge_patch_cas(raw):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1"}})
    bad = {"options": {"cas": 7}, "data": {"a": "2"}}
    assert_error(raw("PATCH", f"secret/data/{path}", headers=MERGE_PATCH, data=json.dumps(bad)), 400)
    good = {"options": {"cas": 1}, "data": {"a": "2"}}
    r = raw("PATCH", f"secret/data/{path}", headers=MERGE_PATCH, data=json.dumps(good))
    assert r.status_code == 200, r.text


def test_merge_patch_of_missing_secret_is_404(raw):
    # A bare 404 without a body, as Vault and OpenBao answer (the
    # differential suite compares it with OpenBao).
    r = raw("PATCH", f"secret/data/{uid('missing')}", headers=MERGE_PATCH, data=json.dumps({"data": {"a": "1"}}))
    assert r.status_code == 404, (r.status_code, r.text[:500])
    assert r.content == b""


def test_merge_patch_of_deleted_version_is_404(raw):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1"}})
    raw("DELETE", f"secret/data/{path}")
    r = raw("PATCH", f"secret/data/{path}", headers=MERGE_PATCH, data=json.dumps({"data": {"a": "2"}}))
    # 404 carrying the deleted version's metadata, as Vault and OpenBao answer.
    assert r.status_code == 404, (r.status_code, r.text[:500])
    meta = r.json()["data"]
    assert meta["version"] == 1 and meta["deletion_time"] and meta["destroyed"] is False, meta


def test_patch_needs_merge_patch_content_type(raw):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1"}})
    r = raw("PATCH", f"secret/data/{path}", json={"data": {"a": "2"}})  # application/json
    assert_error(r, 415)
    assert raw("GET", f"secret/data/{path}").json()["data"]["data"] == {"a": "1"}


def test_metadata_patch(raw):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1"}})
    raw("POST", f"secret/metadata/{path}", json={"max_versions": 4, "custom_metadata": {"a": "1", "b": "2"}})
    patch = {"custom_metadata": {"b": None, "c": "3"}}
    r = raw("PATCH", f"secret/metadata/{path}", headers=MERGE_PATCH, data=json.dumps(patch))
    assert r.status_code == 204, r.text
    md = raw("GET", f"secret/metadata/{path}").json()["data"]
    assert md["custom_metadata"] == {"a": "1", "c": "3"}
    assert md["max_versions"] == 4


def test_subkeys(raw):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1", "obj": {"x": "1", "y": {"z": "2"}}}})
    r = raw("GET", f"secret/subkeys/{path}")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["subkeys"] == {"a": None, "obj": {"x": None, "y": {"z": None}}}
    assert data["metadata"]["version"] == 1
    r = raw("GET", f"secret/subkeys/{path}", params={"depth": "1"})
    assert r.json()["data"]["subkeys"] == {"a": None, "obj": None}
    assert_error(raw("GET", f"secret/subkeys/{uid('missing')}"), 404)


# --- errors ---------------------------------------------------------------------------------


def test_missing_is_404_with_errors(raw):
    r = raw("GET", f"secret/data/{uid('missing')}")
    assert r.status_code == 404
    assert r.json()["errors"] == []
    assert_error(raw("GET", f"{uid('nomount')}/anything"), 404)


def test_malformed_json_is_400(raw):
    path = uid()
    for body in (b"{", b"{\"data\": {\"a\": }", b"not json", b"[1,2]", b"\"str\""):
        r = raw("POST", f"secret/data/{path}", data=body, headers={"Content-Type": "application/json"})
        assert_error(r, 400)
    assert_error(raw("GET", f"secret/data/{path}"), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"data": "not-an-object"},
        {"data": ["a", "b"]},
        {"data": {"a": "1"}, "options": {"cas": "not-a-number"}},
        {"data": {"a": "1"}, "options": "nope"},
    ],
)
def test_wrong_types_in_data_write_are_400(raw, body):
    assert_error(raw("POST", f"secret/data/{uid()}", json=body), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"max_versions": "many"},
        {"cas_required": "perhaps"},
        {"delete_version_after": "soon"},
        {"custom_metadata": "flat"},
    ],
)
def test_wrong_types_in_metadata_write_are_400(raw, body):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1"}})
    assert_error(raw("POST", f"secret/metadata/{path}", json=body), 400)


@pytest.mark.parametrize("body", [{"versions": ["x"]}, {"versions": {"a": 1}}, {}])
def test_wrong_version_lists_are_400(raw, body):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1"}})
    assert_error(raw("POST", f"secret/destroy/{path}", json=body), 400)


def test_bad_version_query_is_400(raw):
    path = uid()
    raw("POST", f"secret/data/{path}", json={"data": {"a": "1"}})
    assert_error(raw("GET", f"secret/data/{path}", params={"version": "abc"}), 400)


@pytest.mark.parametrize(
    "target",
    [
        "/v1/secret/data/a/../b",
        "/v1/secret/data/..",
        "/v1/secret/data/%2e%2e/x",
        "/v1/secret/../sys/mounts",
        "/v1/secret/data/a//b",
        "/v1/secret/data//a",
    ],
)
def test_dot_dot_and_empty_segments_are_400(dev_server, target):
    for method, body in (("GET", None), ("POST", json.dumps({"data": {"a": "b"}}).encode())):
        status, data = raw_http(dev_server.addr, method, target, dev_server.token, body)
        assert status == 400, (method, target, status, data[:300])
        assert isinstance(json.loads(data)["errors"], list)


def test_invalid_utf8_body_is_400(raw):
    path = uid()
    body = b'{"data": {"k": "\xff\xfe bad"}}'
    r = raw("POST", f"secret/data/{path}", data=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    assert_error(raw("GET", f"secret/data/{path}"), 404)


def test_invalid_utf8_path_is_400(dev_server):
    for method in ("GET", "POST"):
        body = json.dumps({"data": {"a": "b"}}).encode() if method == "POST" else None
        status, data = raw_http(dev_server.addr, method, "/v1/secret/data/bad%FF%FEname", dev_server.token, body)
        assert status == 400, (method, status, data[:300])
        assert isinstance(json.loads(data)["errors"], list)


def test_oversized_body_is_rejected(raw):
    # Vault's default max_request_size is 32 MiB; send a little more.
    big = b'{"data": {"k": "' + b"x" * (33 * 1024 * 1024) + b'"}}'
    path = uid()
    r = raw("POST", f"secret/data/{path}", data=big, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 413), (r.status_code, r.text[:300])
    assert isinstance(r.json()["errors"], list)
    assert_error(raw("GET", f"secret/data/{path}"), 404)


@pytest.mark.parametrize(
    "method,path",
    [
        ("DELETE", "sys/seal-status"),
        ("POST", "sys/seal-status"),
        ("DELETE", "sys/init"),
        ("DELETE", "secret/config"),
        ("DELETE", "sys/key-status"),
    ],
)
def test_unsupported_method_is_405(raw, method, path):
    assert_error(raw(method, path, json={} if method == "POST" else None), 405)


def test_list_of_a_non_folder_kv2_path_is_404_like_openbao(raw):
    # LIST paths get Vault's trailing slash, so `secret/config` is listed as
    # the folder `secret/config/`, which does not exist (OpenBao 2.x: 404).
    assert raw("LIST", "secret/config").status_code == 404


def test_unknown_http_method_is_405(raw):
    assert_error(raw("BREW", f"secret/data/{uid()}"), 405)


@pytest.mark.parametrize(
    "method,path,body,headers",
    [
        ("POST", "sys/init", b"\x00\x01garbage", {"Content-Type": "application/json"}),
        ("PUT", "sys/unseal", b"{\"key\": 12}", {"Content-Type": "application/json"}),
        ("POST", "sys/mounts/xx", b"{\"type\": 5}", {"Content-Type": "application/json"}),
        ("POST", "sys/mounts/secret/tune", b"{\"max_lease_ttl\": \"forever\"}", {"Content-Type": "application/json"}),
        ("POST", "secret/config", b"{\"max_versions\": {}}", {"Content-Type": "application/json"}),
        ("POST", "secret/data/x", b"{\"data\": {}}" * 3, {"Content-Type": "application/json"}),
        ("GET", "secret/data/x?version=-1", None, {}),
        ("GET", "secret/data/x?version=99999999999999999999999", None, {}),
        ("PATCH", "secret/data/x", b"[]", MERGE_PATCH),
        ("POST", "secret/data/" + "a/" * 500 + "b", b"{\"data\": {}}", {"Content-Type": "application/json"}),
    ],
)
def test_hostile_input_never_5xx(raw, method, path, body, headers):
    r = raw(method, path, data=body, headers=headers)
    assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert isinstance(r.json().get("errors"), list), r.text[:300]


def test_server_still_healthy_after_hostile_input(raw):
    assert raw("GET", "sys/health", token=None).status_code == 200


def test_random_garbage_never_5xx(raw):
    """A bounded, seeded fuzz pass: random methods, paths, query strings and bodies."""
    import random

    rng = random.Random(20261128)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "LIST", "HEAD"]
    m = uid("fuzz")  # its own mount, so config writes cannot disturb other tests
    assert raw("POST", f"sys/mounts/{m}", json={"type": "kv", "options": {"version": "2"}}).status_code == 204
    prefixes = [f"{m}/data/", f"{m}/metadata/", f"{m}/delete/", f"{m}/destroy/", f"{m}/undelete/",
                f"{m}/config", f"{m}/subkeys/", "sys/mounts/", "sys/seal-status", "sys/health",
                "sys/key-status", "sys/init", "sys/unseal", "auth/token/lookup-self", ""]
    alphabet = "abcXYZ019-_.~%/?&=+ "
    for i in range(300):
        method = rng.choice(methods)
        path = rng.choice(prefixes) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        path = path.replace("..", ".x")  # '..' has its own test; keep the fuzz paths single-dot
        kind = rng.randint(0, 3)
        if kind == 0:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        elif kind == 1:
            body = json.dumps({"data": {"k": rng.random()}, "options": {"cas": rng.choice([0, 1, -5, "x", None])},
                               "versions": rng.choice([[1], [], "1", None, [-1]]),
                               "max_versions": rng.choice([1, -1, "x", None, 2**40])}).encode()
        elif kind == 2:
            body = json.dumps(rng.choice([[], 0, "s", None, {"data": None}])).encode()
        else:
            body = None
        hdrs = {"Content-Type": rng.choice(["application/json", "application/merge-patch+json", "text/plain"])}
        # A new connection per request: keep-alive reuse has its own test below.
        hdrs["Connection"] = "close"
        r = raw(method, path, data=body, headers=hdrs)
        assert r.status_code < 500, (i, method, path, body[:80] if body else None, r.status_code, r.text[:200])
        if r.status_code >= 400 and method != "HEAD" and r.content:
            # Vault's {"errors": [...]}, or (as Vault and OpenBao answer a
            # 404 for a path that is no KV v2 endpoint, or a PATCH of a key
            # never written) a 404 carrying warnings or no body at all.
            body = r.json()
            ok = isinstance(body.get("errors"), list) or (r.status_code == 404 and isinstance(body.get("warnings"), list))
            assert ok, (i, method, path, r.text[:200])
    assert raw("GET", "sys/health", token=None).status_code == 200


def _keepalive_trial(addr: str, token: str, method: str, target: str, ctype: str, body: bytes) -> tuple[bytes, bytes]:
    """Send one request whose body trails its headers (as http clients do), then a second
    request on the same connection; return both responses' head bytes."""
    import socket
    import time

    parts = urlsplit(addr)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Vault-Token: {token}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        s.sendall(head)
        time.sleep(0.005)
        s.sendall(body)
        first = s.recv(65536)
        if b"\r\nconnection: close" in first.lower():
            return first, b"(server announced Connection: close)"
        time.sleep(0.05)
        try:
            s.sendall(f"GET /v1/sys/health HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            second = s.recv(65536)
        except OSError as e:
            second = f"{type(e).__name__}".encode()
        return first, second or b"(connection closed)"


@pytest.mark.parametrize(
    "method,path,ctype",
    [
        ("PATCH", "secret/data/ka", "application/json"),  # 415: merge-patch required
        ("PATCH", "sys/seal-status", "application/json"),  # 405
        ("POST", "sys/seal-status", "application/json"),  # 405
        ("POST", "secret/data/ka", "application/json"),  # no token: 403
        ("POST", "secret/data/a/../b", "application/json"),  # 400: '..'
        ("POST", "secret/data//b", "application/json"),  # 400: empty segment
        ("POST", "secret/data/bad%FF", "application/json"),  # 400: invalid UTF-8
        ("BREW", "secret/data/ka", "application/json"),  # 405: unknown method
    ],
)
def test_early_error_keeps_keep_alive_connection_usable(dev_server, method, path, ctype):
    """An error answered before the body is read must not silently drop a keep-alive
    connection: either the body is drained and the connection reused, or the response says
    `Connection: close`. Otherwise pooled clients (hvac, requests, Go) fail their next call."""
    body = json.dumps({"data": {"a": "b" * 40}}).encode()
    for _ in range(5):
        tok = "" if method == "POST" and path == "secret/data/ka" else dev_server.token
        first, second = _keepalive_trial(dev_server.addr, tok, method, f"/v1/{path}", ctype, body)
        assert first.startswith(b"HTTP/1.1 4"), first[:200]
        assert second.startswith(b"HTTP/1.1 200") or second.startswith(b"(server announced"), (
            first.split(b"\r\n")[0],
            second[:200],
        )
