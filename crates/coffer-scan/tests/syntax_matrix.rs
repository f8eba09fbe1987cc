//! The per-syntax matrix: every built-in rule × every common syntax a
//! credential is written in (gitleaks' sample syntaxes plus XML attributes
//! and elements, Go typed vars, PHP `.=`, JSON inside JSON, heredocs, `.env`,
//! Jupyter, Kubernetes manifests, Terraform variable defaults, curl, URL
//! userinfo).
//!
//! Each rule's credential is generated at run time from the rule's example
//! template (the format's specification: prefix, alphabet, length), so the
//! repository holds no credential. A positive must be found by its rule with
//! the span exactly the secret; a truncated secret and placeholders must not
//! be flagged.

use coffer_scan::template::{expand, Rng};
use coffer_scan::{Config, Scanner};
use std::collections::BTreeMap;

/// One syntax: a name, whether it needs the key (identifier) to carry the
/// secret's context, whether it can hold a multi-line value, how the value is
/// encoded in it, and the text it produces for key `k` and value `v`.
struct Syntax {
    name: &'static str,
    keyless: bool,
    multiline: bool,
    json_escaped: bool,
    render: fn(&str, &str) -> String,
}

macro_rules! syn {
    ($name:expr, $f:expr) => {
        Syntax {
            name: $name,
            keyless: false,
            multiline: false,
            json_escaped: false,
            render: $f,
        }
    };
}

