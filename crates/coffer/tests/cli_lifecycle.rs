//! `coffer secret show|set|list`, `coffer rotate` and `coffer revoke
//! --compromised` against a real dev server: happy paths, bad input with its
//! exit code and message, and `-format=json` output.

mod cli_support;

use cli_support::{unique, Run, Server};
use serde_json::json;

/// Text with every run of spaces squashed to one (tables align with padding).
fn squash(text: &str) -> String {
    text.lines()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes a KV v2 secret with one key `key` holding a fresh value; returns it.
fn put(s: &Server, path: &str) -> String {
    let value = unique("v");
    s.run(&["kv", "put", path, &format!("key={value}")]).ok();
    value
}

#[test]
fn set_then_show_in_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rotators.toml");
    std::fs::write(
        &cfg,
        "[rotator.rotate-stripe]\ntype = \"command\"\nprogram = \"/bin/true\"\nargs = [\"--live\"]\n",
    )
    .unwrap();
    let s = Server::start_dev_config(&cfg);
    put(&s, "secret/billing/stripe");
    // A program given inline is refused by the server: rotators are declared in its config.
    let bad = s
        .run(&[
            "secret",
            "set",
            "secret/billing/stripe",
            "-rotator=command",
            "-setting",
            r#"command=["/bin/sh","-c","id"]"#,
        ])
        .code(2);
    assert!(bad.stderr.contains("declared by the operator"), "{bad:#?}");
    let out = s
        .run(&[
            "secret",
            "set",
            "secret/billing/stripe",
            "-owner=payments",
            "-type=api_key",
            "-origin=third_party",
            "-vendor=Stripe",
            "-description=charges",
            "-expires-at=2030-01-31T00:00:00Z",
            "-rotate-every=90d",
            "-window=01:00-05:00",
            "-rotator=command",
            "-setting",
            "name=rotate-stripe",
            "-lease-prefix",
            "database/creds/billing",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        "Success! Lifecycle of secret/billing/stripe updated\n"
    );

    let j = s
        .run(&["secret", "show", "-format=json", "secret/billing/stripe"])
        .ok()
        .json();
    let d = &j["data"];
    assert_eq!(d["owner"], json!("payments"));
    assert_eq!(d["secret_type"], json!("api_key"));
    assert_eq!(d["origin"], json!("third_party"));
    assert_eq!(d["vendor"], json!("Stripe"));
    assert_eq!(d["description"], json!("charges"));
    assert_eq!(d["expires_at"], json!("2030-01-31T00:00:00Z"));
    assert_eq!(d["lease_prefixes"], json!(["database/creds/billing"]));
    assert_eq!(d["rotation"]["rotator"], json!("command"));
    assert_eq!(d["rotation"]["window"], json!("01:00-05:00"));
    assert_eq!(d["rotation"]["settings"]["name"], json!("rotate-stripe"));
    assert_eq!(d["status"], json!("ok"));

    let t = s.run(&["secret", "show", "secret/billing/stripe"]).ok();
    assert!(
        t.stdout
            .starts_with("======= Secret =======\nsecret/billing/stripe\n\n"),
        "{t:#?}"
    );
    assert!(t.stdout.contains("\nowner "), "{t:#?}");
    assert!(t.stdout.contains("rotation.rotator "), "{t:#?}");

    // set merges: changing the owner keeps the rest; a cron replaces the period.
    s.run(&[
        "secret",
        "set",
        "--mount=secret",
        "billing/stripe",
        "-owner=finance",
        "-rotate-cron=0 3 * * 1",
        "-rotate-every=",
    ])
    .code(1); // -rotate-every and -rotate-cron together are refused locally
    s.run(&["secret", "set", "secret/billing/stripe", "-owner=finance"])
        .ok();
    let d = s
        .run(&["secret", "show", "-format=json", "secret/billing/stripe"])
        .ok()
        .json();
    assert_eq!(d["data"]["owner"], json!("finance"));
    assert_eq!(d["data"]["vendor"], json!("Stripe"));

    // A setting that parses as JSON travels as JSON.
    s.run(&[
        "secret",
        "set",
        "secret/billing/stripe",
        "-rotator=generate",
        "-setting",
        r#"fields=["key","other"]"#,
    ])
    .ok();
    let d = s
        .run(&["secret", "show", "-format=json", "secret/billing/stripe"])
        .ok()
        .json();
    assert_eq!(
        d["data"]["rotation"]["settings"]["fields"],
        json!(["key", "other"])
    );

    // -no-rotation removes the policy.
    s.run(&["secret", "set", "secret/billing/stripe", "-no-rotation"])
        .ok();
    let d = s
        .run(&["secret", "show", "-format=json", "secret/billing/stripe"])
        .ok()
        .json();
    assert!(d["data"]["rotation"].is_null(), "{d}");
}

#[test]
fn set_and_show_refuse_bad_input() {
    let s = Server::start();
    put(&s, "secret/app/key");
    // Local usage errors: exit 1, clear message.
    let e = s.run(&["secret", "set", "secret", "-owner=x"]).code(1);
    assert!(e.stderr.contains("names no secret"), "{e:#?}");
    let e = s.run(&["secret", "set", "secret/app/key"]).code(1);
    assert!(e.stderr.contains("Nothing to set"), "{e:#?}");
    let e = s
        .run(&["secret", "set", "secret/app/key", "-setting", "novalue"])
        .code(1);
    assert!(e.stderr.contains("-setting number 1"), "{e:#?}");
    s.run(&[
        "secret",
        "set",
        "secret/app/key",
        "-rotate-every=30d",
        "-rotate-cron=0 3 * * *",
    ])
    .code(1);
    // Server-side validation: exit 2 with the server's reason.
    let e = s
        .run(&["secret", "set", "secret/app/key", "-type=bogus"])
        .code(2);
    assert!(e.stderr.contains("secret_type must be one of"), "{e:#?}");
    let e = s
        .run(&["secret", "set", "secret/app/key", "-expires-at=tomorrow"])
        .code(2);
    assert!(e.stderr.contains("RFC 3339"), "{e:#?}");
    let e = s
        .run(&["secret", "set", "secret/app/key", "-rotate-cron=not a cron"])
        .code(2);
    assert!(e.stderr.contains("rotation.cron"), "{e:#?}");
    let e = s
        .run(&["secret", "set", "secret/app/key", "-window=25:00-26:00"])
        .code(2);
    assert!(e.stderr.contains("Code: 400"), "{e:#?}");
    // Nothing recorded yet: show exits 2.
    let e = s.run(&["secret", "show", "secret/app/key"]).code(2);
    assert!(e.stderr.contains("No lifecycle recorded"), "{e:#?}");
}

#[test]
fn inventory_lists_and_filters() {
    let s = Server::start();
    for p in ["secret/a/one", "secret/a/two", "secret/b/three"] {
        put(&s, p);
    }
    s.run(&[
        "secret",
        "set",
        "secret/a/one",
        "-owner=payments",
        "-type=api_key",
        "-vendor=Stripe",
        "-rotate-every=30d",
        "-rotator=generate",
    ])
    .ok();
    s.run(&[
        "secret",
        "set",
        "secret/a/two",
        "-owner=payments",
        "-type=password",
        "-origin=internal",
    ])
    .ok();
    // Expired a year ago: overdue.
    s.run(&[
        "secret",
        "set",
        "secret/b/three",
        "-owner=platform",
        "-type=certificate",
        "-origin=internal",
        "-expires-at=2020-01-01T00:00:00Z",
    ])
    .ok();

    let t = s.run(&["secret", "list"]).ok();
    let lines: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "PATH",
            "OWNER",
            "TYPE",
            "ORIGIN",
            "STATUS",
            "NEXT",
            "DUE",
            "LAST",
            "ROTATED",
            "CONSUMERS"
        ],
        "{t:#?}"
    );
    assert_eq!(lines.len(), 5, "{t:#?}");
    let one = lines
        .iter()
        .find(|l| l.starts_with("secret/a/one"))
        .unwrap();
    assert!(
        one.contains("third_party (Stripe)") && one.contains(" ok "),
        "{one}"
    );
    let three = lines
        .iter()
        .find(|l| l.starts_with("secret/b/three"))
        .unwrap();
    assert!(three.contains("overdue"), "{three}");

    let j = s
        .run(&["secret", "list", "--owner", "payments", "-format=json"])
        .ok()
        .json();
    let mut paths: Vec<&str> = j["data"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["secret/a/one", "secret/a/two"]);

    let j = s
        .run(&["secret", "list", "--due", "-format=json"])
        .ok()
        .json();
    assert_eq!(j["data"]["secrets"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["data"]["secrets"][0]["path"], json!("secret/b/three"));
    let j = s
        .run(&[
            "secret",
            "list",
            "-type=password",
            "-origin=internal",
            "-format=json",
        ])
        .ok()
        .json();
    assert_eq!(j["data"]["secrets"][0]["path"], json!("secret/a/two"));

    let none = s.run(&["secret", "list", "--failing"]).ok();
    assert_eq!(none.stdout, "");
    assert!(
        none.stderr.contains("No managed secrets match"),
        "{none:#?}"
    );
}

