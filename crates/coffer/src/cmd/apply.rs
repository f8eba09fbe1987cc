//! `coffer apply -f coffer.app.toml [--dry-run]`: onboards a system from a
//! declarative file kept in its repository. Creates or updates, idempotently,
//! the secrets' lifecycle records, a least-privilege policy (`app-<name>`:
//! read on exactly the app's secrets), the app's AppRole or JWT role, and
//! the onboarding record the plan lists; then prints how the app fetches its
//! secrets at run time. A second run with the same file changes nothing.
//!
//! ```toml
//! [app]
//! name = "billing"
//!
//! [identity]
//! method = "approle"          # or "jwt" (then bound_audiences, user_claim, bound_subject)
//! token_ttl = "1h"
//!
//! [[secret]]
//! path = "secret/billing/stripe"
//! type = "api_key"
//! owner = "billing"
//! origin = "third_party"
//! vendor = "stripe"
//! rotate_every = "90d"
//! rotator = "manual"
//! ```
//!
//! A secret with the `generate` rotator that does not exist yet gets its
//! first value from the rotator; any other missing secret is reported (its
//! value comes from where it is issued). A secret removed from the file is
//! reported and kept, unless `--prune`.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::generic::call;
use crate::client::{Client, ConnectArgs};

/// Arguments of `coffer apply`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    coffer apply -f coffer.app.toml --dry-run\n  \
    coffer apply -f coffer.app.toml")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The app file.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: PathBuf,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete the lifecycle records of secrets removed from the file.
    #[arg(long)]
    prune: bool,
    /// text or json.
    #[arg(long, default_value = "text")]
    format: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFile {
    app: App,
    identity: IdentitySpec,
    #[serde(default, rename = "secret")]
    secrets: Vec<SecretSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct App {
    name: String,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentitySpec {
    method: String,
    #[serde(default)]
    mount: Option<String>,
    #[serde(default)]
    token_ttl: Option<String>,
    #[serde(default)]
    token_max_ttl: Option<String>,
    #[serde(default)]
    bound_audiences: Vec<String>,
    #[serde(default)]
    user_claim: Option<String>,
    #[serde(default)]
    bound_subject: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSpec {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    owner: String,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    vendor: Option<String>,
    #[serde(default)]
    description: Option<String>,
    rotate_every: String,
    #[serde(default = "manual")]
    rotator: String,
    #[serde(default)]
    settings: Option<toml::Table>,
}

fn manual() -> String {
    "manual".into()
}

/// `<mount>/<path>` split into the mount and the path inside it.
fn split(path: &str) -> anyhow::Result<(String, String)> {
    let p = path.trim_matches('/');
    let Some((mount, rest)) = p.split_once('/') else {
        bail!("secret path {p:?}: use <mount>/<path>, e.g. secret/billing/stripe");
    };
    let rest = rest.strip_prefix("data/").unwrap_or(rest);
    if rest.is_empty()
        || rest
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        bail!("secret path {p:?} is not a valid path");
    }
    Ok((mount.to_string(), rest.to_string()))
}

/// One change, done or to do.
struct Plan {
    changes: Vec<String>,
    notes: Vec<String>,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let file: AppFile =
        toml::from_str(&text).with_context(|| format!("invalid app file {}", a.file.display()))?;
    let name = file.app.name.trim().to_lowercase();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("app.name: letters, digits, - and _ only");
    }
    let method = file.identity.method.as_str();
    if !matches!(method, "approle" | "jwt") {
        bail!("identity.method: approle or jwt");
    }
    let auth_mount = file
        .identity
        .mount
        .clone()
        .unwrap_or_else(|| method.to_string());
    let auth_mount = auth_mount.trim_matches('/').to_string();
    let source = file
        .app
        .source
        .clone()
        .unwrap_or_else(|| a.file.display().to_string());
    let client = a.connect.client()?;
    let mut plan = Plan {
        changes: Vec::new(),
        notes: Vec::new(),
    };
    let dry = a.dry_run;

    // Secrets and their lifecycle records.
    let mut paths = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in &file.secrets {
        let (mount, rel) = split(&s.path)?;
        let full = format!("{mount}/{rel}");
        if !seen.insert(full.clone()) {
            bail!("secret {full} is listed twice");
        }
        paths.push(format!("{mount}/data/{rel}"));
        let mut want = json!({
            "owner": s.owner, "secret_type": s.kind,
            "origin": s.origin.clone().unwrap_or_else(|| if s.vendor.is_some() { "third_party".into() } else { "internal".into() }),
            "vendor": s.vendor.clone().unwrap_or_default(),
            "description": s.description.clone().unwrap_or_default(),
            "rotation": {"period": s.rotate_every, "rotator": s.rotator},
        });
        if let Some(st) = &s.settings {
            want["rotation"]["settings"] = serde_json::to_value(st)?;
        }
        let have = client
            .read(&format!("{mount}/lifecycle/{rel}"))?
            .map(|b| b["data"].clone());
        if lifecycle_differs(have.as_ref(), &want) {
            plan.changes.push(format!(
                "{} lifecycle record of {full}",
                if have.is_some() { "update" } else { "create" }
            ));
            if !dry {
                call(
                    &client,
                    Method::POST,
                    &format!("{mount}/lifecycle/{rel}"),
                    Some(&want),
                    &format!("writing the lifecycle record of {full}"),
                )?;
            }
        }
        let exists = client.read(&format!("{mount}/metadata/{rel}"))?.is_some();
        if !exists {
            if s.rotator == "generate" {
                plan.changes
                    .push(format!("generate the first value of {full}"));
                if !dry {
                    call(
                        &client,
                        Method::POST,
                        &format!("{mount}/rotate/{rel}"),
                        Some(&json!({"reason": "onboarding"})),
                        &format!("generating {full}"),
                    )?;
                }
            } else {
                plan.notes.push(format!("{full} has no value yet: store it with `coffer kv put {full} KEY=VALUE` (from {})", s.vendor.clone().unwrap_or_else(|| "where it is issued".into())));
            }
        }
    }

    // The least-privilege policy.
    let policy_name = format!("app-{name}");
    let policy_text: String = std::iter::once(format!(
        "# Managed by coffer apply ({source}): read on exactly {name}'s secrets.\n"
    ))
    .chain(
        paths
            .iter()
            .map(|p| format!("path \"{p}\" {{\n  capabilities = [\"read\"]\n}}\n")),
    )
    .collect();
    let have = client.read(&format!("sys/policies/acl/{policy_name}"))?;
    let have_text = have
        .as_ref()
        .and_then(|b| b["data"]["policy"].as_str().map(str::to_string));
    if have_text.as_deref() != Some(policy_text.as_str()) {
        plan.changes.push(format!(
            "{} policy {policy_name}",
            if have_text.is_some() {
                "update"
            } else {
                "create"
            }
        ));
        if !dry {
            call(
                &client,
                Method::PUT,
                &format!("sys/policies/acl/{policy_name}"),
                Some(&json!({"policy": policy_text})),
                "writing the policy",
            )?;
        }
    }

    // The auth method and the role.
    let auths = client.read("sys/auth")?.unwrap_or(Value::Null);
    let mounted = auths["data"].get(format!("{auth_mount}/")).is_some()
        || auths.get(format!("{auth_mount}/")).is_some();
    if !mounted {
        plan.changes
            .push(format!("enable auth method {method} at auth/{auth_mount}/"));
        if !dry {
            call(
                &client,
                Method::POST,
                &format!("sys/auth/{auth_mount}"),
                Some(&json!({"type": method})),
                "enabling the auth method",
            )?;
        }
    }
    let role_path = format!("auth/{auth_mount}/role/{name}");
    let mut want = json!({"token_policies": [policy_name]});
    if let Some(t) = &file.identity.token_ttl {
        want["token_ttl"] = json!(t);
    }
    if let Some(t) = &file.identity.token_max_ttl {
        want["token_max_ttl"] = json!(t);
    }
    if method == "jwt" {
        want["role_type"] = json!("jwt");
        want["bound_audiences"] = json!(file.identity.bound_audiences);
        want["user_claim"] = json!(file
            .identity
            .user_claim
            .clone()
            .unwrap_or_else(|| "sub".into()));
        if let Some(b) = &file.identity.bound_subject {
            want["bound_subject"] = json!(b);
        }
    }
    let have = if mounted {
        client.read(&role_path)?.map(|b| b["data"].clone())
    } else {
        None
    };
    if role_differs(have.as_ref(), &want) {
        plan.changes.push(format!(
            "{} role {role_path}",
            if have.is_some() { "update" } else { "create" }
        ));
        if !dry {
            call(
                &client,
                Method::POST,
                &role_path,
                Some(&want),
                "writing the role",
            )?;
        }
    }

    // The onboarding record, and secrets removed from the file.
    let record = json!({"source": source, "identity": format!("auth/{auth_mount}/{name}"), "policy": policy_name,
        "secrets": seen.iter().cloned().collect::<Vec<_>>()});
    let have = client
        .read(&format!("sys/coffer/apps/{name}"))?
        .map(|b| b["data"].clone());
    if let Some(h) = &have {
        for old in h["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !seen.contains(old) {
                if a.prune {
                    plan.changes.push(format!(
                        "delete the lifecycle record of {old} (removed from the file)"
                    ));
                    if !dry {
                        let (m, r) = split(old)?;
                        call(
                            &client,
                            Method::DELETE,
                            &format!("{m}/lifecycle/{r}"),
                            None,
                            "deleting a lifecycle record",
                        )?;
                    }
                } else {
                    plan.notes.push(format!("{old} was removed from the file: kept (the policy no longer grants it; --prune deletes its lifecycle record)"));
                }
            }
        }
    }
    let differs = have.as_ref().is_none_or(|h| {
        ["source", "identity", "policy", "secrets"]
            .iter()
            .any(|k| h[*k] != record[*k])
    });
    if differs {
        plan.changes.push(format!(
            "{} onboarding record of {name}",
            if have.is_some() { "update" } else { "create" }
        ));
        if !dry {
            call(
                &client,
                Method::POST,
                &format!("sys/coffer/apps/{name}"),
                Some(&record),
                "recording the app",
            )?;
        }
    }

    let snippet = snippet(&client, method, &auth_mount, &name, &file.secrets);
    if a.format == "json" {
        print!(
            "{}",
            crate::output::json(
                &json!({"app": name, "dry_run": dry, "changes": plan.changes, "notes": plan.notes, "snippet": snippet})
            )
        );
        return Ok(0);
    }
    if plan.changes.is_empty() {
        println!("No changes: {name} is as {} describes.", a.file.display());
    } else {
        println!(
            "{} {} change(s) for {name}:",
            if dry { "Would make" } else { "Made" },
            plan.changes.len()
        );
        for c in &plan.changes {
            println!("  {} {c}", if dry { "~" } else { "+" });
        }
    }
    for n in &plan.notes {
        println!("Note: {n}");
    }
    println!("\n{snippet}");
    Ok(0)
}

