//! `coffer operator rekey` and `coffer operator generate-root`: the
//! operations a quorum of unseal key holders performs, over Vault's
//! `sys/rekey/*` and `sys/generate-root/*` (which take no token), with
//! `vault operator`'s flags.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use reqwest::Method;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::generic::{call, usage};
use crate::client::Client;
use crate::output::{self, Format};

/// Arguments of `operator rekey`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer operator rekey -init -key-shares=5 -key-threshold=3\n  \
    coffer operator rekey -nonce=NONCE            (prompts for a current unseal key)\n  \
    coffer operator rekey -init -key-shares=3 -key-threshold=2 -verify\n  \
    coffer operator rekey -verify -nonce=VERIFICATION_NONCE NEW_KEY\n  \
    coffer operator rekey -status\n  \
    coffer operator rekey -cancel")]
pub struct RekeyArgs {
    /// Start a rekey (with -key-shares and -key-threshold).
    #[arg(long, conflicts_with_all = ["cancel", "status"])]
    init: bool,
    /// Cancel the rekey in progress (with -verify: restart only its verification).
    #[arg(long, conflicts_with = "status")]
    cancel: bool,
    /// Show the progress of the rekey in progress.
    #[arg(long)]
    status: bool,
    /// With -init: the new shares take effect only once a quorum of them is
    /// given back with -verify. Without -init: submit a new share for verification.
    #[arg(long)]
    verify: bool,
    /// Number of new key shares.
    #[arg(long, default_value_t = 5, value_name = "N")]
    key_shares: u32,
    /// Number of new shares needed to unseal.
    #[arg(long, default_value_t = 3, value_name = "N")]
    key_threshold: u32,
    /// The nonce of the rekey (or verification) in progress; read from its status when omitted.
    #[arg(long)]
    nonce: Option<String>,
    /// Not supported: the new shares are returned in the clear.
    #[arg(long, value_name = "KEYS", hide = true)]
    pgp_keys: Option<String>,
    /// Only "barrier" (the unseal keys) is supported.
    #[arg(long, default_value = "barrier")]
    target: String,
    /// An unseal key share; read without echo (or from stdin) when omitted or "-".
    key: Option<String>,
}

/// Arguments of `operator generate-root`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer operator generate-root -init            (prints the OTP: keep it)\n  \
    coffer operator generate-root -nonce=NONCE      (prompts for an unseal key)\n  \
    coffer operator generate-root -decode=ENCODED_TOKEN -otp=OTP\n  \
    coffer operator generate-root -status\n  \
    coffer operator generate-root -cancel")]
pub struct GenerateRootArgs {
    /// Start a root token generation (the server makes the OTP unless -otp is given).
    #[arg(long, conflicts_with_all = ["cancel", "status", "decode"])]
    init: bool,
    /// Cancel the generation in progress.
    #[arg(long, conflicts_with_all = ["status", "decode"])]
    cancel: bool,
    /// Show the progress of the generation in progress.
    #[arg(long, conflicts_with = "decode")]
    status: bool,
    /// Decode an encoded root token with -otp (no server request).
    #[arg(long, value_name = "ENCODED", requires = "otp")]
    decode: Option<String>,
    /// The one-time password: given to -init, or used by -decode.
    #[arg(long)]
    otp: Option<String>,
    /// Print a fresh OTP of the length the server expects, and exit.
    #[arg(long, conflicts_with_all = ["init", "cancel", "status", "decode"])]
    generate_otp: bool,
    /// The nonce of the generation in progress; read from its status when omitted.
    #[arg(long)]
    nonce: Option<String>,
    /// Not supported: use the OTP flow.
    #[arg(long, value_name = "KEY", hide = true)]
    pgp_key: Option<String>,
    /// An unseal key share; read without echo (or from stdin) when omitted or "-".
    key: Option<String>,
}

