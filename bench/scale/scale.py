"""Fills a fresh Coffer node to each size and prints what the scale targets ask.

Driven by bench/scale/run; see there for the environment it reads. Every
figure of a size comes from the same run, so the ratios (read p99 against
the smallest size, the index pass against the full pass) compare like with
like on the same machine.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BIN = os.environ["COFFER_BIN"]
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "10000,100000").split(",") if s]
STORAGE = os.environ.get("BENCH_STORAGE", "sqlite")
PG_URL = os.environ.get("COFFER_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
WRITERS = 16
READS = 2000
MANAGED_SHARE = 10  # one secret in ten has a lifecycle record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection per thread."""

    local = threading.local()
    #: Bumped when a server restarts: every thread then reconnects.
    generation = 0

    def __init__(self, port: int, token: str | None):
        self.port, self.token = port, token

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        try:
            return self._call(method, path, body)
        except (http.client.HTTPException, OSError):
            # The server closes idle keep-alive connections: one retry on a new one.
            return self._call(method, path, body)

    def _call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        c = getattr(self.local, "c", None)
        if c is None or getattr(self.local, "key", None) != (self.port, Conn.generation):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.local.c, self.local.key = c, (self.port, Conn.generation)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["X-Vault-Token"] = self.token
        data = None if body is None else json.dumps(body)
        try:
            c.request(method, f"/v1/{path}", body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
        except (http.client.HTTPException, OSError):
            self.local.c = None
            raise
        return r.status, (json.loads(raw) if raw else {})


class Node:
    """A production server on a fresh store, initialised and unsealed."""

    def __init__(self, work: Path, size: int):
        self.work, self.port = work, free_port()
        self.config = work / "coffer.toml"
        if STORAGE == "postgresql":
            table = f"bench_scale_{size}_{secrets.token_hex(4)}"
            storage = f"[storage.postgresql]\nconnection_url = {json.dumps(PG_URL)}\ntable = {json.dumps(table)}\n"
        else:
            storage = f"[storage.sqlite]\npath = {json.dumps(str(work / 'coffer.db'))}\n"
        self.config.write_text(
            storage + f'\n[listener.tcp]\naddress = "127.0.0.1:{self.port}"\ntls_disable = true\n'
        )
        self.proc = None
        self.start()
        anon = Conn(self.port, None)
        st, init = anon.call("POST", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        assert st == 200, init
        self.key, self.token = init["keys"][0], init["root_token"]
        self.unseal()
        self.api = Conn(self.port, self.token)
        st, body = self.api.call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        assert st in (200, 204), body

    def start(self) -> None:
        log = open(self.work / "server.log", "ab")
        self.proc = subprocess.Popen([BIN, "server", "--config", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def unseal(self) -> float:
        t0 = time.perf_counter()
        st, body = Conn(self.port, None).call("POST", "sys/unseal", {"key": self.key})
        assert st == 200 and body.get("sealed") is False, body
        return time.perf_counter() - t0

    def restart(self) -> float:
        self.stop()
        Conn.generation += 1
        self.start()
        return self.unseal()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def pass_quantiles(self) -> dict[str, float]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/v1/sys/metrics?format=prometheus", headers={"X-Vault-Token": self.token})
        text = conn.getresponse().read().decode()
        conn.close()
        out = {}
        for m in re.finditer(r'^coffer_lifecycle_scheduler_pass\{quantile="([0-9.]+)"\} ([0-9.e+-]+)$', text, re.M):
            out[m.group(1)] = float(m.group(2))
        m = re.search(r"^coffer_lifecycle_scheduler_pass_count ([0-9]+)$", text, re.M)
        out["count"] = float(m.group(1)) if m else 0.0
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def fill(node: Node, size: int) -> float:
    lifecycle = {
        "owner": "bench", "secret_type": "password",
        "rotation": {"period": "365d", "rotator": "generate", "settings": {"field": "password"}},
    }

    def write(i: int) -> None:
        st, body = node.api.call("POST", f"secret/data/s/{i:07d}", {"data": {"password": secrets.token_hex(12)}})
        assert st == 200, body
        if i % MANAGED_SHARE == 0:
            st, body = node.api.call("POST", f"secret/lifecycle/s/{i:07d}", lifecycle)
            assert st in (200, 204), body

    t0 = time.perf_counter()
    with ThreadPoolExecutor(WRITERS) as pool:
        for _ in pool.map(write, range(size), chunksize=256):
            pass
    return size / (time.perf_counter() - t0)


def read_p99(node: Node, size: int) -> float:
    lat = []
    for _ in range(READS):
        i = random.randrange(size)
        t0 = time.perf_counter()
        st, _ = node.api.call("GET", f"secret/data/s/{i:07d}")
        lat.append(time.perf_counter() - t0)
        assert st == 200
    return statistics.quantiles(lat, n=100)[98] * 1000


def list_ms(node: Node, query: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    st, body = node.api.call("LIST", f"secret/metadata/s/{query}")
    assert st == 200, body
    return (time.perf_counter() - t0) * 1000, len(body["data"]["keys"])


def main() -> None:
    print(f"coffer scale benchmark: storage {STORAGE}, sizes {SIZES}, {MANAGED_SHARE}% under lifecycle, "
          f"{os.cpu_count()} cores")
    base_p99 = None
    for size in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            node = Node(Path(tmp), size)
            try:
                rate = fill(node, size)
                rss_full = node.rss_mb()
                unseal_s = node.restart()
                rss_unsealed = node.rss_mb()
                # The first pass (a full read of every record) runs at once
                # after the unseal; index passes every 5 s after it.
                deadline = time.monotonic() + 120
                q = {}
                while time.monotonic() < deadline:
                    q = node.pass_quantiles()
                    if q.get("count", 0) >= 4:
                        break
                    time.sleep(1)
                p99 = read_p99(node, size)
                base_p99 = base_p99 or p99
                full_list, n_full = list_ms(node, "")
                page_list, n_page = list_ms(node, "?limit=100")
                full_pass, index_pass = q.get("1", float("nan")), q.get("0.5", float("nan"))
                print(f"\n{size:>9,} secrets ({size // MANAGED_SHARE:,} managed)")
                print(f"  fill (durable writes, {WRITERS} writers)   {rate:10.0f} secrets/s")
                print(f"  RSS after fill / after restart+unseal {rss_full:8.1f} MB / {rss_unsealed:.1f} MB")
                print(f"  unseal                                 {unseal_s * 1000:10.1f} ms")
                print(f"  read p99 ({READS} random reads)        {p99:10.2f} ms   "
                      f"x{p99 / base_p99:.2f} of the smallest size (target <= 1.5)")
                print(f"  LIST the folder ({n_full:,} keys)       {full_list:10.1f} ms")
                print(f"  LIST one page (limit=100, {n_page} keys)  {page_list:10.1f} ms")
                print(f"  scheduler pass: full read (first pass) {full_pass:10.1f} ms")
                print(f"  scheduler pass: due index (median)     {index_pass:10.2f} ms   "
                      f"({full_pass / index_pass if index_pass else float('inf'):.0f}x less)")
            finally:
                node.stop()


if __name__ == "__main__":
    main()
