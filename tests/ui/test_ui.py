"""The web UI in a real headless browser against a real `coffer server --dev`.

Flows: log in (userpass and token); browse to a secret; reveal it (an entry
appears in the file audit device); edit on a stale version (the error is
shown); rotate and watch the steps finish; a read-only user sees no edit
buttons and gets 403 posting anyway; a POST without the CSRF token is
refused; the CSP header is on every page. Screenshots of the main pages at
375 and 1440 px go to target/ui-screenshots/.
"""

from __future__ import annotations

import json
import re
import time

CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"


def login_token(page, server, token):
    page.goto(f"{server.base}/ui/login")
    page.get_by_label("Token", exact=True).fill(token)
    page.get_by_role("button", name="Log in with token").click()
    page.wait_for_url("**/ui/status")


def login_userpass(page, server):
    page.goto(f"{server.base}/ui/login")
    page.get_by_label("User name").fill(server.owner_user)
    page.get_by_label("Password").fill(server.owner_password)
    page.get_by_role("button", name="Log in with password").click()
    page.wait_for_url("**/ui/status")


def audit_entries(server):
    if not server.audit_log.exists():
        return []
    out = []
    for line in server.audit_log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_login_and_browse_to_a_secret(page, server):
    login_userpass(page, server)
    assert page.get_by_text("Signed in as").is_visible()
    page.get_by_role("link", name="Secrets").click()
    page.get_by_role("link", name="secret/").click()
    page.get_by_role("link", name="billing/").click()
    page.get_by_role("link", name="stripe").click()
    page.wait_for_url(re.compile(r"/ui/kv/secret\?mount=secret&path=billing%2Fstripe$"))
    assert page.locator("h1").inner_text() == "secret/billing/stripe"
    assert page.get_by_role("heading", name="Versions").is_visible()
    assert page.get_by_text("payments").first.is_visible()
    # No value is on the page before a reveal.
    assert page.locator(".value").count() == 0


