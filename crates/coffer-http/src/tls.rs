//! The listener's TLS configuration, loaded from PEM files with errors that
//! name the file and the reason (missing, not PEM, no key, key and
//! certificate that do not belong together).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Protocols offered by ALPN, HTTP/2 first (as axum-server does).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error(
        "the TLS certificate file {0} holds no PEM certificate \
         (expected a -----BEGIN CERTIFICATE----- block)"
    )]
    NoCertificate(String),
    /// The key file holds no PEM private key.
    #[error(
        "the TLS key file {0} holds no PEM private key \
         (expected a -----BEGIN PRIVATE KEY----- block; an encrypted key is not supported)"
    )]
    NoKey(String),
    /// rustls refused the pair (most often: the key is not the certificate's).
    #[error("the TLS key file {key} does not fit the certificate file {cert}: {reason}")]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// rustls' reason.
        reason: String,
    },
}

/// Reads `cert` (a PEM chain, leaf first) and `key` (a PEM private key) and
/// builds the server configuration, checking that the key is the leaf's.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.display().to_string(),
            source,
        })
    };
    let cert_pem = read("certificate", cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate(cert.display().to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.display().to_string()));
    }
    let key_pem = zeroize::Zeroizing::new(read("key", key)?);
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| TlsError::NoKey(key.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mismatch = |reason: String| TlsError::Mismatch {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| mismatch(e.to_string()))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn each_bad_file_is_named_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let (_, other_key) = pair();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let cert = write("cert.pem", &cert);
        let key = write("key.pem", &key);
        let other = write("other.pem", &other_key);
        let junk = write("junk.pem", "not a certificate\n");
        let missing = dir.path().join("missing.pem");
        assert!(server_config(&cert, &key).is_ok());

        let err = server_config(&missing, &key).unwrap_err().to_string();
        assert!(
            err.contains("missing.pem") && err.contains("cannot read"),
            "{err}"
        );
        let err = server_config(&junk, &key).unwrap_err().to_string();
        assert!(
            err.contains("junk.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = server_config(&cert, &junk).unwrap_err().to_string();
        assert!(
            err.contains("junk.pem") && err.contains("no PEM private key"),
            "{err}"
        );
        let err = server_config(&cert, &other).unwrap_err().to_string();
        assert!(
            err.contains("other.pem") && err.contains("does not fit"),
            "{err}"
        );
        // A certificate given as the key (and the key as the certificate).
        assert!(server_config(&key, &cert).is_err());
    }
}