fn lifecycle_differs(have: Option<&Value>, want: &Value) -> bool {
    let Some(h) = have else { return true };
    let rot = &h["rotation"];
    let period = want["rotation"]["period"]
        .as_str()
        .and_then(coffer_core::util::parse_duration);
    ["owner", "secret_type", "origin", "vendor", "description"]
        .iter()
        .any(|k| h[*k] != want[*k])
        || rot["rotator"] != want["rotation"]["rotator"]
        || rot["period_seconds"]
            .as_u64()
            .or_else(|| rot["period"].as_u64())
            .or_else(|| {
                rot["period"]
                    .as_str()
                    .and_then(coffer_core::util::parse_duration)
            })
            != period
        || (want["rotation"].get("settings").is_some()
            && rot["settings"] != want["rotation"]["settings"])
}

fn role_differs(have: Option<&Value>, want: &Value) -> bool {
    let Some(h) = have else { return true };
    want.as_object().into_iter().flatten().any(|(k, v)| {
        let hv = &h[k];
        match (k.as_str(), v) {
            ("token_ttl" | "token_max_ttl", Value::String(s)) => {
                hv.as_u64() != coffer_core::util::parse_duration(s)
            }
            ("bound_audiences" | "token_policies", _) => hv != v,
            _ => hv != v,
        }
    })
}

