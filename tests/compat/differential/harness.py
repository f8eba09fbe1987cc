"""The differential harness: every request goes to OpenBao and to Coffer,
and the two answers are compared item by item.

An *item* is one thing that can match or not: the status code, whether a
body is there, whether ``errors`` is there, each key of the JSON down to
``MAX_DEPTH`` levels (present on both sides or not), each value's type, and
each deterministic value. Random values (ids, tokens, accessors, times) are
compared by presence and type only; countdowns (``ttl``) within a few
seconds. A mismatch that matches an entry of ``allowlist.py`` is counted as
allow-listed; any other fails the scenario (see ``conftest.py``).

Values that differ between the servers by construction (a token one of them
issued, an accessor, a role id) are carried per side: ``Pair.bind`` stores
both sides' values under a name, and ``V(name)`` in a body, or ``{name}`` in
a path, stands for each side's own value when the request is sent.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import requests

from differential.allowlist import ALLOW

MAX_DEPTH = 4
TTL_SLACK_S = 5

#: Keys whose values are random or clock-derived wherever they appear:
#: compared by presence and type only.
VOLATILE_KEYS = {
    "request_id",
    "accessor",
    "client_token",
    "entity_id",
    "secret_id",
    "secret_id_accessor",
    "role_id",
    "nonce",
    "cluster_id",
    "cluster_name",
    "server_time_utc",
    "build_date",
    "uuid",
    "token",
    "id",
    "creation_time",
    "created_time",
    "deletion_time",
    "updated_time",
    "last_renewal_time",
    "last_renewal",
    "expire_time",
    "issue_time",
    "install_time",
    "last_updated_time",
    "plugin_version",
    "running_plugin_version",
    "running_sha256",
    "hmac",
    "wrapped_accessor",
    "lease_start",
    "modified",
}
#: Countdowns: numbers within TTL_SLACK_S of each other match.
COUNTDOWN_KEYS = {"ttl", "lease_duration", "creation_ttl"}


class V:
    """A per-side value bound earlier with ``Pair.bind`` (see module doc)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"V({self.name!r})"


ROOT = object()  # the side's own root token


@dataclasses.dataclass
class Item:
    """One compared item that did not match."""

    test: str
    label: str
    at: str
    kind: str
    bao: Any
    coffer: Any
    allowed_by: str | None = None


@dataclasses.dataclass
class Tally:
    """Counts of compared items, session-wide or for one test."""

    compared: int = 0
    matched: int = 0
    allowed: int = 0
    mismatched: int = 0

    def add(self, other: Tally) -> None:
        self.compared += other.compared
        self.matched += other.matched
        self.allowed += other.allowed
        self.mismatched += other.mismatched


SESSION = Tally()
#: test node id -> (its tally, its non-matching items, xfail reason or None)
RESULTS: dict[str, tuple[Tally, list[Item], str | None]] = {}


def _short(v: Any) -> Any:
    s = json.dumps(v, default=str)
    return v if len(s) <= 200 else s[:200] + "..."


def _kind_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


class Dual:
    """Both answers to one request."""

    def __init__(self, b: requests.Response, c: requests.Response):
        self.b = b
        self.c = c

    @staticmethod
    def _json(r: requests.Response) -> Any:
        try:
            return r.json()
        except ValueError:
            return None

    @property
    def bj(self) -> Any:
        """OpenBao's JSON body (None if none)."""
        return self._json(self.b)

    @property
    def cj(self) -> Any:
        """Coffer's JSON body (None if none)."""
        return self._json(self.c)

    def get(self, *keys) -> tuple[Any, Any]:
        """The value at ``keys`` in each body (None where missing)."""
        out = []
        for body in (self.bj, self.cj):
            v = body
            for k in keys:
                if isinstance(v, dict):
                    v = v.get(k)
                elif isinstance(v, list) and isinstance(k, int) and -len(v) <= k < len(v):
                    v = v[k]
                else:
                    v = None
                    break
            out.append(v)
        return tuple(out)


@dataclasses.dataclass
class CliRun:
    """One run of the `bao` CLI."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout as JSON, or None."""
        try:
            return json.loads(self.out)
        except ValueError:
            return None


