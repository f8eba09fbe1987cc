"""Fixtures for the Vault-compatibility suite: real Coffer server processes.

Every fixture starts the actual `coffer` binary (``$COFFER_BIN``, default
``<repo>/target/debug/coffer``) on a free loopback port and talks to it over
HTTP, through hvac where hvac has a method and through `requests` for raw
wire checks.

* ``dev_server`` (session): ``coffer server --dev`` with a generated root token.
* ``prod_server`` (per test): a config-file server on a fresh SQLite file,
  uninitialised and sealed.
* ``unsealed_prod`` (per test): ``prod_server`` initialised and unsealed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import hvac
import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0

# A user's own Vault settings must not leak into the suite: hvac reads
# VAULT_TOKEN, VAULT_ADDR and ~/.vault-token whenever a client is made
# without a token. The suite runs with none of them and an empty HOME.
for _var in ("VAULT_TOKEN", "VAULT_ADDR", "VAULT_NAMESPACE", "COFFER_TOKEN", "COFFER_ADDR"):
    os.environ.pop(_var, None)
os.environ["HOME"] = tempfile.mkdtemp(prefix="coffer-compat-home-")


def coffer_bin() -> Path:
    """Path of the coffer binary under test."""
    return Path(os.environ.get("COFFER_BIN", REPO_ROOT / "target" / "debug" / "coffer"))


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uid(prefix: str = "t") -> str:
    """A unique path segment so tests sharing a server never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def gen_token() -> str:
    """A throwaway token id assembled at run time (never a literal credential)."""
    return "dev-" + secrets.token_hex(12)


@dataclasses.dataclass
class CofferServer:
    """One running `coffer server` process and where its output goes."""

    proc: subprocess.Popen
    addr: str
    log_path: Path

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def url(self, path: str) -> str:
        """Absolute URL of an API path such as ``sys/health``."""
        return f"{self.addr}/v1/{path.lstrip('/')}"

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_server(args: list[str], workdir: Path, port: int) -> CofferServer:
    """Start `coffer <args>` and wait until /v1/sys/health answers anything."""
    binary = coffer_bin()
    if not binary.exists():
        pytest.fail(f"coffer binary not found at {binary}; run `cargo build -p coffer` or set COFFER_BIN")
    log_path = workdir / f"server-{port}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(binary), *args],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    srv = CofferServer(proc=proc, addr=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"coffer exited with {proc.returncode} at startup:\n{srv.output()}")
        try:
            requests.get(srv.url("sys/health"), timeout=1)
            return srv
        except requests.RequestException:
            time.sleep(0.1)
    srv.stop()
    pytest.fail(f"coffer did not answer on {srv.addr} within {START_TIMEOUT_S}s:\n{srv.output()}")


@dataclasses.dataclass
class DevServer:
    """A dev-mode server and its root token."""

    server: CofferServer
    token: str

    @property
    def addr(self) -> str:
        """Base address, e.g. http://127.0.0.1:PORT."""
        return self.server.addr

    def url(self, path: str) -> str:
        """Absolute URL of an API path."""
        return self.server.url(path)


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory) -> DevServer:
    """`coffer server --dev` (in memory, unsealed, KV v2 at secret/)."""
    workdir = tmp_path_factory.mktemp("dev")
    port = free_port()
    token = gen_token()
    srv = start_server(
        ["server", "--dev", "--dev-listen-address", f"127.0.0.1:{port}", "--dev-root-token-id", token],
        workdir,
        port,
    )
    yield DevServer(server=srv, token=token)
    srv.stop()


@pytest.fixture
def client(dev_server) -> hvac.Client:
    """An hvac client holding the dev server's root token."""
    return hvac.Client(url=dev_server.addr, token=dev_server.token, timeout=30)


