"""Fixtures of the browser suite: one real `coffer server --dev` process and
one headless Debian Chromium driven by Playwright.

The server is the already built binary (``$COFFER_BIN``, default
``<repo>/target/debug/coffer``) on a free loopback port (or
``$COFFER_UI_TEST_PORT``), with a file audit device in a temporary
directory and a slow ``command`` rotator whose steps can be watched. Every
credential is generated at run time.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("COFFER_UI_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "target" / "ui-screenshots"

for _var in ("VAULT_TOKEN", "VAULT_ADDR", "VAULT_NAMESPACE", "COFFER_TOKEN", "COFFER_ADDR"):
    os.environ.pop(_var, None)

# Each step of the rotator sleeps this long, so the progress page shows it.
STEP_SLEEP_S = "0.8"
SLOW_ROTATOR = f"""#!/bin/sh
# A test rotator: each step takes a moment; create prints a fresh value.
/bin/sleep {STEP_SLEEP_S}
if [ "$1" = create ]; then
  v=$(/usr/bin/od -An -tx1 -N16 /dev/urandom | /usr/bin/tr -d ' \\n')
  printf '{{"value":"%s"}}' "$v"
fi
"""

READ_ONLY_POLICY = """
path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }
path "sys/internal/ui/mounts" { capabilities = ["read"] }
"""

OWNER_POLICY = """
path "secret/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
path "sys/coffer/*" { capabilities = ["read", "list"] }
path "sys/internal/ui/mounts" { capabilities = ["read"] }
"""


def free_port() -> int:
    fixed = os.environ.get("COFFER_UI_TEST_PORT")
    if fixed:
        return int(fixed)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    """The running dev server and what the tests need to know of it."""

    base: str
    root: str
    audit_log: Path
    ro_token: str
    owner_user: str
    owner_password: str

    def api(self, method: str, path: str, json=None, token: str | None = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.base}/v1/{path}",
            json=json,
            headers={"X-Vault-Token": token or self.root},
            timeout=10,
        )


@pytest.fixture(scope="session")
def server():
    tmp = Path(tempfile.mkdtemp(prefix="coffer-ui-"))
    (tmp / "audit").mkdir()
    rotator = tmp / "slow-rotator.sh"
    rotator.write_text(SLOW_ROTATOR)
    rotator.chmod(0o755)
    config = tmp / "dev.toml"
    config.write_text(f'[rotator.slow]\ntype = "command"\nprogram = "{rotator}"\ntimeout = "10s"\n')
    root = "ui-" + secrets.token_hex(12)
    port = free_port()
    binary = Path(os.environ.get("COFFER_BIN", REPO_ROOT / "target" / "debug" / "coffer"))
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [str(binary), "server", "--dev", "--dev-root-token-id", root,
         "--dev-listen-address", f"127.0.0.1:{port}", "--dev-audit-dir", str(tmp / "audit"),
         "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(tmp)},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/v1/sys/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the dev server did not start: " + (tmp / "server.log").read_text())
        time.sleep(0.1)
    audit_log = tmp / "audit" / "audit.log"
    s = Server(base, root, audit_log, "", "owner", secrets.token_urlsafe(18))

    def ok(r: requests.Response):
        assert r.status_code in (200, 204), (r.status_code, r.text)
        return r

    ok(s.api("PUT", "sys/audit/file", {"type": "file", "options": {"file_path": str(audit_log)}}))
    ok(s.api("PUT", "sys/policies/acl/ro", {"policy": READ_ONLY_POLICY}))
    ok(s.api("PUT", "sys/policies/acl/owner", {"policy": OWNER_POLICY}))
    ok(s.api("POST", "sys/auth/userpass", {"type": "userpass"}))
    ok(s.api("POST", "auth/userpass/users/owner", {"password": s.owner_password, "policies": ["owner"]}))
    s.ro_token = ok(s.api("POST", "auth/token/create", {"policies": ["ro"], "ttl": "1h"})).json()["auth"]["client_token"]
    ok(s.api("POST", "secret/data/billing/stripe", {"data": {"api_key": "sk-" + secrets.token_hex(8)}}))
    ok(s.api("POST", "secret/lifecycle/billing/stripe", {
        "owner": "payments", "secret_type": "api_key", "origin": "third_party", "vendor": "Stripe",
        "rotation": {"period": "30d", "rotator": "command", "settings": {"name": "slow"}},
    }))
    ok(s.api("POST", "secret/data/app/db", {"data": {"password": secrets.token_hex(8)}}))
    ok(s.api("POST", "secret/lifecycle/app/db", {
        "owner": "platform", "secret_type": "password", "origin": "internal",
        "rotation": {"period": "7d", "rotator": "generate"},
    }))
    try:
        yield s
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    try:
        yield pg
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
