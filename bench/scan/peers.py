#!/usr/bin/env python3
"""Recall and false alarms of `coffer scan` on the example strings that
peer scanners ship with their rules. Run by hand, never in CI:

  bench/scan/peers.py --coffer target/release/coffer \
      [--gitleaks PATH-TO-GITLEAKS-CHECKOUT] [--kingfisher PATH-TO-KINGFISHER-CHECKOUT] \
      [--misses FILE]

The peers' files are read where they are checked out; nothing of theirs is
written into this repository. Each example is written to its own file in a
temporary directory, the directory is scanned once, and findings are mapped
back to examples.

- gitleaks: cmd/generate/config/rules/*.go. Positives are the `tps` of each
  rule (string literals, `GenerateSampleSecret(s)` calls, expanded with the
  sample syntaxes read from its cmd/generate/config/utils/generate.go), and
  `secrets.NewSecret(regex)` values are drawn from the regex here. Negatives
  are the `fps`.
- Kingfisher: data/rules/*.yml, `examples` and `negative_examples`.

"Core" positives exclude rules naming identifiers (ids, hosts, URLs,
usernames) rather than secrets, and placeholders (xxxxxx, runs of one
character, runs of six counting letters or digits, a block repeated three
times, EXAMPLE, ${VAR}, documentation stand-ins such as RFC 4122's sample
UUID, RFC 7617's Aladdin and Contoso, a password that is the word itself):
a scanner should not report those.
"""

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

try:
    import re._parser as sre_parse  # Python 3.11+
    import re._constants as sre_c
except ImportError:  # pragma: no cover
    import sre_parse
    import sre_constants as sre_c

RNG = random.Random(20261202)
IDENTIFIER_RULE = re.compile(
    r"(?i)(?:\bid\b|[-_ ]id$|client[-_ ]?id|user(?:name)?\b|host|domain|url|endpoint|account[-_ ]?(?:id|name)|"
    r"org(?:anization)?[-_ ]?(?:id|name)|project[-_ ]?id|app[-_ ]?id|tenant|region|email|identifier)"
)
PLACEHOLDER = re.compile(
    r"(?i)x{6,}|(.)\1{7,}|example|1234567|2345678|abcdefg|bcdefgh|qwerty|your[-_]|\$\{|changeme|redacted|dummy|fake"
    # Documentation stand-ins: RFC 4122's sample UUID, RFC 7617's Aladdin,
    # Microsoft's Contoso, counting pairs, a block repeated three times, and
    # passwords that are the word itself.
    r"|123e4567-?e89b-?12d3-?a456-?426614174|://[^:/@\s]+:(?:secret|password|pass)@|aladdin|contoso|abcd1234|a1b2c3d4|1a2b3c4d|abc123|"
    r"123\w{0,2}456\w{0,2}789|(\w{2,}[-_.]?|\w[-_.])\2\2|######|%\w+%|\$password\b|"
    r"\bpassword\s*[\s=:]\s*['\"]?(?:my|some_)?(?:password|secret)\b"
)


def sequence_run(text):
    """The longest run of consecutive ascending or descending letters or
    digits (`abcdef`, `987654`, `ZYXWV`)."""
    best = run = 1
    step = 0
    for a, b in zip(text, text[1:]):
        d = ord(b) - ord(a)
        same_kind = a.isalnum() and b.isalnum() and a.isdigit() == b.isdigit()
        if same_kind and d in (1, -1) and (run == 1 or d == step):
            run, step = run + 1, d
        else:
            run, step = 1, 0
            if same_kind and d in (1, -1):
                run, step = 2, d
        best = max(best, run)
    return best


def is_placeholder(text):
    return bool(PLACEHOLDER.search(text)) or sequence_run(text) >= 6
SECRETISH = re.compile(r"(?i)secret|token|key|password|pat\b|credential|webhook|private")

# ------------------------------------------------------------ regex sampler