class Raw:
    """Thin `requests` wrapper for wire-level checks against one server."""

    def __init__(self, addr: str, token: str | None):
        self.addr = addr
        self.token = token
        self.session = requests.Session()

    def __call__(self, method: str, path: str, token: str | None = ..., headers=None, **kw) -> requests.Response:
        hdrs = dict(headers or {})
        tok = self.token if token is ... else token
        if tok is not None and "Authorization" not in hdrs:
            hdrs.setdefault("X-Vault-Token", tok)
        kw.setdefault("timeout", 30)
        return self.session.request(method, f"{self.addr}/v1/{path.lstrip('/')}", headers=hdrs, **kw)


@pytest.fixture
def raw(dev_server) -> Raw:
    """Raw HTTP against the dev server, root token by default."""
    return Raw(dev_server.addr, dev_server.token)


def write_config(workdir: Path, port: int) -> Path:
    """A production TOML config on a fresh SQLite file in ``workdir``."""
    db = workdir / "data" / "coffer.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "coffer.toml"
    cfg.write_text(
        "[storage.sqlite]\n"
        f"path = {json.dumps(str(db))}\n"
        "\n[listener.tcp]\n"
        f'address = "127.0.0.1:{port}"\n'
        "tls_disable = true\n"
    )
    return cfg


@dataclasses.dataclass
class ProdServer:
    """A config-file server (fresh, uninitialised, sealed)."""

    server: CofferServer
    config: Path
    workdir: Path
    port: int

    @property
    def addr(self) -> str:
        """Base address, e.g. http://127.0.0.1:PORT."""
        return self.server.addr

    def url(self, path: str) -> str:
        """Absolute URL of an API path."""
        return self.server.url(path)

    def client(self, token: str | None = None) -> hvac.Client:
        """A fresh hvac client for this server."""
        return hvac.Client(url=self.addr, token=token, timeout=30)

    def restart(self) -> None:
        """Stop the process and start it again on the same file and port."""
        self.server.stop()
        self.server = start_server(["server", "--config", str(self.config)], self.workdir, self.port)


@pytest.fixture
def prod_server(tmp_path) -> ProdServer:
    """A fresh uninitialised production server on a temporary SQLite file."""
    port = free_port()
    cfg = write_config(tmp_path, port)
    srv = start_server(["server", "--config", str(cfg)], tmp_path, port)
    prod = ProdServer(server=srv, config=cfg, workdir=tmp_path, port=port)
    yield prod
    prod.server.stop()


@dataclasses.dataclass
class UnsealedProd:
    """A production server initialised (3 shares, threshold 2) and unsealed."""

    prod: ProdServer
    keys: list[str]
    root_token: str

    def client(self) -> hvac.Client:
        """An hvac client with the root token."""
        return self.prod.client(self.root_token)


@pytest.fixture
def unsealed_prod(prod_server) -> UnsealedProd:
    """`prod_server` after sys/init (3 shares, threshold 2) and unseal."""
    c = prod_server.client()
    init = c.sys.initialize(secret_shares=3, secret_threshold=2)
    st = c.sys.submit_unseal_keys(init["keys"][:2])
    assert st["sealed"] is False, st
    return UnsealedProd(prod=prod_server, keys=init["keys"], root_token=init["root_token"])


def start_dev_server(workdir: Path) -> tuple[CofferServer, str]:
    """A dev server of a module's own, with a generated root token.

    Modules that make deliberate login failures use one, so that those
    failures do not count against the shared server's per-address limit.
    """
    port = free_port()
    token = gen_token()
    srv = start_server(
        ["server", "--dev", "--dev-listen-address", f"127.0.0.1:{port}", "--dev-root-token-id", token],
        workdir,
        port,
    )
    return srv, token


@pytest.fixture
def root(server) -> hvac.Client:
    """A root client of the module's own `server` fixture."""
    srv, token = server
    return hvac.Client(url=srv.addr, token=token, timeout=30)


@pytest.fixture
def anon(server) -> hvac.Client:
    """A client without a token, of the module's own `server` fixture."""
    srv, _ = server
    return hvac.Client(url=srv.addr, timeout=30)
