"""Corpus generator and runner for bench/scan/run.

Corpus (bench/out/scan-corpus):
  real/     third-party source copied from the local cargo registry (clean:
            nothing planted; what tools report there is listed as "other")
  clean/    generated source in a dozen languages, full of near misses
            (env lookups, hashes, UUIDs, public keys, placeholders, ...)
  planted/  generated source, each file holding planted secrets built at run
            time from the rules' example templates and from extra shapes
            (database URLs, typed constants, private keys)
The planted set is written to manifest.json (file, line, rule); no secret is
stored in the repository, only generated here.
"""

import argparse
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "crates/coffer-scan/rules/default.toml"
RNG = random.Random(20261128)

# ---------------------------------------------------------------- templates

CLASSES = {
    "alnum": string.ascii_letters + string.digits,
    "upper": string.ascii_uppercase,
    "lower": string.ascii_lowercase,
    "alpha": string.ascii_letters,
    "digit": string.digits,
    "hex": "0123456789abcdef",
    "HEX": "0123456789ABCDEF",
    "b64": string.ascii_letters + string.digits + "+/",
    "b64url": string.ascii_letters + string.digits + "_-",
    "word": string.ascii_letters + string.digits + "_",
    "base32": string.ascii_uppercase + "234567",
    "lalnum": string.ascii_lowercase + string.digits,
    "ualnum": string.ascii_uppercase + string.digits,
    "pw": string.ascii_letters + string.digits + "!*+=^_~",
}


BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def class_chars(spec):
    if spec in CLASSES:
        return CLASSES[spec]
    out, i = [], 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


def expand(template):
    def repl(m):
        cls, n = m.group(1).rsplit(":", 1)
        if cls == "der":  # a DER SEQUENCE of n random bytes, base64 lines
            import base64

            n = int(n)
            head = bytes([0x30, n]) if n < 0x80 else bytes([0x30, 0x81, n]) if n < 0x100 else bytes([0x30, 0x82, n >> 8, n & 0xFF])
            b = base64.b64encode(head + bytes(RNG.randrange(256) for _ in range(n))).decode()
            return "\n".join(b[i : i + 64] for i in range(0, len(b), 64))
        if cls == "crc62":  # n alphanumerics and their CRC32 in 6 base62 digits
            import zlib

            body = "".join(RNG.choice(CLASSES["alnum"]) for _ in range(int(n)))
            c, digits = zlib.crc32(body.encode()), []
            for _ in range(6):
                c, r = divmod(c, 62)
                digits.append(BASE62[r])
            return body + "".join(reversed(digits))
        if cls == "pypi":  # a version-2 macaroon located at pypi.org
            import base64

            n = max(1, min(127, int(n)))
            ident = "".join(RNG.choice("0123456789abcdef") for _ in range(32))
            ident = f"{ident[:8]}-{ident[8:12]}-{ident[12:16]}-{ident[16:20]}-{ident[20:]}"
            caveat = "".join(RNG.choice(CLASSES["alnum"]) for _ in range(n))
            m = b"\x02\x01\x08pypi.org\x02\x24" + ident.encode() + b"\x00\x02" + bytes([n]) + caveat.encode()
            m += b"\x00\x00\x06\x20" + bytes(RNG.randrange(256) for _ in range(32))
            return base64.urlsafe_b64encode(m).decode().rstrip("=")
        if cls == "basic":  # base64 of user:password
            import base64

            cred = "".join(RNG.choice(string.ascii_lowercase) for _ in range(6)) + ":"
            cred += "".join(RNG.choice(CLASSES["pw"]) for _ in range(int(n)))
            return base64.b64encode(cred.encode()).decode()
        if cls == "jwt":  # an HS256 JWT with n string claims
            import base64

            enc = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
            claims = ",".join(f'"c{i}":"' + "".join(RNG.choice(CLASSES["alnum"]) for _ in range(12)) + '"' for i in range(max(1, int(n))))
            sig = bytes(RNG.randrange(256) for _ in range(32))
            return ".".join([enc(b'{"alg":"HS256","typ":"JWT"}'), enc(("{" + claims + "}").encode()), enc(sig)])
        chars = class_chars(cls)
        n = int(n)
        s = [RNG.choice(chars) for _ in range(n)]
        if n >= 8:
            for pred in (str.isdigit, str.isupper, str.islower):
                pool = [c for c in chars if pred(c)]
                if pool and not any(pred(c) for c in s):
                    s[RNG.randrange(n)] = RNG.choice(pool)
        return "".join(s)

    return re.sub(r"<<(.+?)>>", repl, template)