/// The share from the command line, or asked for.
fn share(key: Option<String>) -> anyhow::Result<Option<Zeroizing<String>>> {
    let key = match key {
        Some(k) if k != "-" => Zeroizing::new(k),
        _ => crate::prompt::secret("Unseal Key (will be hidden): ")?,
    };
    Ok(Some(key).filter(|k| !k.is_empty()))
}

/// The `nonce` field of a status answer.
fn nonce_of(status: &Value, field: &str) -> String {
    status
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Runs `operator rekey`.
pub fn rekey(client: &Client, a: RekeyArgs, format: Format) -> anyhow::Result<i32> {
    if a.target != "barrier" {
        return usage(format!(
            "Invalid -target={:?}: only \"barrier\" (the unseal keys) is supported",
            a.target
        ));
    }
    if a.pgp_keys.as_deref().is_some_and(|k| !k.is_empty()) {
        return usage("-pgp-keys is not supported: the new shares are returned in the clear");
    }
    let status_of = |path: &str| -> anyhow::Result<Value> {
        Ok(
            call(client, Method::GET, path, None, "reading the rekey status")?
                .unwrap_or(Value::Null),
        )
    };
    if a.status {
        let path = if a.verify {
            "sys/rekey/verify"
        } else {
            "sys/rekey/init"
        };
        print!("{}", render_rekey_status(&status_of(path)?, format));
        return Ok(0);
    }
    if a.cancel {
        if a.verify {
            call(
                client,
                Method::DELETE,
                "sys/rekey/verify",
                None,
                "restarting the verification",
            )?;
            println!(
                "Success! Rekey verification canceled; submit the new shares again with -verify"
            );
        } else {
            call(
                client,
                Method::DELETE,
                "sys/rekey/init",
                None,
                "canceling the rekey",
            )?;
            println!("Success! Canceled rekeying (if it was started)");
        }
        return Ok(0);
    }
    if a.init {
        let body = json!({
            "secret_shares": a.key_shares,
            "secret_threshold": a.key_threshold,
            "require_verification": a.verify,
        });
        let status = call(
            client,
            Method::PUT,
            "sys/rekey/init",
            Some(&body),
            "starting the rekey",
        )?
        .unwrap_or(Value::Null);
        print!("{}", render_rekey_status(&status, format));
        return Ok(0);
    }
    let (path, status_path, nonce_field) = if a.verify {
        ("sys/rekey/verify", "sys/rekey/verify", "nonce")
    } else {
        ("sys/rekey/update", "sys/rekey/init", "nonce")
    };
    let nonce = match a.nonce {
        Some(n) => n,
        None => nonce_of(&status_of(status_path)?, nonce_field),
    };
    if nonce.is_empty() {
        eprintln!("No rekey is in progress. Start one with \"coffer operator rekey -init\".");
        return Ok(2);
    }
    let Some(key) = share(a.key)? else {
        return usage("No unseal key provided");
    };
    let answer = call(
        client,
        Method::PUT,
        path,
        Some(&json!({"key": key.as_str(), "nonce": nonce})),
        "submitting the key share",
    )?
    .unwrap_or(Value::Null);
    if answer.get("complete").and_then(Value::as_bool) != Some(true) {
        print!("{}", render_rekey_status(&answer, format));
        return Ok(0);
    }
    if format == Format::Json {
        print!("{}", output::json(&answer));
        return Ok(0);
    }
    if a.verify {
        println!("Success! Rekey verification was successful. The rekey operation is complete\nand the new keys are now active.");
        return Ok(0);
    }
    print!("{}", render_new_keys(&answer));
    Ok(0)
}

/// The new shares and what to do with them, as `vault operator rekey` says it.
fn render_new_keys(answer: &Value) -> String {
    let keys: Vec<&str> = answer
        .get("keys_base64")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = String::new();
    for (i, k) in keys.iter().enumerate() {
        out.push_str(&format!("Key {}: {k}\n", i + 1));
    }
    out.push_str(&format!(
        "\nOperation nonce: {}\n\n",
        nonce_of(answer, "nonce")
    ));
    if answer.get("verification_required").and_then(Value::as_bool) == Some(true) {
        out.push_str(&format!(
            "Coffer has issued {} new key shares, but they are not in force yet: give a\n\
             quorum of them back with\n\n    coffer operator rekey -verify -nonce={}\n\n\
             Until then the current unseal keys stay valid.\n",
            keys.len(),
            nonce_of(answer, "verification_nonce")
        ));
    } else {
        out.push_str(&format!(
            "Coffer unseal keys rekeyed with {} key shares. Please securely distribute the\n\
             key shares printed above. The previous unseal keys no longer work: when\n\
             Coffer is re-sealed, restarted, or stopped, you must supply a quorum of\n\
             these new keys to unseal it.\n",
            keys.len()
        ));
    }
    out
}

/// A rekey (or verification) status as `vault operator rekey -status` shows it.
fn render_rekey_status(status: &Value, format: Format) -> String {
    if format == Format::Json {
        return output::json(status);
    }
    let text = |k: &str| status.get(k).map(output::value_text).unwrap_or_default();
    let started = status.get("started").and_then(Value::as_bool) == Some(true);
    let nonce = nonce_of(status, "nonce");
    let mut rows = vec![
        (
            "Nonce".to_owned(),
            if nonce.is_empty() {
                "n/a".into()
            } else {
                nonce
            },
        ),
        ("Started".to_owned(), text("started")),
    ];
    if started {
        let required = status
            .get("required")
            .map(output::value_text)
            .unwrap_or_else(|| text("t"));
        rows.push((
            "Progress".into(),
            format!("{}/{required}", text("progress")),
        ));
        rows.push(("New Shares".into(), text("n")));
        rows.push(("New Threshold".into(), text("t")));
        if status.get("verification_required").is_some() {
            rows.push((
                "Verification Required".into(),
                text("verification_required"),
            ));
        }
        if let Some(v) = status.get("verification_nonce").and_then(Value::as_str) {
            rows.push(("Verification Nonce".into(), v.to_owned()));
        }
    }
    output::table(&rows)
}

/// Runs `operator generate-root`.
pub fn generate_root(client: &Client, a: GenerateRootArgs, format: Format) -> anyhow::Result<i32> {
    if a.pgp_key.as_deref().is_some_and(|k| !k.is_empty()) {
        return usage("-pgp-key is not supported: use the OTP flow");
    }
    if let Some(encoded) = &a.decode {
        let otp = a.otp.as_deref().unwrap_or_default();
        return match decode(encoded, otp) {
            Ok(token) => {
                print!("{}", token.as_str());
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    println!();
                }
                Ok(0)
            }
            Err(e) => usage(e),
        };
    }
    let status = || -> anyhow::Result<Value> {
        Ok(call(
            client,
            Method::GET,
            "sys/generate-root/attempt",
            None,
            "reading the root generation status",
        )?
        .unwrap_or(Value::Null))
    };
    if a.generate_otp {
        let len = status()?
            .get("otp_length")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        if len == 0 {
            anyhow::bail!("the server did not say how long an OTP must be");
        }
        println!("{}", otp_string(len));
        return Ok(0);
    }
    if a.status {
        print!("{}", render_root_status(&status()?, format));
        return Ok(0);
    }
    if a.cancel {
        call(
            client,
            Method::DELETE,
            "sys/generate-root/attempt",
            None,
            "canceling the root generation",
        )?;
        println!("Success! Root token generation canceled (if it was started)");
        return Ok(0);
    }
    if a.init {
        let body = json!({"otp": a.otp.clone().unwrap_or_default()});
        let answer = call(
            client,
            Method::PUT,
            "sys/generate-root/attempt",
            Some(&body),
            "starting the root generation",
        )?
        .unwrap_or(Value::Null);
        print!("{}", render_root_status(&answer, format));
        if format == Format::Table
            && answer
                .get("otp")
                .and_then(Value::as_str)
                .is_some_and(|o| !o.is_empty())
        {
            println!("\nA one-time password has been generated for you and is shown in the OTP field.\nYou will need it to decode the resulting root token, so keep it safe.");
        }
        return Ok(0);
    }
    let nonce = match a.nonce {
        Some(n) => n,
        None => nonce_of(&status()?, "nonce"),
    };
    if nonce.is_empty() {
        eprintln!("No root generation is in progress. Start one with \"coffer operator generate-root -init\".");
        return Ok(2);
    }
    let Some(key) = share(a.key)? else {
        return usage("No unseal key provided");
    };
    let answer = call(
        client,
        Method::PUT,
        "sys/generate-root/update",
        Some(&json!({"key": key.as_str(), "nonce": nonce})),
        "submitting the key share",
    )?
    .unwrap_or(Value::Null);
    print!("{}", render_root_status(&answer, format));
    Ok(0)
}

