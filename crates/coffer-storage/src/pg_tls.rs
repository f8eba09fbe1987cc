//! TLS for PostgreSQL connections: libpq's `sslmode` on rustls (aws-lc-rs),
//! with CA, client certificate and key given inline as PEM, and
//! `tls-server-end-point` channel binding for SCRAM-SHA-256-PLUS.
//!
//! | sslmode | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers it | chain checked against `tls_ca` when one is set, else not checked |
//! | `require` | always | chain checked against `tls_ca` when one is set, else not checked |
//! | `verify-ca` | always | chain checked against `tls_ca` (required) |
//! | `verify-full` | always | chain and host name checked against `tls_ca` (required) |
//!
//! These are libpq's semantics (a root certificate turns `prefer` and
//! `require` into `verify-ca`). An unchecked certificate still keeps a
//! passive listener out, and with SCRAM the channel binding makes a relaying
//! man in the middle fail authentication; only `verify-full` proves the
//! server is the one named.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

/// libpq's `sslmode`, as Coffer applies it (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// TLS always.
    Require,
    /// TLS always; the certificate chains to `tls_ca`.
    VerifyCa,
    /// TLS always; the certificate chains to `tls_ca` and names the host.
    VerifyFull,
}

impl SslMode {
    /// Parses a `sslmode` value.
    pub fn parse(v: &str) -> Option<SslMode> {
        Some(match v {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries plain text first; TLS-if-offered is the safer reading.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The mode the driver negotiates with (it knows no verification levels).
    pub fn driver(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// TLS material of a connection: PEM text from the configuration (never a
/// path on the server). Empty strings mean "not set". No `Debug`: the key.
#[derive(Clone, Copy, Default)]
pub struct TlsMaterial<'a> {
    /// CA certificate(s) the server's certificate must chain to.
    pub ca: &'a str,
    /// Client certificate chain for certificate authentication.
    pub client_cert: &'a str,
    /// The client certificate's private key.
    pub client_key: &'a str,
}

/// Builds the rustls client configuration for `mode` (not `Disable`).
/// Errors never quote the PEM text.
pub fn client_config(mode: SslMode, tls: &TlsMaterial<'_>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = if tls.ca.trim().is_empty() {
        None
    } else {
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(tls.ca.as_bytes()) {
            let cert = cert.map_err(|_| "tls_ca is not valid PEM".to_string())?;
            store
                .add(cert)
                .map_err(|e| format!("tls_ca holds an unusable certificate: {e}"))?;
        }
        if store.is_empty() {
            return Err("tls_ca holds no PEM certificate".into());
        }
        Some(Arc::new(store))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("cannot build the certificate verifier: {e}"))?
        }
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(
                "sslmode=verify-ca and verify-full need tls_ca (the CA certificate, PEM)".into(),
            )
        }
        (_, Some(roots)) => Arc::new(ChainOnly {
            roots,
            algs: provider.signature_verification_algorithms,
        }),
        (_, None) => Arc::new(Unchecked {
            algs: provider.signature_verification_algorithms,
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let has_cert = !tls.client_cert.trim().is_empty();
    let has_key = !tls.client_key.trim().is_empty();
    match (has_cert, has_key) {
        (false, false) => Ok(builder.with_no_client_auth()),
        (true, true) => {
            let chain = CertificateDer::pem_slice_iter(tls.client_cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "tls_certificate is not valid PEM".to_string())?;
            if chain.is_empty() {
                return Err("tls_certificate holds no PEM certificate".into());
            }
            let key = PrivateKeyDer::from_pem_slice(tls.client_key.as_bytes())
                .map_err(|_| "private_key is not a valid PEM private key".to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls_certificate and private_key do not fit: {e}"))
        }
        _ => Err("tls_certificate and private_key must be set together".into()),
    }
}

/// Checks the chain to the configured CA but not the host name (verify-ca).
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Accepts any certificate (prefer/require without a CA, as libpq), but
/// still checks the handshake signatures, so the channel binding holds.
#[derive(Debug)]
struct Unchecked {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// tokio-postgres' TLS hook over tokio-rustls.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl MakeRustls {
    /// Wraps a client configuration.
    pub fn new(config: ClientConfig) -> Self {
        MakeRustls {
            config: Arc::new(config),
        }
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        // A Unix socket has no host name; the driver never starts TLS there.
        let name = if domain.is_empty() {
            None
        } else {
            Some(ServerName::try_from(domain)?.to_owned())
        };
        Ok(RustlsConnect {
            name,
            connector: TlsConnector::from(Arc::clone(&self.config)),
        })
    }
}

/// One TLS handshake to be made.
pub struct RustlsConnect {
    name: Option<ServerName<'static>>,
    connector: TlsConnector,
}

type ConnectFuture<S> = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = ConnectFuture<S>;

    fn connect(self, stream: S) -> ConnectFuture<S> {
        Box::pin(async move {
            let name = self.name.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no host name for TLS")
            })?;
            self.connector.connect(name, stream).await.map(RustlsStream)
        })
    }
}

/// A TLS stream that tells the driver its channel binding.
pub struct RustlsStream<S>(TlsStream<S>);

impl<S> tokio_postgres::tls::TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        let (_, conn) = self.0.get_ref();
        match conn.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => match server_end_point(cert) {
                Some(hash) => ChannelBinding::tls_server_end_point(hash),
                None => ChannelBinding::none(),
            },
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929 `tls-server-end-point`: the certificate hashed with its
/// signature's hash (MD5 and SHA-1 become SHA-256); `None` for other
/// algorithms (Ed25519, RSA-PSS), as PostgreSQL does.
fn server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest;
    use x509_parser::oid_registry::*;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let alg = &cert.signature_algorithm.algorithm;
    let hash = if [
        OID_PKCS1_MD5WITHRSAENC,
        OID_PKCS1_SHA1WITHRSA,
        OID_PKCS1_SHA256WITHRSA,
        OID_SIG_ECDSA_WITH_SHA256,
    ]
    .contains(alg)
    {
        &digest::SHA256
    } else if [OID_PKCS1_SHA384WITHRSA, OID_SIG_ECDSA_WITH_SHA384].contains(alg) {
        &digest::SHA384
    } else if [OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA512].contains(alg) {
        &digest::SHA512
    } else {
        return None;
    };
    Some(digest::digest(hash, der).as_ref().to_vec())
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The error for a connection string that is neither a URL nor key=value pairs.
pub const INVALID_URL: &str =
    "invalid connection_url: expected a postgres:// URL or key=value pairs";

/// Connection-string keys that name files on the server. Refused: the
/// server would read whatever file an API caller names, with its own
/// rights; the PEM goes inline in `tls_ca`, `tls_certificate`, `private_key`.
pub const FILE_KEYS: &[&str] = &[
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "sslpassword",
];

/// Removes `sslmode` from a connection string (URL or key=value form; the
/// driver knows only disable/prefer/require) and returns the rest and its
/// value; refuses [`FILE_KEYS`]. Errors never quote the string.
pub fn split_sslmode(s: &str) -> Result<(Zeroizing<String>, Option<String>), String> {
    let mut mode = None;
    let mut check = |key: &str, value: &str| -> Result<bool, String> {
        if FILE_KEYS.contains(&key) {
            return Err(format!(
                "{key} is not supported in connection_url: Coffer reads no files named \
                     in a configuration; give the certificate as PEM in tls_ca \
                     (tls_certificate and private_key for a client certificate)"
            ));
        }
        if key == "sslmode" {
            mode = Some(value.to_ascii_lowercase());
            return Ok(true);
        }
        Ok(false)
    };
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let Some((base, query)) = s.split_once('?') else {
            return Ok((Zeroizing::new(s.to_string()), None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !check(k, v)? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((Zeroizing::new(rest), mode));
    }
    let mut rest = Zeroizing::new(String::with_capacity(s.len()));
    let mut last = 0;
    for (start, end, key, value) in kv_pairs(s).ok_or_else(|| INVALID_URL.to_string())? {
        let value = Zeroizing::new(value);
        if check(&key, &value)? {
            rest.push_str(&s[last..start]);
            last = end;
        }
    }
    rest.push_str(&s[last..]);
    Ok((rest, mode))
}

/// Splits a key=value connection string (libpq syntax: optional spaces
/// around `=`, values optionally single-quoted, backslash escapes) into
/// `(start, end, key, value)`; `None` when it is malformed.
fn kv_pairs(s: &str) -> Option<Vec<(usize, usize, String, String)>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            return Some(out);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s.get(start..i)?.to_string();
        skip_ws(&mut i);
        if b.get(i) != Some(&b'=') || key.is_empty() {
            return None;
        }
        i += 1;
        skip_ws(&mut i);
        let mut value = Vec::new();
        if b.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match b.get(i)? {
                    b'\\' => {
                        value.push(*b.get(i + 1)?);
                        i += 2;
                    }
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'\\' {
                    value.push(*b.get(i + 1)?);
                    i += 2;
                } else {
                    value.push(b[i]);
                    i += 1;
                }
            }
        }
        out.push((start, i, key, String::from_utf8(value).ok()?));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_end_point_hashes_with_the_signature_hash() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        // rcgen's default key is ECDSA P-256 with SHA-256.
        let want = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.der());
        assert_eq!(server_end_point(cert.der()), Some(want.as_ref().to_vec()));
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.test".to_string()])
            .unwrap()
            .self_signed(&ed)
            .unwrap();
        assert_eq!(server_end_point(cert.der()), None);
        assert_eq!(server_end_point(b"junk"), None);
    }

    #[test]
    fn sslmode_values() {
        assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("allow"), Some(SslMode::Prefer));
        assert_eq!(SslMode::parse("VERIFY-FULL"), None);
    }
}
