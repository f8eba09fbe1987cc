"""The pki engine, asked of OpenBao and Coffer alike: a root, an
intermediate signed by it, roles, issuance, name refusals, revocation, CRLs,
the certificate store, issuers and tidy. Certificates, keys, serials and
times differ by construction: compared by presence and type."""

from __future__ import annotations

from conftest import uid
from differential.harness import V

#: Everything an issuing answer carries is random or clock-derived.
ISSUED = ("data.*",)


def _mount(diff, name: str) -> None:
    diff.call("POST", f"sys/mounts/{name}", {"type": "pki", "config": {"max_lease_ttl": "87600h"}}, label="mount pki")


def test_pki_empty_mount(diff):
    m = uid("pki")
    _mount(diff, m)
    for p in ("ca/pem", "ca", "ca_chain", "crl", "crl/pem"):
        diff.call("GET", f"{m}/{p}", token=None, label=f"GET empty {p}")
    diff.call("GET", f"{m}/cert/ca", token=None, label="GET empty cert/ca")
    diff.call("GET", f"{m}/issuer/default", token=None, label="GET issuer/default without token")
    diff.call("GET", f"{m}/issuer/default", label="GET empty issuer/default")
    diff.call("LIST", f"{m}/issuers", label="LIST empty issuers")
    diff.call("LIST", f"{m}/certs", label="LIST empty certs")
    diff.call("LIST", f"{m}/roles", label="LIST empty roles")
    diff.call("GET", f"{m}/config/issuers")
    diff.call("GET", f"{m}/config/urls")
    diff.call("GET", f"{m}/config/crl")
    diff.call("POST", f"{m}/issue/none", {"common_name": "a.example.com"}, label="issue with unknown role")
    diff.call("GET", f"{m}/cert/aa:bb", label="GET unknown cert")
    diff.call("POST", f"{m}/root/generate/internal", {}, volatile=ISSUED, label="root without common_name")


def test_pki_root_intermediate_issue_revoke(diff):
    root = uid("pkir")
    inter = uid("pkii")
    _mount(diff, root)
    _mount(diff, inter)
    r = diff.call(
        "POST",
        f"{root}/root/generate/internal",
        {"common_name": "Diff Root", "ttl": "8760h", "key_type": "ec"},
        volatile=ISSUED,
    )
    diff.bind("root_pem", r, "data", "certificate")
    diff.call("GET", f"{root}/ca/pem", token=None, label="GET ca/pem")
    diff.call("GET", f"{root}/ca", token=None, label="GET ca (DER)")
    diff.call("GET", f"{root}/cert/ca", token=None, volatile=ISSUED, label="GET cert/ca")
    diff.call("GET", f"{root}/issuer/default", volatile=ISSUED)
    diff.call("LIST", f"{root}/issuers", only=["data.keys"], volatile=("data.keys*",))
    diff.call("GET", f"{root}/config/issuers", volatile=("data.default",))
    csr = diff.call(
        "POST",
        f"{inter}/intermediate/generate/internal",
        {"common_name": "Diff Intermediate", "key_type": "ec"},
        volatile=ISSUED,
    )
    diff.bind("csr", csr, "data", "csr")
    signed = diff.call(
        "POST",
        f"{root}/root/sign-intermediate",
        {"csr": V("csr"), "common_name": "Diff Intermediate", "ttl": "4380h"},
        volatile=ISSUED,
    )
    b, c = signed.get("data", "certificate")
    rb, rc = diff.vars["root_pem"]
    diff.set("bundle", f"{b}\n{rb}", f"{c}\n{rc}")
    diff.call(
        "POST",
        f"{inter}/intermediate/set-signed",
        {"certificate": V("bundle")},
        volatile=("data.imported_issuers*", "data.mapping*"),
        ignore=("data.mapping.*",),
    )
    diff.call("GET", f"{inter}/ca_chain", token=None, label="GET ca_chain")
    diff.call(
        "POST",
        f"{inter}/roles/web",
        {"allowed_domains": "example.com", "allow_subdomains": True, "max_ttl": "72h", "key_type": "ec"},
        label="write role",
    )
    diff.call("GET", f"{inter}/roles/web")
    diff.call("LIST", f"{inter}/roles")
    issued = diff.call("POST", f"{inter}/issue/web", {"common_name": "www.example.com", "ttl": "1h"}, volatile=ISSUED)
    diff.bind("serial", issued, "data", "serial_number")
    diff.call("POST", f"{inter}/issue/web", {"common_name": "*.example.com", "ttl": "1h"}, volatile=ISSUED, label="issue wildcard")
    for cn in ("evilexample.com", "www.example.com.", "WWW.EXAMPLE.COM", "a..example.com", "example.com", "evil.com"):
        diff.call("POST", f"{inter}/issue/web", {"common_name": cn}, label=f"issue refused {cn}")
    diff.call("POST", f"{inter}/issue/web", {"common_name": "ok.example.com", "alt_names": "evil.com"}, label="issue refused alt name")
    diff.call("GET", f"{inter}/cert/{{serial}}", token=None, volatile=ISSUED, label="GET cert/:serial")
    diff.call("LIST", f"{inter}/certs", volatile=("data.keys*",))
    diff.call("POST", f"{inter}/revoke", {"serial_number": V("serial")}, volatile=ISSUED)
    diff.call("POST", f"{inter}/revoke", {"serial_number": V("serial")}, volatile=ISSUED, label="revoke twice")
    diff.call("POST", f"{inter}/revoke", {"serial_number": "aa:bb"}, label="revoke unknown serial")
    diff.call("GET", f"{inter}/cert/{{serial}}", token=None, volatile=ISSUED, label="GET revoked cert")
    diff.call("GET", f"{inter}/crl/pem", token=None, label="GET crl/pem")
    diff.call("GET", f"{inter}/crl", token=None, label="GET crl (DER)")
    diff.call("GET", f"{inter}/cert/crl", token=None, volatile=ISSUED, label="GET cert/crl")
    diff.call("GET", f"{inter}/crl/rotate")
    diff.call("POST", f"{inter}/config/urls", {"crl_distribution_points": ["http://ca.example.com/crl"]}, label="write config/urls")
    diff.call("GET", f"{inter}/config/urls")
    diff.call("POST", f"{inter}/tidy", {"tidy_cert_store": True, "tidy_revoked_certs": True, "safety_buffer": "1h"})
    diff.call(
        "GET",
        f"{inter}/tidy-status",
        only=["data.state", "data.tidy_cert_store", "data.tidy_revoked_certs", "data.cert_store_deleted_count", "data.revoked_cert_deleted_count", "data.safety_buffer"],
        volatile=("data.state",),
    )
    diff.call("DELETE", f"{inter}/roles/web")
    diff.call("GET", f"{inter}/roles/web", label="read deleted role")
