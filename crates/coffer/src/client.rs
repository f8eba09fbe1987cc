//! The CLI's side of the HTTP client: the connection flags every client
//! command shares and the hints printed after an error. The client itself
//! lives in the `coffer-client` crate (shared with `coffer agent` and
//! offered to applications as the Rust SDK).

use std::path::PathBuf;

use reqwest::Url;

pub use coffer_client::{write_token_file, Client, Config, Error, Result};

/// Connection flags shared by every client command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// Server address [default: $COFFER_ADDR, $VAULT_ADDR or https://127.0.0.1:8200;
    /// a dev server listens on http://, see its start banner].
    #[arg(long, global = true, value_name = "URL")]
    pub address: Option<String>,
    /// PEM file of the CA, or of the server's self-signed certificate, to trust
    /// [default: $COFFER_CACERT or $VAULT_CACERT].
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the server's certificate, testing only [default: $COFFER_SKIP_VERIFY
    /// or $VAULT_SKIP_VERIFY].
    #[arg(long, global = true)]
    pub tls_skip_verify: bool,
    /// Ask the server to wrap the answer in a single-use token valid this
    /// long (`60s`, `5m`; Vault's `-wrap-ttl`); `coffer unwrap` reads it.
    #[arg(long, global = true, value_name = "DURATION")]
    pub wrap_ttl: Option<String>,
}

impl ConnectArgs {
    /// Builds a client from these flags and the environment.
    pub fn client(&self) -> Result<Client> {
        let mut config = Config::from_env(self.address.as_deref())?;
        if let Some(ca) = &self.ca_cert {
            config.ca_cert = Some(ca.clone());
        }
        config.skip_verify |= self.tls_skip_verify;
        Ok(Client::new(config)?.with_wrap_ttl(self.wrap_ttl.clone()))
    }
}

/// A hint for an error of a client command, when one is likely to help:
/// no token sent where one is needed, an `https://` client talking to an
/// `http://` server, a refused connection, an untrusted certificate.
/// `token_set` says whether a token was configured.
pub fn hint(err: &anyhow::Error, token_set: bool) -> Option<String> {
    for cause in err.chain() {
        match cause.downcast_ref::<Error>() {
            Some(Error::Api(api)) if api.status == 403 && !token_set => {
                return Some(
                    "No token was sent: set COFFER_TOKEN (or VAULT_TOKEN), or run \
                     `coffer login`."
                        .into(),
                )
            }
            Some(Error::Transport { url, source, .. }) => return transport_hint(url, source),
            _ => {}
        }
    }
    None
}

/// A hint for a request that did not get an answer.
fn transport_hint(url: &str, source: &reqwest::Error) -> Option<String> {
    let mut text = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(source);
    while let Some(c) = cause {
        text.push_str(&c.to_string());
        text.push('\n');
        cause = c.source();
    }
    let origin = Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        let plain = origin.replacen("https://", "http://", 1);
        return Some(format!(
            "The server at {origin} does not speak TLS: it is probably a plain http:// \
             server (as `coffer server --dev` is). Set COFFER_ADDR={plain} (or pass -address)."
        ));
    }
    if text.contains("Connection refused") || text.contains("ConnectionRefused") {
        return Some(format!(
            "Nothing answers at {origin}. Is the server running? Set COFFER_ADDR \
             (or pass -address) to its address."
        ));
    }
    if text.contains("NotValidForName") || text.contains("not valid for name") {
        return Some(format!(
            "The server's certificate does not name the host of {origin} in its \
             subjectAltName: use an address it names, or reissue it with that name."
        ));
    }
    if ["UnknownIssuer", "BadSignature", "CaUsedAsEndEntity"]
        .iter()
        .any(|k| text.contains(k))
    {
        return Some(
            "The server's certificate is not trusted: set COFFER_CACERT (or pass -ca-cert) \
             to the PEM file of its CA or of the certificate itself."
                .into(),
        );
    }
    None
}