class Pair:
    """Sends each request to both servers and records the comparison."""

    def __init__(self, oracle, test: str, xfail: str | None):
        self.sides = oracle.sides
        self.bao = oracle.bao_bin
        self._cli_homes: tuple[str, str] | None = None
        self.sessions = (requests.Session(), requests.Session())
        self.vars: dict[str, tuple[Any, Any]] = {}
        self.test = test
        self.tally = Tally()
        self.items: list[Item] = []
        RESULTS[test] = (self.tally, self.items, xfail)

    # -- per-side values ----------------------------------------------------
    def bind(self, name: str, dual: Dual, *keys) -> tuple[Any, Any]:
        """Remember each side's value at ``keys`` as ``V(name)`` / ``{name}``."""
        self.vars[name] = dual.get(*keys)
        return self.vars[name]

    def set(self, name: str, bao_value: Any, coffer_value: Any) -> None:
        """Bind a per-side value computed by the scenario itself."""
        self.vars[name] = (bao_value, coffer_value)

    def _resolve(self, v: Any, i: int) -> Any:
        if isinstance(v, V):
            return self.vars[v.name][i]
        if isinstance(v, dict):
            return {k: self._resolve(x, i) for k, x in v.items()}
        if isinstance(v, list):
            return [self._resolve(x, i) for x in v]
        return v

    # -- sending --------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        token: Any = ROOT,
        raw_body: bytes | str | None = None,
        headers: dict | None = None,
        params: dict | None = None,
        label: str | None = None,
        only: list[str] | None = None,
        ignore: tuple[str, ...] = (),
        volatile: tuple[str, ...] = (),
        compare: bool = True,
    ) -> Dual:
        """Send one request to both servers; compare unless ``compare=False``.

        ``only``: JSON paths (globs like ``data.secret/``) to which the
        comparison is restricted, for answers that list a whole server's
        state (mounts, policies) where other scenarios' objects also show.
        ``ignore``: JSON-path globs left out (objects other scenarios made).
        ``volatile``: extra JSON-path globs compared by presence and type.
        """
        out = []
        for i, side in enumerate(self.sides):
            hdrs = {k: self._resolve(v, i) for k, v in (headers or {}).items()}
            tok = side.root if token is ROOT else self._resolve(token, i)
            if tok is not None:
                hdrs.setdefault("X-Vault-Token", tok)
            p = path.format(**{k: v[i] for k, v in self.vars.items()})
            kw: dict[str, Any] = {"timeout": 30, "headers": hdrs, "params": self._resolve(params, i)}
            if raw_body is not None:
                kw["data"] = raw_body
            elif json_body is not None:
                kw["json"] = self._resolve(json_body, i)
            out.append(self.sessions[i].request(method, side.url(p), **kw))
        d = Dual(out[0], out[1])
        if compare:
            self.compare(d, label or f"{method} {path}", only=only, ignore=ignore, volatile=volatile)
        return d

    # -- the CLI ----------------------------------------------------------------
    def cli(
        self,
        *args: str,
        token: Any = ROOT,
        stdin: str | None = None,
        label: str | None = None,
        only: list[str] | None = None,
        ignore: tuple[str, ...] = (),
        volatile: tuple[str, ...] = (),
    ) -> tuple[CliRun, CliRun]:
        """Run the real `bao` CLI once against each server and compare the
        exit codes and the output (JSON item by item, text as a whole)."""
        if self._cli_homes is None:
            # An empty HOME per side: the CLI's token helper never sees ~/.vault-token.
            self._cli_homes = (tempfile.mkdtemp(prefix="cli-home-bao-"), tempfile.mkdtemp(prefix="cli-home-coffer-"))
        runs = []
        for i, side in enumerate(self.sides):
            argv = [str(self.bao), *(a.format(**{k: v[i] for k, v in self.vars.items()}) for a in args)]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
            env["HOME"] = self._cli_homes[i]
            env["VAULT_ADDR"] = env["BAO_ADDR"] = side.addr
            tok = side.root if token is ROOT else self._resolve(token, i)
            if tok is not None:
                env["VAULT_TOKEN"] = env["BAO_TOKEN"] = tok
            p = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=60)
            runs.append(CliRun(p.returncode, p.stdout, p.stderr))
        b, c = runs
        lab = label or "bao " + " ".join(args)
        self._record(lab, "exit", "status", b.code, c.code, b.code == c.code)
        bj, cj = b.json(), c.json()
        if bj is not None and cj is not None:
            if only is not None:
                for sel in only:
                    self._walk(lab, sel, _dig(bj, sel), _dig(cj, sel), sel.count(".") + 1, ignore, volatile)
            else:
                self._walk(lab, "", bj, cj, 0, ignore, volatile)
        elif b.code == 0 and c.code == 0:
            bt, ct = _text(b.out), _text(c.out)
            self._record(lab, "stdout", "value", bt, ct, bt == ct)
        return b, c

    # -- comparing ------------------------------------------------------------
    def _record(self, label: str, at: str, kind: str, b: Any, c: Any, ok: bool) -> None:
        self.tally.compared += 1
        SESSION.compared += 1
        if ok:
            self.tally.matched += 1
            SESSION.matched += 1
            return
        item = Item(self.test, label, at, kind, _short(b), _short(c))
        for entry in ALLOW:
            if entry.matches(label, at, kind):
                item.allowed_by = entry.reason
                break
        if item.allowed_by:
            self.tally.allowed += 1
            SESSION.allowed += 1
        else:
            self.tally.mismatched += 1
            SESSION.mismatched += 1
        self.items.append(item)

    def compare(self, d: Dual, label: str, *, only=None, ignore=(), volatile=()) -> None:
        """Compare two answers (see module doc) and record every item."""
        self._record(label, "status", "status", d.b.status_code, d.c.status_code, d.b.status_code == d.c.status_code)
        bj, cj = d.bj, d.cj
        b_has = bool(d.b.content.strip())
        c_has = bool(d.c.content.strip())
        self._record(label, "body", "body", b_has, c_has, b_has == c_has)
        if not isinstance(bj, dict) or not isinstance(cj, dict):
            if bj is not None and cj is not None:
                self._record(label, "$", "type", _kind_of(bj), _kind_of(cj), _kind_of(bj) == _kind_of(cj))
            return
        b_err, c_err = "errors" in bj, "errors" in cj
        self._record(label, "errors", "errors", b_err, c_err, b_err == c_err)
        if b_err or c_err:
            return  # error texts are not compared
        if only is not None:
            for sel in only:
                bv, cv = _dig(bj, sel), _dig(cj, sel)
                self._walk(label, sel, bv, cv, sel.count(".") + 1, ignore, volatile)
        else:
            self._walk(label, "", bj, cj, 0, ignore, volatile)

    def _walk(self, label, at, b, c, depth, ignore, volatile) -> None:
        key = at.rsplit(".", 1)[-1]
        if at and any(fnmatch.fnmatchcase(at, g) for g in ignore):
            return
        bk, ck = _kind_of(b), _kind_of(c)
        if at:
            self._record(label, at, "type", bk, ck, bk == ck)
        if bk != ck:
            return
        if bk == "object":
            if depth >= MAX_DEPTH:
                return
            for k in sorted(set(b) | set(c)):
                sub = f"{at}.{k}" if at else k
                if any(fnmatch.fnmatchcase(sub, g) for g in ignore):
                    continue
                if k not in c:
                    self._record(label, sub, "missing", _short(b[k]), None, False)
                elif k not in b:
                    self._record(label, sub, "extra", None, _short(c[k]), False)
                else:
                    self._walk(label, sub, b[k], c[k], depth + 1, ignore, volatile)
            return
        if key in VOLATILE_KEYS or key.endswith("_time") or any(fnmatch.fnmatchcase(at, g) for g in volatile):
            return
        if key == "warnings" and depth == 1 and bk == "list":
            # Warning texts name the product ("Vault's server logs"): compared by count.
            self._record(label, at, "value", len(b), len(c), len(b) == len(c))
            return
        if bk == "list":
            if all(not isinstance(x, (dict, list)) for x in b + c):
                self._record(label, at, "value", b, c, b == c)
            else:
                self._record(label, f"{at}[len]", "value", len(b), len(c), len(b) == len(c))
                if depth < MAX_DEPTH:
                    for i, (x, y) in enumerate(zip(b, c)):
                        self._walk(label, f"{at}[{i}]", x, y, depth + 1, ignore, volatile)
            return
        if bk == "number" and key in COUNTDOWN_KEYS:
            self._record(label, at, "value", b, c, abs(b - c) <= TTL_SLACK_S)
            return
        if key == "lease_id" and isinstance(b, str):
            # <path>/<random>: the path part is deterministic.
            self._record(label, at, "value", b.rsplit("/", 1)[0], c.rsplit("/", 1)[0], b.rsplit("/", 1)[0] == c.rsplit("/", 1)[0])
            return
        self._record(label, at, "value", b, c, b == c)

    def assert_clean(self) -> None:
        """Fail if any non-allow-listed item did not match."""
        bad = [i for i in self.items if not i.allowed_by]
        if bad:
            lines = [f"  [{i.label}] {i.at}: {i.kind}: openbao={i.bao!r} coffer={i.coffer!r}" for i in bad[:40]]
            more = f"\n  ... and {len(bad) - 40} more" if len(bad) > 40 else ""
            raise AssertionError(
                f"{len(bad)} of {self.tally.compared} items differ from OpenBao:\n" + "\n".join(lines) + more
            )