def test_reveal_is_an_audited_read_and_can_be_copied(page, server):
    login_token(page, server, server.root)
    expected = server.api("GET", "secret/data/app/db").json()["data"]["data"]["password"]
    before = len([e for e in audit_entries(server)
                  if e.get("type") == "response" and e.get("request", {}).get("path") == "secret/data/app/db"
                  and e["request"].get("operation") == "read"])
    page.goto(f"{server.base}/ui/kv/secret?mount=secret&path=app/db")
    page.get_by_role("button", name="Reveal values").click()
    value = page.locator("#value-0")
    assert value.inner_text() == expected
    assert page.get_by_text("recorded in the audit trail").is_visible()
    # The audit device has the read, made with the session's token.
    deadline = time.monotonic() + 5
    while True:
        reads = [e for e in audit_entries(server)
                 if e.get("type") == "response" and e.get("request", {}).get("path") == "secret/data/app/db"
                 and e["request"].get("operation") == "read"]
        if len(reads) > before or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(reads) == before + 1, reads[-2:]
    assert expected not in server.audit_log.read_text(), "the audit log holds HMACs, not the value"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy the value of password").click()
    page.wait_for_function("document.querySelector('button[data-copy]').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == expected


def test_edit_on_a_stale_version_shows_the_error(page, server):
    login_token(page, server, server.root)
    server.api("POST", "secret/data/app/config", {"data": {"mode": "blue"}})
    page.goto(f"{server.base}/ui/kv/secret?mount=secret&path=app/config")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Values: one key=value a line, or a JSON object").fill("mode=green")
    # Someone else writes a new version meanwhile.
    server.api("POST", "secret/data/app/config", {"data": {"mode": "red"}})
    page.get_by_role("button", name="Save new version").click()
    alert = page.get_by_role("alert")
    assert "you started from version 1, but version 2 is now current" in alert.inner_text()
    assert server.api("GET", "secret/data/app/config").json()["data"]["data"]["mode"] == "red"
    # Creating through the UI: a new secret in a folder.
    page.goto(f"{server.base}/ui/kv/browse?mount=secret&path=app/")
    page.get_by_role("link", name="Create a secret here").click()
    page.get_by_label("Path inside secret/").fill("app/new-one")
    page.get_by_label("Values: one key=value a line, or a JSON object").fill("k=v1")
    page.get_by_role("button", name="Save new version").click()
    page.wait_for_url(re.compile(r"/ui/kv/secret\?mount=secret&path=app%2Fnew-one$"))
    # Delete needs a confirmation step.
    page.get_by_role("link", name="Delete").first.click()
    assert "can be undeleted later" in page.locator("main").inner_text()
    page.get_by_role("button", name="Yes, delete version 1").click()
    page.get_by_role("link", name="Undelete").wait_for()
    assert server.api("GET", "secret/data/app/new-one").status_code == 404


def test_rotate_now_and_watch_the_steps_finish(page, server):
    login_token(page, server, server.root)
    page.goto(f"{server.base}/ui/rotation?mount=secret&path=billing/stripe")
    page.get_by_role("button", name="Rotate now").click()
    seen = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            running = page.locator("ol.steps li.running").all_inner_texts()
            text = page.locator("main").inner_text()
        except Exception:  # the page is refreshing
            continue
        seen.update(t.split(":")[0] for t in running)
        if "Rotation finished" in text:
            break
        time.sleep(0.2)
    assert "Rotation finished" in page.locator("main").inner_text()
    assert page.locator("ol.steps li.done").count() == 4
    assert len(seen) >= 2, f"the progress page showed too few running steps: {seen}"
    assert seen <= {"create", "set", "test", "finish"}
    meta = server.api("GET", "secret/metadata/billing/stripe").json()["data"]
    assert meta["current_version"] == 2


def test_a_read_only_user_sees_no_edit_buttons_and_gets_403_posting_anyway(page, server):
    login_token(page, server, server.ro_token)
    page.goto(f"{server.base}/ui/kv/secret?mount=secret&path=app/db")
    assert page.get_by_role("button", name="Reveal values").is_visible()
    for name in ("Edit", "Delete", "Destroy", "Rotate now"):
        assert page.get_by_role("link", name=name, exact=True).count() == 0, name
        assert page.get_by_role("button", name=name, exact=True).count() == 0, name
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    r = page.request.post(f"{server.base}/ui/kv/write", form={
        "csrf": csrf, "mount": "secret", "path": "app/db", "cas": "1", "data": "password=mine"})
    assert r.status == 403
    assert "do not allow writing on secret/data/app/db" in r.text()
    version = server.api("GET", "secret/metadata/app/db").json()["data"]["current_version"]
    r = page.request.post(f"{server.base}/ui/rotate", form={"csrf": csrf, "mount": "secret", "path": "app/db"})
    # The rotation is refused by the core; the progress page it leads to is
    # itself not readable by this token: a 403 in words.
    assert r.status == 403
    assert "do not allow reading on secret/lifecycle/app/db" in r.text()
    time.sleep(0.3)
    assert server.api("GET", "secret/metadata/app/db").json()["data"]["current_version"] == version
    # A page the token may not read says so in words.
    resp = page.goto(f"{server.base}/ui/access")
    assert resp.status == 403
    assert "do not allow listing on sys/policies/acl/" in page.locator("main").inner_text()


def test_a_post_without_the_csrf_token_is_refused(page, server):
    login_token(page, server, server.root)
    r = page.request.post(f"{server.base}/ui/kv/reveal", form={"mount": "secret", "path": "app/db"})
    assert r.status == 403
    assert "CSRF" in r.text()
    r = page.request.post(f"{server.base}/ui/kv/act", form={
        "csrf": "0" * 64, "mount": "secret", "path": "app/db", "action": "destroy", "version": "1"})
    assert r.status == 403
    assert server.api("GET", "secret/data/app/db").status_code == 200


MAIN_PAGES = [
    ("status", "/ui/status"),
    ("secrets", "/ui/kv/browse?mount=secret&path=billing/"),
    ("secret", "/ui/kv/secret?mount=secret&path=billing/stripe"),
    ("inventory", "/ui/inventory"),
    ("rotation", "/ui/rotation?mount=secret&path=billing/stripe"),
    ("audit-who-read", "/ui/audit/who-read?path=secret/data/app/db"),
    ("audit-events", "/ui/audit/events?mount=secret&path=app/db"),
    ("policy", "/ui/access/policy?name=owner"),
    ("auth-methods", "/ui/access/auth"),
    ("matrix", "/ui/access/matrix"),
    ("plan", "/ui/plan"),
    ("check", "/ui/check"),
]


def test_csp_on_every_page_and_screenshots(browser, server, screenshots):
    for width in (375, 1440):
        ctx = browser.new_context(viewport={"width": width, "height": 900})
        page = ctx.new_page()
        violations = []
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        resp = page.goto(f"{server.base}/ui/login")
        assert resp.headers["content-security-policy"] == CSP
        page.screenshot(path=str(screenshots / f"login-{width}.png"), full_page=True)
        login_token(page, server, server.root)
        for name, path in MAIN_PAGES:
            resp = page.goto(f"{server.base}{path}")
            assert resp.status == 200, (path, resp.status)
            h = resp.headers
            assert h["content-security-policy"] == CSP, path
            assert h["referrer-policy"] == "no-referrer"
            assert h["cache-control"] == "no-store"
            assert h["x-content-type-options"] == "nosniff"
            # The layout fits the viewport: nothing scrolls sideways.
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .slice(0, 3).map(e => e.tagName + ' ' + e.textContent.slice(0, 80))""")
            assert overflow <= 1, (path, width, overflow, wide)
            page.screenshot(path=str(screenshots / f"{name}-{width}.png"), full_page=True)
        page.goto(f"{server.base}/ui/kv/secret?mount=secret&path=app/db")
        page.get_by_role("button", name="Reveal values").click()
        page.screenshot(path=str(screenshots / f"revealed-{width}.png"), full_page=True)
        assert not violations, violations
        ctx.close()


def test_keyboard_reaches_the_login_form(page, server):
    page.goto(f"{server.base}/ui/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Coffer"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(server.root)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/status")
    # Every input of every form has a label.
    for path in ("/ui/audit", "/ui/inventory", "/ui/kv/edit?mount=secret&path=app/db"):
        page.goto(f"{server.base}{path}")
        unlabeled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(e => !(e.id && document.querySelector(`label[for="${e.id}"]`)) && !e.getAttribute('aria-label'))
            .map(e => e.name)""")
        assert unlabeled == [], (path, unlabeled)


def test_ui_switched_off_in_the_config_is_a_404(tmp_path):
    """`ui = false` in the server configuration: /ui/ is a 404, the API works."""
    import os
    import subprocess

    import requests

    from conftest import REPO_ROOT, free_port

    config = tmp_path / "dev.toml"
    config.write_text("ui = false\n")
    port = free_port() + (1 if os.environ.get("COFFER_UI_TEST_PORT") else 0)
    binary = os.environ.get("COFFER_BIN", str(REPO_ROOT / "target" / "debug" / "coffer"))
    proc = subprocess.Popen(
        [binary, "server", "--dev", "--dev-listen-address", f"127.0.0.1:{port}", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{base}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        for path in ("/ui/", "/ui/login", "/ui/assets/style.css"):
            assert requests.get(base + path, timeout=5).status_code == 404, path
    finally:
        proc.terminate()
        proc.wait(timeout=10)