CATS = {
    "CATEGORY_DIGIT": "0123456789",
    "CATEGORY_WORD": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": "abcdefghijklmnopqrstuvwxyz0123456789",
    "CATEGORY_NOT_DIGIT": "abcdefghijklmnopqrstuvwxyz",
    "CATEGORY_NOT_WORD": "-",
}
PRINTABLE = [chr(c) for c in range(0x21, 0x7F)]


def sample_regex(pattern):
    p = pattern.replace(r"\z", "").replace("(?-i:", "(?:")
    p = re.sub(r"\(\?P?<[^>]+>", "(?:", p) if "(?P<" in p else p
    tree = sre_parse.parse(p)
    return "".join(_gen(tree))


def _class(items):
    chars, negate = [], False
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.append(chr(av))
        elif name == "RANGE":
            chars.extend(chr(c) for c in range(av[0], av[1] + 1))
        elif name == "CATEGORY":
            chars.extend(CATS.get(str(av), "a"))
    if negate:
        chars = [c for c in PRINTABLE if c not in chars and c.isalnum()]
    return chars or ["a"]


def _gen(tree):
    out = []
    for op, av in tree:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(av))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(av) != "a" else "b")
        elif name == "ANY":
            out.append(RNG.choice("abcdefghijklmnopqrstuvwxyz0123456789"))
        elif name == "IN":
            out.append(RNG.choice(_class(av)))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = av
            hi = lo + 8 if hi == sre_c.MAXREPEAT else hi
            n = RNG.randint(lo, max(lo, hi)) if lo != hi else lo
            for _ in range(n):
                out.extend(_gen(sub))
        elif name == "SUBPATTERN":
            out.extend(_gen(av[-1]))
        elif name == "BRANCH":
            out.extend(_gen(RNG.choice(av[1])))
        elif name in ("AT", "ASSERT", "ASSERT_NOT", "GROUPREF"):
            pass
        elif name == "ATOMIC_GROUP":
            out.extend(_gen(av))
    return out


# --------------------------------------------------------------- gitleaks


def go_string(tok):
    if tok.startswith("`"):
        return tok[1:-1]
    try:
        return json.loads(tok)
    except ValueError:
        return bytes(tok[1:-1], "utf-8").decode("unicode_escape", "replace")


GO_STR = r'"(?:[^"\\\n]|\\.)*"|`[^`]*`'
TOKEN = re.compile(rf"({GO_STR})|(\w+(?:\.\w+)*)|(\S)")