_VOLATILE_TEXT = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.]+Z|[A-Za-z0-9_.-]{20,}")


def _text(out: str) -> str:
    """CLI text output with timestamps and long random words blanked and
    column padding collapsed."""
    return re.sub(r"[ \t]+", " ", _VOLATILE_TEXT.sub("<v>", out)).strip()


def _dig(v: Any, sel: str) -> Any:
    for part in sel.split("."):
        if not isinstance(v, dict):
            return None
        v = v.get(part)
    return v


def write_report(terminalreporter) -> None:
    """Print the session's match ratio and write the JSON report."""
    if not SESSION.compared:
        return
    out_dir = Path(os.environ.get("COFFER_DIFF_REPORT_DIR") or tempfile.mkdtemp(prefix="coffer-differential-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "differential-report.json"
    by_test = {}
    for test, (tally, items, xfail) in RESULTS.items():
        by_test[test] = {
            "tally": dataclasses.asdict(tally),
            "xfail": xfail,
            "items": [dataclasses.asdict(i) for i in items],
        }
    path.write_text(json.dumps({"session": dataclasses.asdict(SESSION), "tests": by_test}, indent=1, default=str))
    s = SESSION
    ratio = 100.0 * s.matched / s.compared
    terminalreporter.write_sep("=", "differential: Coffer vs OpenBao")
    terminalreporter.write_line(
        f"items compared {s.compared}, matched {s.matched} ({ratio:.1f}%), "
        f"allow-listed {s.allowed}, mismatched {s.mismatched}"
    )
    terminalreporter.write_line(f"report: {path}")
