"""Event fan-out: N WebSocket subscribers to sys/events/subscribe/* on one
server, then E KV writes; reports the server's resident memory per
subscriber, its CPU time per event delivered to all N, and the time until
every subscriber had every event. Stdlib only (a minimal WebSocket
reader: the server's frames are unmasked, the client sends none).

Usage: fanout.py ADDR TOKEN SERVER_PID [N=1000] [E=100]
"""
import asyncio
import base64
import json
import os
import sys
import time
import urllib.request

ADDR, TOKEN, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
N = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
E = int(sys.argv[5]) if len(sys.argv) > 5 else 100
HOST, PORT = ADDR.split("//")[1].split(":")
PORT = int(PORT)
TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_secs():
    fields = open(f"/proc/{PID}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def subscriber(counts, i, ready):
    reader, writer = await asyncio.open_connection(HOST, PORT)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((
        f"GET /v1/sys/events/subscribe/kv-v2/data-write?json=true HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nX-Vault-Token: {TOKEN}\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    ready.append(i)
    while True:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(n)
        op = b0 & 0x0F
        if op == 8:
            return
        if op == 1:
            counts[i] += 1
            if counts[i] == E:
                counts["done"].append(time.monotonic())
                json.loads(payload)


def write(k):
    req = urllib.request.Request(
        f"{ADDR}/v1/secret/data/fanout/k{k}", method="POST",
        data=json.dumps({"data": {"v": str(k)}}).encode(),
        headers={"X-Vault-Token": TOKEN, "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()


async def main():
    counts = {i: 0 for i in range(N)}
    counts["done"] = []
    ready = []
    rss0 = rss_kib()
    tasks = []
    for i in range(N):
        tasks.append(asyncio.create_task(subscriber(counts, i, ready)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    while len(ready) < N:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    rss1 = rss_kib()
    cpu0 = cpu_secs()
    t0 = time.monotonic()
    loop = asyncio.get_running_loop()
    for k in range(E):
        await loop.run_in_executor(None, write, k)
    t_written = time.monotonic()
    while len(counts["done"]) < N and time.monotonic() - t0 < 120:
        await asyncio.sleep(0.01)
    t_all = max(counts["done"]) if len(counts["done"]) == N else float("nan")
    cpu1 = cpu_secs()
    rss2 = rss_kib()
    got = sum(v for k, v in counts.items() if k != "done")
    print(f"RESULT subscribers={N} events={E} delivered={got}/{N * E} "
          f"rss_idle_mib={rss0 / 1024:.1f} rss_subscribed_mib={rss1 / 1024:.1f} "
          f"rss_per_subscriber_kib={(rss1 - rss0) / N:.1f} rss_after_mib={rss2 / 1024:.1f} "
          f"server_cpu_s={cpu1 - cpu0:.2f} cpu_ms_per_event_to_all={(cpu1 - cpu0) * 1000 / E:.1f} "
          f"writes_s={t_written - t0:.2f} last_delivery_after_first_write_s={t_all - t0:.2f}")
    for t in tasks:
        t.cancel()


asyncio.run(main())