/// How the app logs in and reads its secrets at run time.
fn snippet(
    client: &Client,
    method: &str,
    mount: &str,
    name: &str,
    secrets: &[SecretSpec],
) -> String {
    let addr = client.address().as_str().trim_end_matches('/').to_string();
    let mut s = String::from(
        "# At run time (the app fetches its secrets; nothing is baked into its image):\n",
    );
    s.push_str(&format!("export COFFER_ADDR={addr}\n"));
    match method {
        "approle" => {
            s.push_str(&format!(
                "# role id: coffer read auth/{mount}/role/{name}/role-id; a secret id per deploy:\n# coffer write -f auth/{mount}/role/{name}/secret-id\n"
            ));
            s.push_str(&format!(
                "export COFFER_TOKEN=$(coffer write -field=client_token auth/{mount}/login role_id=\"$ROLE_ID\" secret_id=\"$SECRET_ID\")\n"
            ));
        }
        _ => s.push_str(&format!(
            "export COFFER_TOKEN=$(coffer write -field=client_token auth/{mount}/login role={name} jwt=\"$CI_JWT\")\n"
        )),
    }
    for sec in secrets {
        s.push_str(&format!(
            "coffer kv get -format=json {}\n",
            sec.path.trim_matches('/')
        ));
    }
    s
}
