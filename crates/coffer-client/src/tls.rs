//! Verifying the server against the certificates of `COFFER_CACERT` /
//! `--ca-cert`, as `curl --cacert` and the `vault` CLI do.
//!
//! A chain is checked by webpki against the given certificates as trust
//! anchors. One case webpki refuses and OpenSSL and Go accept: the server
//! presents exactly one of the given certificates, and that certificate says
//! `CA:TRUE` (as every `openssl req -x509` certificate does). webpki answers
//! `CaUsedAsEndEntity`. Here, when the presented certificate is
//! byte-for-byte one the user pinned, it is accepted after the checks that
//! still mean something for a pinned certificate: it names the host (its
//! subjectAltName, as Go requires), it is within its validity period, and
//! its extended key usage (if any) allows TLS servers. Its signature is not
//! checked: trust comes from the user naming these exact bytes, not from an
//! issuer. The handshake signature is still verified with its key, so the
//! server must hold the private key. Any other certificate goes through
//! webpki unchanged; nothing is accepted that is not pinned or chained.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls::{Error as TlsError, SignatureScheme};

/// A client configuration trusting only `certs` (PEM-decoded, at least one).
pub fn pinned_client_config(certs: Vec<CertificateDer<'static>>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = PinnedOrChained::new(certs, provider.clone())?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// A client configuration for connections made outside reqwest (the event
/// WebSocket), verifying the server as the HTTP client does.
pub(crate) fn stream_config(trust: &crate::http::Trust) -> Result<ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    match trust {
        crate::http::Trust::Pinned(certs) => pinned_client_config(certs.clone()),
        crate::http::Trust::System => Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot configure TLS: {e}"))?
            .with_platform_verifier()
            .map_err(|e| format!("cannot load the system's trust roots: {e}"))?
            .with_no_client_auth()),
        crate::http::Trust::Skip => Ok(ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot configure TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()),
    }
}

/// Accepts any certificate (`-tls-skip-verify`, testing only); handshake
/// signatures are still checked with the presented key.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// webpki's verifier, plus acceptance of a pinned self-signed certificate.
#[derive(Debug)]
struct PinnedOrChained {
    pinned: Vec<CertificateDer<'static>>,
    chained: Arc<WebPkiServerVerifier>,
}

impl PinnedOrChained {
    /// Trusts `certs` as anchors and as pinned server certificates.
    fn new(
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            roots
                .add(cert.clone())
                .map_err(|e| format!("certificate {} is not usable: {e}", i + 1))?;
        }
        let chained = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        Ok(PinnedOrChained {
            pinned: certs,
            chained,
        })
    }
}

impl ServerCertVerifier for PinnedOrChained {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            check_pinned(end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.chained
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.chained.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.chained.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chained.supported_verify_schemes()
    }
}

/// Host name, validity period and purpose of a pinned certificate.
fn check_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), TlsError> {
    let parsed = ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = x509.validity();
    if now_secs < validity.not_before.timestamp() {
        return Err(TlsError::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now_secs > validity.not_after.timestamp() {
        return Err(TlsError::InvalidCertificate(CertificateError::Expired));
    }
    match x509.extended_key_usage() {
        Ok(None) => Ok(()),
        Ok(Some(eku)) if eku.value.server_auth || eku.value.any => Ok(()),
        Ok(Some(_)) => Err(TlsError::InvalidCertificate(
            CertificateError::InvalidPurpose,
        )),
        Err(_) => Err(TlsError::InvalidCertificate(CertificateError::BadEncoding)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

    fn cert(
        ca: bool,
        sans: &[&str],
        eku: Option<ExtendedKeyUsagePurpose>,
    ) -> CertificateDer<'static> {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        if let Some(e) = eku {
            p.extended_key_usages = vec![e];
        }
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().clone()
    }

    fn verify(
        pinned: &CertificateDer<'static>,
        presented: &CertificateDer<'static>,
        host: &str,
        now: UnixTime,
    ) -> Result<(), TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = PinnedOrChained::new(vec![pinned.clone()], provider).unwrap();
        let name = ServerName::try_from(host.to_owned()).unwrap();
        verifier
            .verify_server_cert(presented, &[], &name, &[], now)
            .map(|_| ())
    }

    #[test]
    fn a_pinned_ca_certificate_is_accepted_only_for_its_names_and_period() {
        let now = UnixTime::now();
        let ca = cert(true, &["127.0.0.1", "localhost"], None);
        verify(&ca, &ca, "127.0.0.1", now).unwrap();
        verify(&ca, &ca, "localhost", now).unwrap();
        assert!(verify(&ca, &ca, "other.example", now).is_err());
        // Far in the future the certificate has expired (rcgen: year 4096).
        let late = UnixTime::since_unix_epoch(std::time::Duration::from_secs(i64::MAX as u64 / 4));
        assert!(verify(&ca, &ca, "localhost", late).is_err());
        let early = UnixTime::since_unix_epoch(std::time::Duration::from_secs(0));
        assert!(verify(&ca, &ca, "localhost", early).is_err());
        // A certificate for clients only is not a server's.
        let client_only = cert(
            true,
            &["localhost"],
            Some(ExtendedKeyUsagePurpose::ClientAuth),
        );
        assert!(verify(&client_only, &client_only, "localhost", now).is_err());
        // Another self-signed CA certificate, not the pinned one, is refused.
        let other = cert(true, &["localhost"], None);
        assert!(verify(&ca, &other, "localhost", now).is_err());
    }
}