fn syntaxes() -> Vec<Syntax> {
    let mut v = vec![
        syn!("go var typed", |k, v| format!(
            "package main\n\nvar {k} string = \"{v}\"\n"
        )),
        syn!("go const", |k, v| format!("const {k} = \"{v}\"\n")),
        syn!("go short", |k, v| format!("\t{k} := \"{v}\"\n")),
        syn!("go backticks", |k, v| format!("\t{k} := `{v}`\n")),
        syn!("python", |k, v| format!("{k} = '{v}'\n")),
        syn!("python double quote", |k, v| format!(
            "def f():\n    {k} = \"{v}\"\n"
        )),
        syn!("js const", |k, v| format!("const {k} = \"{v}\";\n")),
        syn!("ts typed", |k, v| format!(
            "export const {k}: string = '{v}';\n"
        )),
        syn!("js object", |k, v| format!(
            "module.exports = {{\n  {k}: \"{v}\",\n}};\n"
        )),
        syn!("java", |k, v| format!(
            "    private static final String {k} = \"{v}\";\n"
        )),
        syn!("java setProperty", |k, v| format!(
            "System.setProperty(\"{k}\", \"{v}\");\n"
        )),
        syn!("kotlin typed", |k, v| format!(
            "val {k}: String = \"{v}\"\n"
        )),
        syn!("csharp", |k, v| format!(
            "    public const string {k} = \"{v}\";\n"
        )),
        syn!("php", |k, v| format!("<?php\n${k} = \"{v}\";\n")),
        syn!("php concat", |k, v| format!("<?php\n${k} .= \"{v}\";\n")),
        syn!("php array", |k, v| format!("    '{k}' => '{v}',\n")),
        syn!("ruby", |k, v| format!("{k} = \"{v}\"\n")),
        syn!("ruby hash", |k, v| format!("config = {{ {k}: '{v}' }}\n")),
        syn!("shell export", |k, v| format!("export {k}=\"{v}\"\n")),
        syn!("shell unquoted", |k, v| format!("{k}={v} ./run.sh\n")),
        syn!(".env unquoted", |k, v| format!("# app\n{k}={v}\nOTHER=1\n")),
        syn!("yaml unquoted", |k, v| format!("app:\n  {k}: {v}\n")),
        syn!("yaml single quote", |k, v| format!("{k}: '{v}'\n")),
        syn!("yaml double quote", |k, v| format!("{k}: \"{v}\"\n")),
        syn!("toml", |k, v| format!("[service]\n{k} = \"{v}\"\n")),
        syn!("ini unquoted", |k, v| format!("[default]\n{k} = {v}\n")),
        syn!("json", |k, v| format!("{{\n    \"{k}\": \"{v}\"\n}}\n")),
        syn!("xml element", |k, v| format!(
            "<config><{k}>{v}</{k}></config>\n"
        )),
        syn!("xml element multiline", |k, v| format!(
            "<{k}>\n    {v}\n</{k}>\n"
        )),
        syn!("xml attribute", |k, v| format!(
            "<appSettings>\n  <add key=\"{k}\" value=\"{v}\" />\n</appSettings>\n"
        )),
        syn!("hcl", |k, v| format!(
            "provider \"x\" {{\n  {k} = \"{v}\"\n}}\n"
        )),
        syn!("terraform variable default", |k, v| format!(
            "variable \"{k}\" {{\n  default = \"{v}\"\n}}\n"
        )),
        syn!("dockerfile env", |k, v| format!(
            "FROM alpine\nENV {k}={v}\n"
        )),
        syn!("heredoc", |k, v| format!(
            "cat > app.env <<EOF\n{k}={v}\nEOF\n"
        )),
        syn!("kubernetes env", |k, v| format!(
            "    env:\n      - name: {k}\n        value: \"{v}\"\n"
        )),
        syn!("curl header", |k, v| format!(
            "curl -H \"{k}: {v}\" https://api.internal/v1\n"
        )),
        syn!("logstash", |k, v| format!("  \"{k}\" => \"{v}\"\n")),
        syn!("make conditional", |k, v| format!("{k} ?= {v}\n")),
        syn!("make shell assignment", |k, v| format!("{k} ::= \"{v}\"\n")),
    ];
    v.push(Syntax {
        name: "yaml block",
        keyless: false,
        multiline: false,
        json_escaped: false,
        render: |k, v| {
            let body: Vec<String> = v.lines().map(|l| format!("  {l}")).collect();
            format!("{k}: |\n{}\n", body.join("\n"))
        },
    });
    v.push(Syntax {
        name: "heredoc multiline",
        keyless: true,
        multiline: true,
        json_escaped: false,
        render: |_, v| format!("cat > key <<'EOF'\n{v}\nEOF\n"),
    });
    v.push(Syntax {
        name: "json escaped string",
        keyless: false,
        multiline: true,
        json_escaped: true,
        render: |k, v| format!("{{\"config\": \"{{\\\"{k}\\\": \\\"{v}\\\"}}\"}}\n"),
    });
    v.push(Syntax {
        name: "json escaped newline",
        keyless: false,
        multiline: true,
        json_escaped: true,
        render: |k, v| format!("{{\"config.ini\": \"{k}={v}\\nBACKUP_ENABLED=true\"}}\n"),
    });
    v.push(Syntax {
        name: "jupyter cell",
        keyless: false,
        multiline: false,
        json_escaped: true,
        render: |k, v| {
            format!(
                "{{\n \"cells\": [\n  {{\n   \"cell_type\": \"code\",\n   \"source\": [\n    \"import os\\n\",\n    \"{k} = \\\"{v}\\\"\\n\"\n   ]\n  }}\n ]\n}}\n"
            )
        },
    });
    v.push(Syntax {
        name: "url userinfo",
        keyless: true,
        multiline: false,
        json_escaped: false,
        render: |_, v| format!("remote = \"https://deploy:{v}@git.internal.io/org/repo.git\"\n"),
    });
    v.push(Syntax {
        name: "bare",
        keyless: true,
        multiline: true,
        json_escaped: false,
        render: |_, v| format!("{v}\n"),
    });
    v
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A rule's credential and how to write it: the value `v` (the secret or a
/// string holding it, such as a connection URL) under key `k`.
struct Sample {
    rule: String,
    secret: String,
    value: String,
    key: String,
    standalone: bool,
    /// False for passwords, whose shorter forms are passwords too.
    fixed_length: bool,
}

/// Finds the rule's secret with exactly this span in `text`.
fn found(scanner: &Scanner, path: &str, text: &str, rule: &str, at: usize, secret: &str) -> bool {
    scanner
        .scan(path, text.as_bytes())
        .iter()
        .any(|f| f.rule_id == rule && f.start == at && f.secret.as_str() == secret)
}

fn identifiers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.retain(|w| w.chars().next().is_some_and(|c| c.is_ascii_alphabetic()));
    out.reverse();
    out
}

