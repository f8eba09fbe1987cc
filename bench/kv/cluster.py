"""KV v2 on PostgreSQL against SQLite, and two PostgreSQL nodes against one.

Driven by `bench/kv/run --storage postgresql` (see there). Starts, in one
run and on this machine: a production node on a fresh SQLite file, and two
production nodes sharing fresh PostgreSQL tables; measures each with the
same wrk scripts as the SQLite benchmark; then checks read-your-writes
across the two nodes (a write acknowledged by A, read at once on B) and
prints the figures against the targets.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = os.environ["COFFER_BIN"]
HERE = Path(os.environ["BENCH_DIR"])
PG_URL = os.environ.get("COFFER_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
RYW_ROUNDS = int(os.environ.get("BENCH_RYW_ROUNDS", "500"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, token: str | None = None, body=None) -> tuple[int, dict]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Vault-Token"] = token
    c.request(method, f"/v1/{path}", body=None if body is None else json.dumps(body), headers=headers)
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, (json.loads(raw) if raw else {})


class Node:
    def __init__(self, work: Path, storage: str):
        self.port = free_port()
        cfg = work / f"node-{self.port}.toml"
        cfg.write_text(storage + f'\n[listener.tcp]\naddress = "127.0.0.1:{self.port}"\ntls_disable = true\n')
        self.log = open(work / f"node-{self.port}.log", "ab")
        self.proc = subprocess.Popen([BIN, "server", "--config", str(cfg)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("a node did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def init(node: Node) -> tuple[str, str]:
    st, body = call(node.port, "POST", "sys/init", body={"secret_shares": 1, "secret_threshold": 1})
    assert st == 200, body
    return body["keys"][0], body["root_token"]


def unseal(node: Node, key: str, token: str, mount: bool) -> None:
    st, body = call(node.port, "POST", "sys/unseal", body={"key": key})
    assert st == 200 and body.get("sealed") is False, body
    if mount:
        st, body = call(node.port, "POST", "sys/mounts/secret", token, {"type": "kv", "options": {"version": "2"}})
        assert st in (200, 204), body
    st, body = call(node.port, "POST", "secret/data/bench/read", token, {"data": {"user": "bench", "n": 1}})
    assert st == 200, body


def wrk(script: str, port: int, token: str, conns: int) -> subprocess.Popen:
    url = f"http://127.0.0.1:{port}" + ("/v1/secret/data/bench/read" if script == "read.lua" else "")
    env = dict(os.environ, COFFER_BENCH_TOKEN=token, BENCH_DIR=str(HERE))
    return subprocess.Popen(
        ["wrk", f"-t{THREADS}", f"-c{conns}", f"-d{DURATION}", "-s", str(HERE / script), url],
        stdout=subprocess.PIPE, text=True, env=env,
    )


def result(p: subprocess.Popen) -> dict[str, float]:
    out, _ = p.communicate()
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def run(script: str, targets: list[tuple[int, str]]) -> dict[str, float]:
    """One wrk per target at once, the connections split between them."""
    procs = [wrk(script, port, token, max(1, CONNS // len(targets))) for port, token in targets]
    rs = [result(p) for p in procs]
    return {
        "rps": sum(r["rps"] for r in rs),
        "p99_ms": max(r["p99_us"] for r in rs) / 1000,
        "errors": sum(r["errors"] for r in rs),
    }


def read_your_writes(a: int, b: int, token: str) -> tuple[float, float]:
    """A write acknowledged by A, then at once a read on B: the share of
    reads that see it, and the worst write-to-read time."""
    seen, worst = 0, 0.0
    for i in range(RYW_ROUNDS):
        t0 = time.perf_counter()
        st, body = call(a, "POST", "secret/data/bench/ryw", token, {"data": {"i": i}})
        assert st == 200, body
        version = body["data"]["version"]
        st, body = call(b, "GET", "secret/data/bench/ryw", token)
        worst = max(worst, time.perf_counter() - t0)
        if st == 200 and body["data"]["metadata"]["version"] >= version:
            seen += 1
    return 100.0 * seen / RYW_ROUNDS, worst * 1000


def main() -> int:
    table = f"bench_kv_{secrets.token_hex(4)}"
    pg = f"[storage.postgresql]\nconnection_url = {json.dumps(PG_URL)}\ntable = {json.dumps(table)}\n"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nodes = []
        try:
            sq = Node(work, f"[storage.sqlite]\npath = {json.dumps(str(work / 'bench.db'))}\n")
            nodes.append(sq)
            k, t_sq = init(sq)
            unseal(sq, k, t_sq, True)
            a = Node(work, pg)
            b = Node(work, pg)
            nodes += [a, b]
            k, t_pg = init(a)
            unseal(a, k, t_pg, True)
            unseal(b, k, t_pg, False)

            figures = {
                "sqlite read": run("read.lua", [(sq.port, t_sq)]),
                "sqlite write": run("write.lua", [(sq.port, t_sq)]),
                "postgresql read, 1 node": run("read.lua", [(a.port, t_pg)]),
                "postgresql write, 1 node": run("write.lua", [(a.port, t_pg)]),
                "postgresql read, 2 nodes": run("read.lua", [(a.port, t_pg), (b.port, t_pg)]),
                "postgresql write, 2 nodes": run("write.lua", [(a.port, t_pg), (b.port, t_pg)]),
            }
            ryw, worst = read_your_writes(a.port, b.port, t_pg)
        finally:
            for n in nodes:
                n.stop()
            subprocess.run(
                ["psql", PG_URL, "-qAtc",
                 "".join(f'DROP TABLE IF EXISTS "{table}{s}";' for s in ["", "_meta", "_log", "_leader"])],
                check=False, capture_output=True,
            )
    ok = lambda b: "PASS" if b else "MISS"
    print(f"coffer KV v2 on PostgreSQL ({CONNS} connections, {THREADS} wrk threads per run, {DURATION} each; "
          f"{os.cpu_count()} cores shared by the nodes, PostgreSQL and wrk)")
    for name, f in figures.items():
        print(f"  {name:28} {f['rps']:9.0f} req/s   p99 {f['p99_ms']:7.2f} ms   errors {f['errors']:.0f}")
    pr, sr = figures["postgresql read, 1 node"]["rps"], figures["sqlite read"]["rps"]
    pw = figures["postgresql write, 1 node"]["rps"]
    print(f"  postgresql/sqlite reads      {100 * pr / sr if sr else 0:8.1f} %    target >= 80 %      {ok(pr >= 0.8 * sr)}")
    print(f"  postgresql durable writes    {pw:8.0f} /s   target >= 2000/s    {ok(pw >= 2000)}")
    print(f"  read-your-writes A->B        {ryw:8.1f} %    target 100 %        {ok(ryw == 100.0)}"
          f"   (worst write+read {worst:.1f} ms over {RYW_ROUNDS} rounds)")
    return 1 if any(f["errors"] for f in figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
