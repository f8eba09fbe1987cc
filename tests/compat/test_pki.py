"""hvac's ``client.secrets.pki`` against Coffer: a root and an intermediate
CA, roles, issuance and signing, revocation and the CRL, tidy, issuers.
Certificates are checked with ``cryptography``."""

from __future__ import annotations

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hvac import exceptions

from conftest import start_dev_server, uid


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pki")
    srv, token = start_dev_server(workdir)
    yield srv, token
    srv.stop()


@pytest.fixture(scope="module")
def pki(server):
    """(client, root mount, intermediate mount) with a role `web` on the intermediate."""
    srv, token = server
    c = hvac.Client(url=srv.addr, token=token, timeout=30)
    root, inter = uid("pki"), uid("pkiint")
    for m in (root, inter):
        c.sys.enable_secrets_engine("pki", path=m, config={"max_lease_ttl": "87600h"})
    c.secrets.pki.generate_root("internal", "hvac Root", extra_params={"ttl": "8760h", "key_type": "ec"}, mount_point=root)
    csr = c.secrets.pki.generate_intermediate("internal", "hvac Intermediate", mount_point=inter)["data"]["csr"]
    signed = c.secrets.pki.sign_intermediate(csr, "hvac Intermediate", extra_params={"ttl": "4380h"}, mount_point=root)
    bundle = signed["data"]["certificate"] + "\n" + signed["data"]["issuing_ca"]
    c.secrets.pki.set_signed_intermediate(bundle, mount_point=inter)
    c.secrets.pki.create_or_update_role(
        "web",
        extra_params={"allowed_domains": ["example.com"], "allow_subdomains": True, "max_ttl": "72h", "key_type": "ec"},
        mount_point=inter,
    )
    return c, root, inter


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_chain_and_issue(pki):
    c, root, inter = pki
    root_pem = c.secrets.pki.read_ca_certificate(mount_point=root)
    int_pem = c.secrets.pki.read_ca_certificate(mount_point=inter)
    assert "BEGIN CERTIFICATE" in root_pem and "BEGIN CERTIFICATE" in int_pem
    chain = c.secrets.pki.read_ca_certificate_chain(mount_point=inter)
    assert root_pem.strip() in chain and int_pem.strip() in chain
    out = c.secrets.pki.generate_certificate("web", "www.example.com", extra_params={"alt_names": "api.example.com", "ttl": "1h"}, mount_point=inter)
    d = out["data"]
    leaf = _cert(d["certificate"])
    issuer = _cert(int_pem)
    leaf.verify_directly_issued_by(issuer)
    _cert(int_pem).verify_directly_issued_by(_cert(root_pem))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sans == ["www.example.com", "api.example.com"]
    assert d["private_key_type"] == "ec"
    key = serialization.load_pem_private_key(d["private_key"].encode(), password=None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    assert d["serial_number"] in c.secrets.pki.list_certificates(mount_point=inter)["data"]["keys"]
    assert c.secrets.pki.read_certificate(d["serial_number"], mount_point=inter)["data"]["certificate"] == d["certificate"]
    assert "web" in c.secrets.pki.list_roles(mount_point=inter)["data"]["keys"]
    assert c.secrets.pki.read_role("web", mount_point=inter)["data"]["allow_subdomains"] is True


def test_sign_with_a_csr_and_refusals(pki):
    c, _, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signed.example.com")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    out = c.secrets.pki.sign_certificate("web", csr, "signed.example.com", mount_point=inter)
    leaf = _cert(out["data"]["certificate"])
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    assert "private_key" not in out["data"]
    evil = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ok.example.com")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.com")]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    with pytest.raises(exceptions.InvalidRequest):
        c.secrets.pki.sign_certificate("web", evil, "ok.example.com", mount_point=inter)
    for cn in ("evil.com", "www.example.com.", "evilexample.com", "a..example.com"):
        with pytest.raises(exceptions.InvalidRequest):
            c.secrets.pki.generate_certificate("web", cn, mount_point=inter)


def test_revoke_crl_tidy_and_issuers(pki):
    c, _, inter = pki
    d = c.secrets.pki.generate_certificate("web", "gone.example.com", extra_params={"ttl": "1h"}, mount_point=inter)["data"]
    rev = c.secrets.pki.revoke_certificate(d["serial_number"], mount_point=inter)
    assert rev["data"]["revocation_time"] > 0
    crl = x509.load_pem_x509_crl(c.secrets.pki.read_crl(mount_point=inter).encode())
    serial = int(d["serial_number"].replace(":", ""), 16)
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert c.secrets.pki.rotate_crl(mount_point=inter)["data"]["success"] is True
    urls = {"issuing_certificates": ["http://ca.example.com/ca"], "crl_distribution_points": ["http://ca.example.com/crl"]}
    c.secrets.pki.set_urls(urls, mount_point=inter)
    assert c.secrets.pki.read_urls(mount_point=inter)["data"]["crl_distribution_points"] == urls["crl_distribution_points"]
    leaf = _cert(c.secrets.pki.generate_certificate("web", "cdp.example.com", mount_point=inter)["data"]["certificate"])
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == "http://ca.example.com/crl"
    assert c.secrets.pki.read_crl_configuration(mount_point=inter)["data"]["expiry"] == "72h"
    r = c.secrets.pki.tidy(extra_params={"tidy_cert_store": True, "safety_buffer": "1h"}, mount_point=inter)
    assert r.status_code == 202
    issuers = c.secrets.pki.list_issuers(mount_point=inter)["data"]
    default = c.read(f"{inter}/config/issuers")["data"]["default"]
    assert default in issuers["keys"] and issuers["key_info"][default]["is_default"] is True
    assert c.secrets.pki.read_issuer("default", mount_point=inter)["data"]["issuer_id"] == default