#[test]
fn rotate_now_changes_the_value_and_records_history() {
    let s = Server::start();
    let before = put(&s, "secret/app/api");
    s.run(&[
        "secret",
        "set",
        "secret/app/api",
        "-owner=app",
        "-type=api_key",
        "-origin=internal",
        "-rotate-every=30d",
        "-rotator=generate",
        "-setting",
        "field=key",
        "-setting",
        "length=40",
    ])
    .ok();
    let r = s.run(&["rotate", "-reason=drill", "secret/app/api"]).ok();
    assert_eq!(
        r.stdout,
        "Success! Rotated secret/app/api: version 1 -> 2 (rotator generate)\n"
    );
    let after = s
        .run(&["kv", "get", "-field=key", "secret/app/api"])
        .ok()
        .stdout;
    assert_ne!(after, before);
    assert_eq!(after.chars().count(), 40);

    let j = s
        .run(&["rotate", "-format=json", "secret/app/api"])
        .ok()
        .json();
    assert_eq!(j["data"]["old_version"], json!(2));
    assert_eq!(j["data"]["new_version"], json!(3));

    let show = s.run(&["secret", "show", "secret/app/api"]).ok();
    assert!(
        show.stdout.contains("Rotation history (newest first)"),
        "{show:#?}"
    );
    assert!(show.stdout.contains("1 -> 2"), "{show:#?}");
    assert!(show.stdout.contains("drill"), "{show:#?}");

    // No rotator configured: the server refuses (exit 2); a bare mount is usage (1).
    put(&s, "secret/app/plain");
    let e = s.run(&["rotate", "secret/app/plain"]).code(2);
    assert!(e.stderr.contains("Error making API request"), "{e:#?}");
    s.run(&["rotate", "secret"]).code(1);
}