/// Derives the sample of a rule from its expanded example; `None` when the
/// rule's secret cannot stand in a plain `k = "v"` (the exempt list).
fn sample(scanner: &Scanner, rule: &str, example: &str, fixed_length: bool) -> Option<Sample> {
    let content = format!("{example}\n");
    let f = scanner
        .scan("src/settings.txt", content.as_bytes())
        .into_iter()
        .find(|f| f.rule_id == rule)?;
    let secret = f.secret.to_string();
    let (s, e) = (f.start, f.end);
    // The token around the secret: up to whitespace or a quote.
    let stop = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`');
    let ts = content[..s].rfind(stop).map_or(0, |i| i + 1);
    let te = content[e..].find(stop).map_or(content.len(), |i| e + i);
    let token = &content[ts..te];
    let mut values = vec![secret.clone(), token.to_string()];
    if let Some(eq) = token.find(['=', ':']) {
        let rest = &token[eq + 1..];
        if !rest.starts_with("//") && rest.contains(secret.as_str()) {
            values.push(rest.to_string());
        }
    }
    let mut keys = identifiers(&content[..ts]);
    keys.push("api_token".into());
    for value in &values {
        let off = value.find(secret.as_str())?;
        for key in &keys {
            let text = format!("{key} = \"{value}\"\n");
            let at = key.len() + 4 + off;
            if found(scanner, "app.py", &text, rule, at, &secret) {
                let bare = format!(" {value} \n");
                let standalone = value == &secret && found(scanner, "a", &bare, rule, 1, &secret);
                return Some(Sample {
                    rule: rule.to_string(),
                    secret: secret.clone(),
                    value: value.clone(),
                    key: key.clone(),
                    standalone,
                    fixed_length,
                });
            }
        }
    }
    None
}

/// Rules whose credential only exists inside a larger syntax, with why.
const EXEMPT: &[(&str, &str)] = &[
    (
        "private-key",
        "multi-line: tested in the multi-line syntaxes below",
    ),
    ("putty-private-key", "a multi-line file format of its own"),
    ("gcp-service-account-key-id", "a field of the JSON key file"),
    (
        "authorization-bearer",
        "an HTTP header: tested by curl below",
    ),
    (
        "authorization-basic",
        "an HTTP header: tested by curl below",
    ),
    (
        "connection-string-password",
        "inside an ADO.NET connection string",
    ),
    (
        "curl-basic-auth",
        "a curl argument: its example is its syntax",
    ),
    (
        "docker-config-auth",
        "the auth field of a Docker config.json",
    ),
    ("npmrc-auth-token", "an .npmrc line (`//host/:_authToken=`)"),
    ("nuget-config-password", "a NuGet.config element"),
    ("okta-ssws-token", "an SSWS Authorization header"),
    ("netrc-password", "a .netrc entry"),
    ("gradle-credentials", "a Gradle credentials block"),
    ("truenas-api-key", "a JSON-RPC call's params"),
    (
        "blynk-device-token",
        "a query parameter of a Blynk Cloud URL",
    ),
    ("sonarqube-login-token", "a sonar.login property or flag"),
    (
        "android-buildconfig-secret",
        "a Gradle buildConfigField call",
    ),
    ("psexec-password", "a PsExec argument"),
    (
        "powershell-securestring-plaintext",
        "a ConvertTo-SecureString argument",
    ),
    (
        "vault-token-in-output",
        "a login command or a token table row: its example is its syntax",
    ),
    (
        "vault-unseal-key",
        "a line of `operator init` output: its example is its syntax",
    ),
];