/// A random OTP of `len` characters (the URL-safe base64 alphabet).
fn otp_string(len: usize) -> String {
    coffer_crypto::random::token_string(len)
}

/// The root token from its encoding: base64 (with or without padding) XOR the OTP.
fn decode(encoded: &str, otp: &str) -> Result<Zeroizing<String>, String> {
    let trimmed = encoded.trim().trim_end_matches('=');
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .or_else(|_| STANDARD.decode(encoded.trim()))
            .map_err(|_| "Invalid -decode: not base64".to_owned())?,
    );
    if raw.len() != otp.len() {
        return Err(format!(
            "The OTP is {} characters long but the encoded token {}: give the OTP printed by -init",
            otp.len(),
            raw.len()
        ));
    }
    let bytes: Vec<u8> = raw.iter().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
    String::from_utf8(bytes)
        .map(Zeroizing::new)
        .map_err(|_| "The OTP does not decode this token".to_owned())
}

/// A root generation status as `vault operator generate-root -status` shows it.
fn render_root_status(status: &Value, format: Format) -> String {
    if format == Format::Json {
        return output::json(status);
    }
    let text = |k: &str| status.get(k).map(output::value_text).unwrap_or_default();
    let nonce = nonce_of(status, "nonce");
    let mut rows = vec![
        (
            "Nonce".to_owned(),
            if nonce.is_empty() {
                "n/a".into()
            } else {
                nonce
            },
        ),
        ("Started".to_owned(), text("started")),
        (
            "Progress".to_owned(),
            format!("{}/{}", text("progress"), text("required")),
        ),
        ("Complete".to_owned(), text("complete")),
    ];
    if let Some(t) = status
        .get("encoded_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        rows.push(("Encoded Token".into(), t.to_owned()));
    }
    if let Some(o) = status
        .get("otp")
        .and_then(Value::as_str)
        .filter(|o| !o.is_empty())
    {
        rows.push(("OTP".into(), o.to_owned()));
    }
    if let Some(n) = status
        .get("otp_length")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    {
        rows.push(("OTP Length".into(), n.to_string()));
    }
    output::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reverses_the_servers_encoding() {
        // Built at run time, so the repository holds no token-shaped literal.
        let body: String = (0u8..32).map(|i| char::from(b'a' + i % 26)).collect();
        let token = format!("cfs.{body}");
        let token = token.as_str();
        let otp = otp_string(token.len());
        let mixed: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&mixed);
        assert_eq!(decode(&encoded, &otp).unwrap().as_str(), token);
        assert_eq!(
            decode(&STANDARD.encode(&mixed), &otp).unwrap().as_str(),
            token
        );
        assert!(decode(&encoded, "short").is_err());
        assert!(decode("not base64!", &otp).is_err());
    }
}