# ------------------------------------------------------------ clean source

WORDS = (
    "user account order invoice payment customer session request response handler "
    "config settings cache queue worker job task event message client server router "
    "service repository model view controller item product cart price amount total "
    "record entry batch report metric counter timer buffer stream reader writer "
    "parser token_count retry backoff timeout deadline limit offset cursor page "
    "profile address email phone country region zone cluster node shard replica"
).split()


def ident(style="snake"):
    parts = RNG.sample(WORDS, RNG.randint(1, 3))
    if style == "camel":
        return parts[0] + "".join(p.title().replace("_", "") for p in parts[1:])
    if style == "const":
        return "_".join(parts).upper()
    return "_".join(parts)


def hexs(n):
    return "".join(RNG.choice("0123456789abcdef") for _ in range(n))


def b64(n):
    return "".join(RNG.choice(CLASSES["b64"]) for _ in range(n))


def uuid():
    h = hexs(32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def decoy():
    """Lines that look like secrets to a careless scanner but are not."""
    v = ident()
    c = ident("const")
    choices = [
        f'{c}_PASSWORD = os.environ["{c}_PASSWORD"]',
        f"api_key = settings.API_KEY",
        f'token = request.headers.get("Authorization")',
        f'password = getpass.getpass("password for {v}: ")',
        f'    "integrity": "sha512-{b64(86)}==",',
        f'commit_sha = "{hexs(40)}"',
        f"checksum: sha256:{hexs(64)}",
        f'request_id = "{uuid()}"',
        f'"id": "{uuid()}",',
        f'public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{b64(43)} deploy@{v}"',
        f'cache_key = f"{v}:{{user_id}}:profile"',
        f'sort_key = "created_at"',
        "API_KEY=your-api-key-here",
        "password: changeme",
        'token: "${GITHUB_TOKEN}"',
        "secret: <%= ENV['APP_SECRET'] %>",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        f'DATABASE_URL = "postgres://localhost:5432/{v}"',
        f'DATABASE_URL = "postgres://app@db.internal:5432/{v}"',
        'DATABASE_URL = "postgres://app:${DB_PASSWORD}@db.internal:5432/app"',
        f'"key": "{v}_title",',
        f'file_hash = "{hexs(64)}"',
        f'etag = "{hexs(32)}"',
        f'"password_min_length": {RNG.randint(8, 16)},',
        f"reset_token_ttl = {RNG.randint(300, 7200)}",
        'token_type = "bearer"',
        'grant_type = "client_credentials"',
        f'expected = "{hexs(64)}"',
        f'img = "data:image/png;base64,{b64(400)}"',
        f"const {v}Key = `${{prefix}}:${{id}}`;",
        f'let secret_name = "{v}-credentials";',
        f'secretKeyRef: {{name: {v.replace("_", "-")}, key: password}}',
        f'STRIPE_PUBLISHABLE_KEY = "pk_live_{b64(24).replace("+", "a").replace("/", "b")}"',
        f"monkey_patch = {v}",
        f'keyboard_layout = "{v}"',
        f'primary_key = "{v}_id"',
        f"if token is None: raise {ident('camel').title()}Error()",
        f'log.info("rotating key for %s", {v})',
        f'// the password must be at least 12 characters, see {v}.md',
        f'const passwordHash = await bcrypt.hash(password, {RNG.randint(10, 14)});',
        f'auth_url = "https://auth.internal/oauth2/token"',
        f'secret_ref = "coffer://secret/{v}#value"',
        f'version = "{RNG.randint(0,9)}.{RNG.randint(0,40)}.{RNG.randint(0,99)}"',
        f'sha = "{hexs(7)}"',
    ]
    return RNG.choice(choices)


def code_line(lang):
    v, w = ident(), ident("camel")
    n = RNG.randint(0, 999)
    if lang == "py":
        return RNG.choice([
            f"def {v}(self, {ident()}, retries={n % 5}):",
            f"    {v} = self.{ident()}.get({ident()!r})",
            f"    return [{ident()} for {ident()} in {v} if {ident()}]",
            f"import {v}",
            f"    logger.debug('{v} took %.2fs', elapsed)",
            f"class {w.title()}({ident('camel').title()}):",
            f"    if {v} > {n}:",
            "",
        ])
    if lang in ("js", "ts"):
        return RNG.choice([
            f"export function {w}({ident('camel')}, opts = {{}}) {{",
            f"  const {w} = await fetch(`/api/{v}/${{id}}`);",
            f"  if (!{w}) throw new Error('{v} missing');",
            f"import {{ {w} }} from './{v}';",
            f"  return {w}.map((x) => x.{ident('camel')});",
            "}",
            "",
        ])
    if lang == "go":
        return RNG.choice([
            f"func ({w[0]} *{w.title()}) {w.title()}(ctx context.Context) error {{",
            f"\t{w}, err := {ident('camel')}(ctx, {n})",
            "\tif err != nil {\n\t\treturn err\n\t}",
            f'\tlog.Printf("{v}: %v", {w})',
            "}",
            "",
        ])
    if lang == "rs":
        return RNG.choice([
            f"pub fn {v}(&self, {ident()}: &str) -> Result<{w.title()}> {{",
            f"    let {v} = self.{ident()}.get(&key).copied().unwrap_or({n});",
            f"    tracing::debug!({v}, \"{ident()}\");",
            f"use crate::{v}::{w.title()};",
            "}",
            "",
        ])
    if lang == "java":
        return RNG.choice([
            f"    public {w.title()} get{w.title()}(String {w}) {{",
            f"        return {w}Repository.findBy{w.title()}({w});",
            f"    private final {w.title()}Service {w}Service;",
            "    }",
            "",
        ])
    if lang in ("yaml", "yml"):
        return RNG.choice([
            f"{v}:",
            f"  {ident()}: {n}",
            f"  {ident()}: {ident()}",
            f"  - name: {v}",
            f"    image: registry.internal/{v}:{n}",
        ])
    if lang == "json":
        return RNG.choice([f'  "{w}": {n},', f'  "{w}": "{v}",', f'  "{w}": true,'])
    if lang == "md":
        return RNG.choice([
            f"## {v.replace('_', ' ').title()}",
            f"The {v.replace('_', ' ')} is stored in `{ident()}`; see [{w}](./{v}.md).",
            "",
            f"```\n{ident()} --{v} {n}\n```",
        ])
    if lang == "sql":
        return RNG.choice([
            f"CREATE TABLE {v} (id BIGSERIAL PRIMARY KEY, {ident()} TEXT NOT NULL);",
            f"SELECT {ident()}, count(*) FROM {v} GROUP BY 1;",
            f"INSERT INTO {v} ({ident()}) VALUES ('{ident()}');",
        ])
    if lang == "env":
        return f"{ident('const')}={RNG.choice([str(n), ident(), 'true', 'false'])}"
    if lang == "tf":
        return RNG.choice([
            f'resource "aws_s3_bucket" "{v}" {{',
            f'  bucket = "{v.replace("_", "-")}-{n}"',
            "}",
        ])
    return f"# {v} {w} {n}"


LANGS = ["py", "js", "ts", "go", "rs", "java", "yaml", "json", "md", "sql", "env", "tf", "sh"]


def source_file(lang, size):
    lines, total = [], 0
    while total < size:
        line = decoy() if RNG.random() < 0.04 else code_line(lang)
        lines.append(line)
        total += len(line) + 1
    return lines


# -------------------------------------------------------- planted secrets

ASSIGN = re.compile(r'^([A-Za-z_][\w.]*)\s*(?:=|:)\s*"?([^"\s]+)"?;?$')


def shapes(line, lang):
    """Renders an example assignment in the file's language."""
    m = ASSIGN.match(line)
    if not m:
        return line
    name, value = m.groups()
    return {
        "py": f'{name} = "{value}"',
        "js": f'const {name} = "{value}";',
        "ts": f'export const {name}: string = "{value}";',
        "go": f'\t{name} := "{value}"',
        "rs": f'const {name}: &str = "{value}";',
        "java": f'    private static final String {name} = "{value}";',
        "yaml": f"  {name.lower()}: {value}",
        "json": f'  "{name}": "{value}",',
        "env": f"{name}={value}",
        "sh": f'export {name}="{value}"',
    }.get(lang, line)


def extra_secrets():
    """Shapes the scanners most often miss (database URLs, typed constants)."""
    pw = lambda: expand("<<pw:18>>")
    out = []
    for _ in range(12):
        out.append(("database-url-password", f'DATABASE_URL = "postgresql://app_rw:{pw()}@pg-primary.internal:5432/orders"'))
        out.append(("database-url-password", f'  url: "mysql://report:{pw()}@mysql.internal:3306/reports"'))
        out.append(("database-url-password", f'MONGO_URI=mongodb+srv://svc:{pw()}@cluster0.abcde.mongodb.net/app'))
        out.append(("database-url-password", f'const redisUrl = "redis://:{pw()}@cache.internal:6379/0";'))
        out.append(("database-url-password", f'AMQP_URL=amqps://worker:{pw()}@mq.internal:5671/'))
        out.append(("jdbc-password", f'spring.datasource.url=jdbc:postgresql://db:5432/app?user=app&password={pw()}'))
        out.append(("generic-secret", f'const API_KEY: &str = "{expand("<<alnum:32>>")}";'))
        out.append(("generic-secret", f'    private static final String SECRET_KEY = "{expand("<<b64:40>>")}";'))
        out.append(("generic-secret", f'export const apiToken = "{expand("<<alnum:40>>")}";'))
        out.append(("generic-secret", f'\tclientSecret := "{expand("<<hex:40>>")}"'))
        out.append(("generic-password", f'  password: "{pw()}"'))
        out.append(("generic-password", f'db_password = "{pw()}"'))
    return out


# ----------------------------------------------------------------- corpus


def copy_real(dest, budget):
    exts = {".rs", ".toml", ".md", ".json", ".yml", ".yaml", ".py", ".js", ".c", ".h", ".txt", ".go", ".sh"}
    srcs = sorted(Path.home().glob(".cargo/registry/src/*/*"))
    total = 0
    for crate in srcs:
        for p in sorted(crate.rglob("*")):
            if total >= budget:
                return total
            if not p.is_file() or p.suffix not in exts:
                continue
            size = p.stat().st_size
            if size > 2 << 20 or size == 0:
                continue
            rel = p.relative_to(crate.parent)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
            total += size
    return total


def build_corpus(corpus, mb):
    if corpus.exists():
        shutil.rmtree(corpus)
    rules = tomllib.loads(RULES.read_text())["rules"]
    manifest = []
    real_budget = int(mb * 0.4) << 20
    clean_budget = int(mb * 0.35) << 20
    t = time.time()
    real = copy_real(corpus / "real", real_budget)
    clean = 0
    i = 0
    while clean < clean_budget:
        lang = LANGS[i % len(LANGS)]
        lines = source_file(lang, RNG.randint(4000, 40000))
        p = corpus / "clean" / f"svc{i // 200}" / f"{ident()}_{i}.{lang}"
        p.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(lines) + "\n"
        p.write_text(text)
        clean += len(text)
        i += 1
    # Planted: every rule example in two file types, plus extra shapes.
    secrets = []
    for r in rules:
        ex = r.get("example")
        if not ex:
            continue
        for lang in RNG.sample(["py", "js", "go", "rs", "java", "yaml", "env", "sh", "json", "ts"], 2):
            secrets.append((r["id"], lang, expand(ex)))
    for rule, line in extra_secrets():
        secrets.append((rule, None, line))
    planted_bytes = 0
    target_planted = (mb << 20) - real - clean
    per_file = max(4000, target_planted // max(1, len(secrets)))
    for j, (rule, lang, text) in enumerate(secrets):
        lang = lang or RNG.choice(["py", "yaml", "env"])
        body = source_file(lang, per_file)
        rendered = shapes(text, lang) if "\n" not in text else text
        at = RNG.randrange(len(body) + 1)
        body.insert(at, rendered)
        p = corpus / "planted" / f"app{j // 100}" / f"{ident()}_{j}.{lang}"
        p.parent.mkdir(parents=True, exist_ok=True)
        content = "\n".join(body) + "\n"
        p.write_text(content)
        planted_bytes += len(content)
        first = rendered.split("\n")
        # Generated lines may hold newlines themselves: count real lines.
        line = 1 + sum(x.count("\n") + 1 for x in body[:at])
        manifest.append({"file": str(p.relative_to(corpus)), "line": line, "lines": len(first), "rule": rule})
    (corpus.parent / "scan-manifest.json").write_text(json.dumps(manifest))
    print(
        f"corpus: {(real + clean + planted_bytes) / 1e6:.0f} MB "
        f"(real {real / 1e6:.0f}, clean generated {clean / 1e6:.0f}, planted files {planted_bytes / 1e6:.0f}), "
        f"{len(manifest)} planted secrets of {len({m['rule'] for m in manifest})} kinds, built in {time.time() - t:.0f}s",
        flush=True,
    )


def corpus_bytes(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ----------------------------------------------------------------- runners


def timed(cmd, **kw):
    t = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    return time.time() - t, r


def score(found, manifest, label, corpus_mb, clean_mb):
    """found: set of (file, line). A planted secret counts when a finding is
    on one of its lines; findings elsewhere in planted/ or in clean/ are
    false positives; findings in real/ are listed as other."""
    planted = {}
    for m in manifest:
        for k in range(m["lines"]):
            planted[(m["file"], m["line"] + k)] = m
    hit = set()
    fp_clean, other_real = 0, 0
    for f, line in found:
        m = planted.get((f, line))
        if m is not None:
            hit.add((m["file"], m["line"]))
        elif f.startswith("real/"):
            other_real += 1
        else:
            fp_clean += 1
    recall = 100.0 * len(hit) / max(1, len(manifest))
    return recall, fp_clean, other_real, hit


def rel(path, corpus):
    p = str(path)
    c = str(corpus)
    if p.startswith(c):
        p = p[len(c):].lstrip("/")
    return p.lstrip("./")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--mb", type=int, default=210)
    ap.add_argument("--reuse", action="store_true", help="reuse an existing corpus")
    ap.add_argument("--ds-mb", type=int, default=12, help="detect-secrets sample size (it is slow)")
    a = ap.parse_args()
    out = Path(a.out)
    corpus = out / "scan-corpus"
    if not (a.reuse and corpus.exists()):
        build_corpus(corpus, a.mb)
    manifest = json.loads((out / "scan-manifest.json").read_text())
    total = corpus_bytes(corpus)
    mb = total / 1e6
    clean_mb = (corpus_bytes(corpus / "clean") + corpus_bytes(corpus / "planted")) / 1e6
    real_mb = corpus_bytes(corpus / "real") / 1e6
    coffer = os.environ.get("COFFER_BIN", "coffer")
    cores = os.cpu_count()
    print(f"machine: {cores} cores; corpus {mb:.0f} MB in {sum(1 for _ in corpus.rglob('*'))} entries", flush=True)
    # Warm the page cache so every tool reads from memory.
    subprocess.run(f"find {corpus} -type f -print0 | xargs -0 cat > /dev/null", shell=True)
    rows = []

    # coffer scan
    report = out / "coffer.json"
    secs, r = timed([coffer, "scan", "--no-progress", "-f", "json", "-o", str(report), "."], cwd=corpus)
    if r.returncode not in (0, 1):
        sys.exit(f"coffer scan failed: {r.stderr.decode()[:500]}")
    cf = json.loads(report.read_text())
    found = {(rel(f["path"], corpus), f["line"]) for f in cf}
    recall, fp, other, hit = score(found, manifest, "coffer", mb, clean_mb)
    rows.append(("coffer scan", mb / secs, recall, fp, other))
    missed = [m for m in manifest if (m["file"], m["line"]) not in hit]
    by_rule = {}
    for f in cf:
        p = rel(f["path"], corpus)
        if p.startswith("real/"):
            by_rule[f["rule"]] = by_rule.get(f["rule"], 0) + 1
    fps = [f for f in cf if not rel(f["path"], corpus).startswith("real/") and (rel(f["path"], corpus), f["line"]) not in
           {(m["file"], m["line"] + k) for m in manifest for k in range(m["lines"])}]

    # ripgrep over the keyword set: the floor (reading plus one literal search)
    kw = out / "keywords.txt"
    kw.write_text(subprocess.run([coffer, "scan", "--print-keywords"], stdout=subprocess.PIPE, check=True).stdout.decode())
    if shutil.which("rg"):
        secs_rg, r = timed(["rg", "--no-ignore", "--hidden", "-i", "-F", "-c", "-f", str(kw), "."], cwd=corpus)
        rows.append(("rg (keywords)", mb / secs_rg, None, None, None))
    else:
        secs_rg = None

    # Kingfisher
    kf = out / "venv/bin/kingfisher"
    if kf.exists():
        kf_out = out / "kingfisher.jsonl"
        secs_kf, r = timed([str(kf), "scan", ".", "-n", "--git-history", "none", "-f", "jsonl", "-o", str(kf_out),
                            "-j", str(cores), "--no-extract-archives", "--no-update-check"], cwd=corpus)
        if r.returncode not in (0, 200, 205) and not kf_out.exists():
            secs_kf, r = timed([str(kf), "scan", ".", "-n", "--git-history", "none", "-f", "jsonl", "-o", str(kf_out),
                                "-j", str(cores), "--no-extract-archives"], cwd=corpus)
        found = set()
        if kf_out.exists():
            for line in kf_out.read_text().splitlines():
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                for path, ln in kf_locations(o):
                    found.add((rel(path, corpus), ln))
        recall, fpk, otherk, _ = score(found, manifest, "kingfisher", mb, clean_mb)
        rows.append(("kingfisher", mb / secs_kf, recall, fpk, otherk))

    # detect-secrets (slow: a sample of planted and clean files)
    ds = out / "venv/bin/detect-secrets"
    if ds.exists():
        sample = out / "ds-sample"
        if sample.exists():
            shutil.rmtree(sample)
        budget, size, sample_manifest = a.ds_mb << 20, 0, []
        files = sorted(manifest, key=lambda m: m["file"])[::3]
        for m in files:
            src = corpus / m["file"]
            dst = sample / m["file"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            size += src.stat().st_size
            sample_manifest.append(m)
            if size > budget // 2:
                break
        for p in sorted((corpus / "clean").rglob("*")):
            if size > budget:
                break
            if p.is_file():
                dst = sample / p.relative_to(corpus)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dst)
                size += p.stat().st_size
        smb = corpus_bytes(sample) / 1e6
        secs_ds, r = timed([str(ds), "scan", "--all-files", "."], cwd=sample)
        found = set()
        try:
            res = json.loads(r.stdout)["results"]
            for path, items in res.items():
                for it in items:
                    found.add((rel(path, sample), it["line_number"]))
        except (ValueError, KeyError):
            pass
        recall, fpd, _, _ = score(found, sample_manifest, "detect-secrets", smb, smb)
        rows.append((f"detect-secrets ({smb:.0f} MB sample)", smb / secs_ds, recall, fpd, None))

    print()
    print(f"{'tool':34} {'MB/s':>8} {'recall %':>9} {'FP':>6} {'other (real code)':>18}")
    for name, speed, rec, fpn, oth in rows:
        print(f"{name:34} {speed:8.1f} {fmt(rec, '.1f'):>9} {fmt(fpn, 'd'):>6} {fmt(oth, 'd'):>18}")
    print()
    c_speed = rows[0][1]
    if secs_rg:
        print(f"coffer / ripgrep throughput: {c_speed / (mb / secs_rg):.2f} (target >= 0.5)")
    kfr = [r for r in rows if r[0] == "kingfisher"]
    if kfr:
        print(f"coffer / kingfisher throughput: {c_speed / kfr[0][1]:.2f} (target > 1)")
    print(f"coffer recall: {rows[0][2]:.1f}% of {len(manifest)} planted secrets (target >= 98%)")
    print(f"coffer false positives: {rows[0][3]} in {clean_mb:.0f} MB of generated source = "
          f"{rows[0][3] / clean_mb * 10:.2f} per 10 MB (target <= 1)")
    print(f"coffer findings in {real_mb:.0f} MB of real third-party code (test keys, fixtures): "
          f"{sum(by_rule.values())} {dict(sorted(by_rule.items(), key=lambda x: -x[1])[:8])}")
    if missed:
        print("coffer missed:", sorted({m["rule"] for m in missed}))
    if fps:
        print("coffer false positives:", [(rel(f["path"], corpus), f["line"], f["rule"]) for f in fps[:15]])


def kf_locations(o):
    """Finds (path, line) pairs in one Kingfisher JSON record."""
    out = []

    def walk(x):
        if isinstance(x, dict):
            path = x.get("path") or x.get("file") or x.get("file_path")
            line = x.get("line") or x.get("start_line") or x.get("line_num")
            if isinstance(path, str) and isinstance(line, int):
                out.append((path, line))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(o)
    return out


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


if __name__ == "__main__":
    main()
