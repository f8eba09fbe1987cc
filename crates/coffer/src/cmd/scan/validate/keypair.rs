//! Private keys against the certificates found beside them, offline: the
//! key's public half is compared with each certificate's. A key that pairs
//! with a certificate valid now is `live`; one whose certificates have all
//! expired is `revoked`; no pairing certificate, or a key this cannot read
//! (encrypted, OpenSSH, PGP, RSA under 2048 bits), is `unknown`.
//!
//! Certificates are looked for in the key's own file and in the files of
//! its directory named `*.crt`, `*.cer`, `*.cert` or `*.pem` (at most
//! [`MAX_FILES`], each at most [`MAX_FILE_BYTES`]); history and standard-
//! input findings stay `unknown`.

use std::path::Path;

use aws_lc_rs::signature::{self as sig, KeyPair as _};
use base64::Engine as _;
use coffer_scan::validate::{Claim, Validation, Validator};
use coffer_scan::Finding;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::cmd::scan::in_tree;

/// The validator's name in reports.
const NAME: &str = "key-pair";

/// Files of the key's directory read for certificates, at most.
pub(super) const MAX_FILES: usize = 64;

/// Bytes read of one certificate file, at most.
pub(super) const MAX_FILE_BYTES: u64 = 1 << 20;

/// Extensions of certificate files.
const CERT_EXTENSIONS: &[&str] = &["crt", "cer", "cert", "pem"];

/// Pairs private keys with certificates beside them.
pub(super) struct KeyPair {
    now: i64,
}

impl KeyPair {
    /// A validator judging validity at `now` (seconds since the epoch).
    pub(super) fn new(now: i64) -> KeyPair {
        KeyPair { now }
    }

    /// The verdict for one PEM key found at `path`.
    fn judge(&self, pem: &str, path: &Path) -> Validation {
        let Some(public) = public_key(pem) else {
            return Validation::unknown(
                NAME,
                "not an unencrypted RSA (2048 bits or more), ECDSA P-256/384/521 or Ed25519 \
                 PEM key",
            );
        };
        let certs = certificates_near(path);
        let pairs: Vec<&Cert> = certs.iter().filter(|c| c.public == *public).collect();
        if pairs.is_empty() {
            return Validation::unknown(
                NAME,
                if certs.is_empty() {
                    "no certificate found beside it".to_string()
                } else {
                    format!(
                        "none of the {} certificates beside it pairs with it",
                        certs.len()
                    )
                },
            );
        }
        if let Some(c) = pairs
            .iter()
            .find(|c| c.not_before <= self.now && self.now <= c.not_after)
        {
            return Validation::live(
                NAME,
                format!(
                    "pairs with the certificate {}in {}, valid until {}",
                    c.subject(),
                    c.file,
                    super::rfc3339(c.not_after)
                ),
            );
        }
        match pairs
            .iter()
            .filter(|c| c.not_after < self.now)
            .max_by_key(|c| c.not_after)
        {
            Some(c) => Validation::revoked(
                NAME,
                format!(
                    "its certificate {}in {} expired at {}",
                    c.subject(),
                    c.file,
                    super::rfc3339(c.not_after)
                ),
            ),
            None => Validation::unknown(NAME, "its certificates are not valid yet"),
        }
    }
}

impl Validator for KeyPair {
    fn name(&self) -> &'static str {
        NAME
    }

    fn claim(&self, f: &Finding) -> Option<Claim> {
        if f.rule_id != "private-key" {
            return None;
        }
        Some(Claim::Decided(if in_tree(f) {
            self.judge(&f.secret, Path::new(&f.path))
        } else {
            Validation::unknown(
                NAME,
                "certificates are looked for only beside working-tree files",
            )
        }))
    }

    fn check(&self, _: &str) -> Validation {
        Validation::unknown(NAME, "decided when claimed")
    }
}

/// A certificate's public key and validity.
struct Cert {
    /// The subjectPublicKey bits (RSAPublicKey DER, an EC point, an
    /// Ed25519 key).
    public: Vec<u8>,
    not_before: i64,
    not_after: i64,
    /// Its common name, when it has one.
    cn: Option<String>,
    /// The file it is in, as given.
    file: String,
}

impl Cert {
    /// `CN=... ` or nothing.
    fn subject(&self) -> String {
        self.cn
            .as_ref()
            .map(|cn| format!("CN={cn} "))
            .unwrap_or_default()
    }
}

/// The public half of a PEM private key (PKCS#8, PKCS#1 RSA, SEC1 EC) in
/// the form certificates carry it.
fn public_key(pem: &str) -> Option<Zeroizing<Vec<u8>>> {
    let (label, der) = pem_body(pem)?;
    let rsa = || {
        let k = match label.as_str() {
            "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(&der),
            _ => aws_lc_rs::rsa::KeyPair::from_pkcs8(&der),
        };
        k.ok().map(|k| k.public_key().as_ref().to_vec())
    };
    let ec = || {
        [
            &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
            &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
        ]
        .into_iter()
        .find_map(|alg| sig::EcdsaKeyPair::from_private_key_der(alg, &der).ok())
        .map(|k| k.public_key().as_ref().to_vec())
    };
    let ed = || {
        sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .ok()
            .map(|k| k.public_key().as_ref().to_vec())
    };
    let public = match label.as_str() {
        "RSA PRIVATE KEY" => rsa(),
        "EC PRIVATE KEY" => ec(),
        "PRIVATE KEY" => rsa().or_else(ec).or_else(ed),
        _ => None,
    }?;
    Some(Zeroizing::new(public))
}

/// The label and DER body of a PEM block written literally or with `\n`
/// escapes (as in JSON or YAML strings). Encrypted bodies have headers
/// (`Proc-Type:`) and are refused.
fn pem_body(pem: &str) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let text = pem.replace("\\r", "").replace("\\n", "\n");
    let begin = text.find("-----BEGIN ")?;
    let after = &text[begin + 11..];
    let label_end = after.find("-----")?;
    let label = after[..label_end].trim().to_string();
    let body_start = begin + 11 + label_end + 5;
    let end = text[body_start..].find("-----END ")? + body_start;
    let body = &text[body_start..end];
    if body.contains(':') {
        return None;
    }
    let b64: Zeroizing<String> = Zeroizing::new(
        body.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'))
            .collect(),
    );
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(b64.as_bytes())
        .ok()?;
    Some((label, Zeroizing::new(der)))
}

/// The certificates in `key_file` and in the certificate files beside it.
fn certificates_near(key_file: &Path) -> Vec<Cert> {
    let mut files = vec![key_file.to_path_buf()];
    let dir = match key_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut names: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| CERT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        names.sort();
        files.extend(names.into_iter().filter(|p| p != key_file).take(MAX_FILES));
    }
    let mut out = Vec::new();
    for file in files {
        let Some(bytes) = read_small(&file) else {
            continue;
        };
        let shown = file.display().to_string();
        for der in CertificateDer::pem_slice_iter(&bytes).map_while(Result::ok) {
            if let Some(c) = parse_cert(&der, &shown) {
                out.push(c);
            }
        }
    }
    out
}

/// A regular file's bytes, when it is at most [`MAX_FILE_BYTES`].
fn read_small(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// A certificate's public key, validity and common name.
fn parse_cert(der: &[u8], file: &str) -> Option<Cert> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    let cn: Option<String> = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(|cn| cn.chars().filter(|c| !c.is_control()).take(64).collect());
    Some(Cert {
        public: cert.public_key().subject_public_key.data.to_vec(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        cn,
        file: file.to_string(),
    })
}