#[test]
fn every_rule_in_every_syntax() {
    let cfg = Config::builtin().unwrap();
    let scanner = Scanner::new(&cfg).unwrap();
    let syntaxes = syntaxes();
    let mut failures: Vec<String> = Vec::new();
    let mut per_syntax: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut tested = 0usize;
    for (i, rule) in cfg.rules.iter().enumerate() {
        if rule.regex.is_none() && rule.secret.is_none() {
            continue;
        }
        let Some(example) = &rule.example else {
            continue;
        };
        for seed in 0..3u64 {
            let mut rng = Rng::new(0x5EED_0000 + seed * 977 + i as u64);
            let text = expand(example, &mut rng, 1.0);
            // Passwords and generic detectors have no fixed length.
            let fixed = !rule.generic
                && !matches!(
                    rule.secret_type.as_deref(),
                    Some("password" | "db_credential")
                );
            let Some(smp) = sample(&scanner, &rule.id, &text, fixed) else {
                if !EXEMPT.iter().any(|(id, _)| *id == rule.id) && seed == 0 {
                    failures.push(format!("{}: example yields no k = \"v\" sample", rule.id));
                }
                continue;
            };
            tested += 1;
            let multiline = smp.value.contains('\n');
            for syn in &syntaxes {
                if (syn.keyless && !smp.standalone) || (multiline && !syn.multiline) {
                    continue;
                }
                let v = if syn.json_escaped {
                    json_escape(&smp.value)
                } else {
                    smp.value.clone()
                };
                let s = if syn.json_escaped {
                    json_escape(&smp.secret)
                } else {
                    smp.secret.clone()
                };
                let text = (syn.render)(&smp.key, &v);
                let entry = per_syntax.entry(syn.name).or_default();
                entry.0 += 1;
                let at = text.find(&v).unwrap() + v.find(&s).unwrap();
                if found(&scanner, "src/app.txt", &text, &smp.rule, at, &s) {
                    entry.1 += 1;
                } else {
                    let got: Vec<String> = scanner
                        .scan("src/app.txt", text.as_bytes())
                        .iter()
                        .map(|f| format!("{}@{}..{}", f.rule_id, f.start, f.end))
                        .collect();
                    failures.push(format!(
                        "{} in {}: want {}@{}..{} in {:?}, got {:?}",
                        smp.rule,
                        syn.name,
                        smp.rule,
                        at,
                        at + s.len(),
                        text.replace(&s, "<SECRET>"),
                        got
                    ));
                }
                // A truncated credential is no credential of this format.
                let cut: String = smp.secret.chars().take(smp.secret.len() / 3).collect();
                if cut.len() >= 3 && !multiline && smp.fixed_length {
                    let nv = smp.value.replace(&smp.secret, &cut);
                    let text = (syn.render)(&smp.key, &nv);
                    if scanner
                        .scan("src/app.txt", text.as_bytes())
                        .iter()
                        .any(|f| f.rule_id == smp.rule)
                    {
                        failures.push(format!(
                            "{}: truncated value flagged in {}",
                            smp.rule, syn.name
                        ));
                    }
                }
            }
        }
    }
    let summary: Vec<String> = per_syntax
        .iter()
        .map(|(k, (n, ok))| format!("{k}: {ok}/{n}"))
        .collect();
    eprintln!("{tested} samples; per syntax: {}", summary.join(", "));
    failures.sort();
    failures.dedup();
    assert!(tested > 500, "only {tested} samples");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Placeholders and lookups are never findings, in any syntax and under any
/// rule's key.
#[test]
fn placeholders_in_every_syntax_are_not_flagged() {
    let cfg = Config::builtin().unwrap();
    let scanner = Scanner::new(&cfg).unwrap();
    let mut failures = Vec::new();
    let keys = ["api_token", "DB_PASSWORD", "client_secret", "githubToken"];
    let values = [
        "${API_TOKEN}",
        "<your-token-here>",
        "changeme",
        "xxxxxxxxxxxxxxxxxxxxxxxx",
        "{{ .Values.token }}",
        "REPLACE_WITH_YOUR_TOKEN",
        "os.getenv(TOKEN)",
        "%(token)s",
    ];
    for syn in syntaxes() {
        for k in keys {
            for v in values {
                let text = (syn.render)(k, v);
                let found = scanner.scan("src/app.txt", text.as_bytes());
                if !found.is_empty() {
                    failures.push(format!(
                        "{}: {text:?} -> {:?}",
                        syn.name,
                        found.iter().map(|f| &f.rule_id).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Header credentials in curl and HTTP syntaxes.
#[test]
fn authorization_headers_in_curl_and_code() {
    let cfg = Config::builtin().unwrap();
    let scanner = Scanner::new(&cfg).unwrap();
    let mut failures = Vec::new();
    for seed in 0..5u64 {
        let mut rng = Rng::new(77 + seed);
        let bearer = expand("<<b64url:40>>", &mut rng, 1.0);
        let basic = expand("<<basic:24>>", &mut rng, 1.0);
        for (rule, secret, text) in [
            (
                "authorization-bearer",
                &bearer,
                format!("curl -H 'Authorization: Bearer {bearer}' https://a.internal\n"),
            ),
            (
                "authorization-bearer",
                &bearer,
                format!("headers = {{\"Authorization\": \"Bearer {bearer}\"}}\n"),
            ),
            (
                "authorization-bearer",
                &bearer,
                format!(
                    "{{\"headers\": \"{{\\\"Authorization\\\": \\\"Bearer {bearer}\\\"}}\"}}\n"
                ),
            ),
            (
                "authorization-basic",
                &basic,
                format!("curl -H \"Authorization: Basic {basic}\" https://a.internal\n"),
            ),
            (
                "authorization-basic",
                &basic,
                format!("  Authorization: Basic {basic}\n"),
            ),
        ] {
            let at = text.find(secret.as_str()).unwrap();
            if !found(&scanner, "a.sh", &text, rule, at, secret) {
                failures.push(format!(
                    "{rule}: {}",
                    text.replace(secret.as_str(), "<SECRET>")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
