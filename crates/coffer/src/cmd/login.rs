//! `coffer login [TOKEN]`: check a token with `auth/token/lookup-self` and
//! store it in `~/.coffer-token` (mode 0600) for later commands.

use anyhow::Context as _;
use reqwest::Method;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::client::{self, ConnectArgs};
use crate::output::{self, Format, FormatArgs};

/// Arguments of `coffer login`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    output: FormatArgs,
    #[command(flatten)]
    method: crate::cmd::auth::MethodArgs,
    /// The token (`-` reads it from stdin; prompted without echo when
    /// omitted), or with -method the method's key=value pairs, e.g.
    /// `username=alice`, `role_id=... secret_id=...`, `role=ci jwt=@token`.
    args: Vec<String>,
}

/// Verifies and stores the token, returning the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    if args.method.method.as_deref().is_some_and(|m| m != "token") || args.args.len() > 1 {
        return crate::cmd::auth::method_login(
            &args.connect,
            args.output.format,
            &args.method,
            &args.args,
        );
    }
    let given = args
        .args
        .first()
        .map(|t| t.strip_prefix("token=").unwrap_or(t).to_string());
    let token = match given {
        Some(t) if t != "-" => Zeroizing::new(t.trim().to_owned()),
        _ => crate::prompt::secret("Token (will be hidden): ").context("reading the token")?,
    };
    if token.is_empty() {
        eprintln!("No token provided");
        return Ok(1);
    }
    let client = args.connect.client()?.with_token(token.clone());
    let resp = client.request(Method::GET, "auth/token/lookup-self", None)?;
    let looked_up = match resp.status {
        404 | 405 => None,
        _ => Some(resp.error_for_status().context("authenticating")?),
    };
    let path = client::write_token_file(&token).context("storing the token")?;
    let Some(resp) = looked_up else {
        println!(
            "Success! Token stored in {} (the server does not support token lookup).",
            path.display()
        );
        return Ok(0);
    };
    let mut body = resp.body.unwrap_or(Value::Null);
    // Never echo the token itself.
    if let Some(data) = body.get_mut("data").and_then(Value::as_object_mut) {
        data.remove("id");
    }
    if args.output.format == Format::Json {
        print!("{}", output::json(&body));
        return Ok(0);
    }
    println!(
        "Success! You are now authenticated. The token is stored in {} and\n\
         future requests will use it automatically.\n",
        path.display()
    );
    print!(
        "{}",
        render_token_info(body.get("data").unwrap_or(&Value::Null))
    );
    Ok(0)
}

/// The token's properties (never its value) as `vault login` shows them.
fn render_token_info(data: &Value) -> String {
    let mut rows = Vec::new();
    for (key, label) in [
        ("accessor", "token_accessor"),
        ("ttl", "token_duration"),
        ("renewable", "token_renewable"),
        ("policies", "token_policies"),
        ("identity_policies", "identity_policies"),
        ("display_name", "display_name"),
    ] {
        if let Some(v) = data.get(key).filter(|v| !v.is_null()) {
            let mut text = output::value_text(v);
            if key == "ttl" && text == "0" {
                text = "∞".into();
            }
            rows.push((label.to_owned(), text));
        }
    }
    output::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_info_omits_the_token() {
        let data = json!({"id": "never-shown", "accessor": "acc", "ttl": 0, "policies": ["root"]});
        let text = render_token_info(&data);
        assert!(!text.contains("never-shown"));
        assert!(text.contains("token_duration    ∞\n"), "{text}");
        assert!(text.contains("token_policies    [root]\n"), "{text}");
    }
}