#[test]
fn revoke_compromised_rotates_and_cuts_off_readers() {
    let s = Server::start();
    let before = put(&s, "secret/billing/stripe");
    s.run(&[
        "secret",
        "set",
        "secret/billing/stripe",
        "-owner=payments",
        "-type=api_key",
        "-vendor=Stripe",
        "-rotate-every=90d",
        "-rotator=generate",
        "-setting",
        "field=key",
    ])
    .ok();
    s.run_stdin(
        &["policy", "write", "billing-reader", "-"],
        "path \"secret/data/billing/*\" { capabilities = [\"read\"] }\n",
    )
    .ok();
    let j = s
        .run(&["token", "create", "-policy=billing-reader", "-format=json"])
        .ok()
        .json();
    let reader = j["auth"]["client_token"].as_str().unwrap().to_owned();
    let accessor = j["auth"]["accessor"].as_str().unwrap().to_owned();
    let as_reader = |args: &[&str]| {
        let mut cmd = s.cmd();
        cmd.env("COFFER_TOKEN", &reader).args(args);
        Run::of(&mut cmd)
    };
    let seen = as_reader(&["kv", "get", "-field=key", "secret/billing/stripe"]).ok();
    assert_eq!(seen.stdout, before);

    // Bad input first: no --compromised, no reason, no secret path.
    let e = s
        .run(&["revoke", "secret/billing/stripe", "--reason", "x"])
        .code(1);
    assert!(e.stderr.contains("--compromised"), "{e:#?}");
    let e = s
        .run(&["revoke", "--compromised", "secret/billing/stripe"])
        .code(1);
    assert!(e.stderr.contains("--reason is required"), "{e:#?}");
    s.run(&["revoke", "--compromised", "secret", "--reason", "x"])
        .code(1);
    let e = s
        .run(&[
            "revoke",
            "--compromised",
            "secret/billing/stripe",
            "--reason",
            "x",
            "--since",
            "last tuesday",
        ])
        .code(2);
    assert!(e.stderr.contains("since"), "{e:#?}");

    let out = s
        .run(&[
            "revoke",
            "--compromised",
            "secret/billing/stripe",
            "--reason",
            "key pasted in a public issue",
            "--since",
            "30d",
        ])
        .ok();
    let table = squash(&out.stdout);
    assert!(table.contains("Rotated yes: version 1 -> 2"), "{out:#?}");
    assert!(table.contains("Tokens revoked 1\n"), "{out:#?}");
    assert!(out.stdout.contains(&accessor), "{out:#?}");
    // The reader's token no longer works; the value changed.
    as_reader(&["kv", "get", "secret/billing/stripe"]).code(2);
    let now = s
        .run(&["kv", "get", "-field=key", "secret/billing/stripe"])
        .ok()
        .stdout;
    assert_ne!(now, before);

    // JSON output: the server's report; nobody else read it since.
    let j = s
        .run(&[
            "revoke",
            "--compromised",
            "secret/billing/stripe",
            "--reason",
            "second look",
            "-format=json",
        ])
        .ok()
        .json();
    assert_eq!(j["data"]["path"], json!("secret/data/billing/stripe"));
    assert_eq!(j["data"]["tokens_revoked"], json!([]));
    assert_eq!(j["data"]["rotated"]["new_version"], json!(3));

    // Without a rotator the revocation still runs, warning on stderr, and
    // exits 2: the leaked value is still current.
    put(&s, "secret/billing/manual");
    let w = s
        .run(&[
            "revoke",
            "--compromised",
            "secret/billing/manual",
            "--reason",
            "leak",
        ])
        .code(2);
    assert!(
        w.stderr.contains("WARNING! no rotator configured"),
        "{w:#?}"
    );
    assert!(squash(&w.stdout).contains("Rotated NO"), "{w:#?}");
}