def split_args(s):
    """Top-level comma-separated pieces of s."""
    out, depth, cur, i = [], 0, [], 0
    while i < len(s):
        m = re.match(GO_STR, s[i:])
        if m:
            cur.append(m.group(0))
            i += m.end()
            continue
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def balanced(s, start):
    """s[start] is an opening bracket: index just past its match."""
    depth, i = 0, start
    while i < len(s):
        m = re.match(GO_STR, s[i:])
        if m:
            i += m.end()
            continue
        if s[i] in "([{":
            depth += 1
        elif s[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(s)


class GoEval:
    def __init__(self, syntaxes):
        self.vars = {}
        self.syntaxes = syntaxes

    def value(self, expr):
        """A single string, or None."""
        expr = expr.strip()
        parts = split_plus(expr)
        if len(parts) > 1:
            vals = [self.value(p) for p in parts]
            return None if any(v is None for v in vals) else "".join(vals)
        if re.fullmatch(GO_STR, expr, re.S):
            return go_string(expr)
        m = re.fullmatch(r"secrets\.NewSecret\((.*)\)", expr, re.S)
        if m:
            pat = self.value(m.group(1))
            if pat is None:
                return None
            try:
                return sample_regex(pat)
            except Exception:
                return None
        m = re.fullmatch(r"utils\.(\w+)\((.*)\)", expr, re.S)
        if m and m.group(1) in ("Hex", "AlphaNumeric", "Numeric", "AlphaNumericExtended", "AlphaNumericExtendedShort", "Hex8_4_4_4_12"):
            return None
        m = re.fullmatch(r"strings\.Repeat\((.*)\)", expr, re.S)
        if m:
            a = split_args(m.group(1))
            v = self.value(a[0]) if a else None
            try:
                return v * int(a[1]) if v is not None else None
            except (ValueError, IndexError):
                return None
        if re.fullmatch(r"\w+", expr) and expr in self.vars:
            v = self.vars[expr]
            return v if isinstance(v, str) else None
        return None

    def items(self, expr):
        """(syntax, text) pairs an expression contributes to tps/fps."""
        expr = expr.strip()
        m = re.match(r"append\(\s*\w+\s*,", expr)
        if m and expr.endswith(")"):
            inner = expr[m.end():-1]
            out = []
            for a in split_args(inner):
                out.extend(self.items(a.rstrip(".").rstrip(".").rstrip(".")))
            return out
        m = re.fullmatch(r"\[\]string\s*\{(.*)\}", expr, re.S)
        if m:
            out = []
            for a in split_args(m.group(1)):
                out.extend(self.items(a))
            return out
        m = re.fullmatch(r"utils\.GenerateSampleSecrets\((.*)\)(\.\.\.)?", expr, re.S)
        if m:
            a = split_args(m.group(1))
            ident, secret = (self.value(a[0]), self.value(a[1])) if len(a) == 2 else (None, None)
            if ident is None or secret is None:
                return [("unparsed", None)]
            return [
                (name, tpl.replace("{i}", ident).replace("{I}", ident.upper()).replace("{s}", secret))
                for name, tpl in self.syntaxes
            ]
        m = re.fullmatch(r"utils\.GenerateSampleSecret\((.*)\)", expr, re.S)
        if m:
            a = split_args(m.group(1))
            ident, secret = (self.value(a[0]), self.value(a[1])) if len(a) == 2 else (None, None)
            if ident is None or secret is None:
                return [("unparsed", None)]
            return [("literal", f'{ident}_api_token = "{secret}"')]
        if re.fullmatch(r"\w+", expr) and isinstance(self.vars.get(expr), list):
            return self.vars[expr]
        v = self.value(expr)
        return [("literal", v)] if v is not None else [("unparsed", None)]


def split_plus(expr):
    out, depth, cur, i = [], 0, [], 0
    while i < len(expr):
        m = re.match(GO_STR, expr[i:])
        if m:
            cur.append(m.group(0))
            i += m.end()
            continue
        c = expr[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "+" and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur).strip())
    return out


def gitleaks_syntaxes(root):
    text = (root / "cmd/generate/config/utils/generate.go").read_text()
    body = text[text.index("func GenerateSampleSecrets"):]
    body = body[: body.index("\n}\n")]
    out = []
    for line in body.splitlines():
        if line.strip().startswith("//"):
            continue
        m = re.match(rf'\s*"([^"]+)":\s*({GO_STR}),', line)
        if m:
            out.append((m.group(1), go_string(m.group(2))))
    return out


def gitleaks_examples(root):
    syntaxes = gitleaks_syntaxes(root)
    examples = []  # (source, rule, kind, syntax, text)
    for f in sorted((root / "cmd/generate/config/rules").glob("*.go")):
        if f.name.endswith("_test.go"):
            continue
        src = f.read_text()
        for fn in re.split(r"\nfunc ", src)[1:]:
            rid = re.search(r'RuleID:\s*"([^"]+)"', fn)
            if not rid:
                continue
            ev = GoEval(syntaxes)
            # Statements: `name := expr` / `name = expr` at the start of a line.
            for m in re.finditer(r"(?m)^\s*(\w+)\s*:?=\s*", fn):
                name, start = m.group(1), m.end()
                end = start
                while end < len(fn) and fn[end] != "\n":
                    if fn[end] in "([{":
                        end = balanced(fn, end)
                        continue
                    if fn[end] in "\"`":
                        mm = re.match(GO_STR, fn[end:])
                        end += mm.end() if mm else 1
                        continue
                    end += 1
                expr = fn[start:end].strip()
                if name in ("tps", "fps"):
                    items = ev.items(expr)
                    prev = ev.vars.get(name) if expr.startswith("append(") else None
                    ev.vars[name] = (prev or []) + items
                elif name != "r":
                    v = ev.value(expr)
                    if v is not None:
                        ev.vars[name] = v
                    elif "GenerateSampleSecrets" in expr or expr.startswith("[]string"):
                        ev.vars[name] = ev.items(expr)
            for kind in ("tps", "fps"):
                for syntax, text in ev.vars.get(kind, []) or []:
                    examples.append(("gitleaks", rid.group(1), "positive" if kind == "tps" else "negative", syntax, text))
    return examples