/// `secret set -setting k=v` merges into the rotator's settings (issue 17,
/// item 4): changing one setting of a postgres rotator keeps its role, and
/// `-unset-setting` removes one key.
#[test]
fn set_merges_rotator_settings_and_unsets_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rotators.toml");
    std::fs::write(
        &cfg,
        "[rotator.app-db]\ntype = \"postgres\"\n\
         connection_url = \"postgres://rotator@127.0.0.1:1/app\"\nallowed_roles = [\"app\"]\n",
    )
    .unwrap();
    let s = Server::start_dev_config(&cfg);
    put(&s, "secret/app/db");
    let settings = |s: &Server| {
        s.run(&["secret", "show", "-format=json", "secret/app/db"])
            .ok()
            .json()["data"]["rotation"]["settings"]
            .clone()
    };
    s.run(&[
        "secret",
        "set",
        "secret/app/db",
        "-rotate-every=30d",
        "-rotator=postgres",
        "-setting",
        "name=app-db",
        "-setting",
        "role=app",
    ])
    .ok();
    s.run(&["secret", "set", "secret/app/db", "-setting", "length=40"])
        .ok();
    assert_eq!(
        settings(&s),
        json!({"name": "app-db", "role": "app", "length": 40})
    );
    s.run(&["secret", "set", "secret/app/db", "-unset-setting", "length"])
        .ok();
    assert_eq!(settings(&s), json!({"name": "app-db", "role": "app"}));
    // Removing a required setting is refused and changes nothing.
    let e = s
        .run(&["secret", "set", "secret/app/db", "-unset-setting", "role"])
        .code(2);
    assert!(
        e.stderr.contains("rotation.settings.role is required"),
        "{e:#?}"
    );
    assert_eq!(settings(&s), json!({"name": "app-db", "role": "app"}));
    // Naming one key both ways is a usage error.
    s.run(&[
        "secret",
        "set",
        "secret/app/db",
        "-setting",
        "length=40",
        "-unset-setting",
        "length",
    ])
    .code(1);
}