# ------------------------------------------------------------- kingfisher


def kingfisher_examples(root):
    import yaml

    out = []
    for f in sorted((root / "data/rules").glob("*.y*ml")):
        try:
            doc = yaml.safe_load(f.read_text())
        except yaml.YAMLError:
            continue
        for r in (doc or {}).get("rules", []) or []:
            rid = f'{r.get("id")} ({r.get("name")})'
            for e in r.get("examples", []) or []:
                out.append(("kingfisher", rid, "positive", "literal", str(e)))
            for e in r.get("negative_examples", []) or []:
                out.append(("kingfisher", rid, "negative", "literal", str(e)))
    return out


# ------------------------------------------------------------------- run


def is_identifier_rule(rule):
    name = rule.split("(", 1)[-1]
    return bool(IDENTIFIER_RULE.search(name)) and not SECRETISH.search(name.replace("key id", ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coffer", required=True)
    ap.add_argument("--gitleaks")
    ap.add_argument("--kingfisher")
    ap.add_argument("--misses", help="write missed positives and flagged negatives here (outside the repository)")
    ap.add_argument("--json", help="write the figures here as JSON")
    args = ap.parse_args()
    examples = []
    if args.gitleaks:
        examples += gitleaks_examples(Path(args.gitleaks))
    if args.kingfisher:
        examples += kingfisher_examples(Path(args.kingfisher))
    if not examples:
        sys.exit("give --gitleaks and/or --kingfisher")
    unparsed = sum(1 for e in examples if e[4] is None)
    examples = [e for e in examples if e[4] is not None and e[4].strip()]
    tmp = Path(tempfile.mkdtemp(prefix="coffer-peers-"))
    try:
        for i, e in enumerate(examples):
            (tmp / f"e{i}.txt").write_text(e[4] + "\n")
        report = tmp / "report.json"
        r = subprocess.run(
            [args.coffer, "scan", "--no-progress", "--no-ignore", "-f", "json", "-o", str(report), "."],
            cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        if r.returncode not in (0, 1):
            sys.exit(f"coffer scan failed: {r.stderr.decode()[:400]}")
        hits = defaultdict(list)
        for f in json.loads(report.read_text()):
            m = re.match(r"e(\d+)\.txt$", f["path"])
            if m:
                hits[int(m.group(1))].append(f["rule"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stats = defaultdict(lambda: [0, 0])
    misses = []
    for i, (src, rule, kind, syntax, text) in enumerate(examples):
        found = bool(hits.get(i))
        placeholder = kind == "positive" and is_placeholder(text)
        core = kind == "positive" and not is_identifier_rule(rule) and not placeholder
        keys = [(src, kind, "all")]
        if kind == "positive":
            cls = "core" if core else ("placeholder" if placeholder and not is_identifier_rule(rule) else "identifier")
            keys.append((src, cls, "all"))
            if core:
                keys.append((src, "core", syntax))
        for k in keys:
            stats[k][0] += 1
            stats[k][1] += found
        if (core and not found) or (kind == "negative" and found):
            misses.append({"source": src, "rule": rule, "kind": kind, "syntax": syntax, "text": text, "found": hits.get(i, [])})
    print(f"examples: {len(examples)} (+{unparsed} gitleaks expressions not evaluated)")
    for (src, kind, syntax), (n, ok) in sorted(stats.items()):
        what = "flagged" if kind == "negative" else "found"
        print(f"{src:10} {kind:10} {syntax:40} {ok:5}/{n:<5} {100.0 * ok / max(n, 1):6.1f}% {what}")
    if args.misses:
        Path(args.misses).write_text(json.dumps(misses, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({" / ".join(k): v for k, v in stats.items()}, indent=1))


if __name__ == "__main__":
    main()
