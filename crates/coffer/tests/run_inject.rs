//! `coffer run` and `coffer inject` against a real server and real child
//! processes: references resolved into the child's environment, values
//! masked in its output (also when split across writes), SIGTERM
//! forwarded, exit codes passed through, errors that name the reference
//! and never the value, and `inject`'s private, atomic output.

mod cli_support;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::{unique, Server};

/// Writes `secret/app/db` with a fresh password and user; returns both.
fn seed(s: &Server) -> (String, String) {
    let pw = unique("pw");
    let user = unique("user");
    s.run(&[
        "kv",
        "put",
        "secret/app/db",
        &format!("password={pw}"),
        &format!("user={user}"),
    ])
    .ok();
    (pw, user)
}

#[test]
fn run_injects_masks_split_values_and_passes_the_exit_code() {
    let s = Server::start();
    let (pw, user) = seed(&s);
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("app.env");
    std::fs::write(
        &env,
        "# app\nDB_PASSWORD=coffer://secret/app/db#password\nDB_USER=\"coffer://secret/app/db#user\"\nMODE=prod\n",
    )
    .unwrap();
    let seen = dir.path().join("seen");
    // The child writes the password in two pieces with a pause between
    // them (two separate writes reach the masker), to stderr in full, and
    // records its environment in a file to prove the values arrived.
    let half = pw.len() / 2;
    let script = format!(
        "printf '%s=%s:%s\\n' \"$DB_PASSWORD\" \"$DB_USER\" \"$MODE\" > {seen}; \
         printf 'start %s' \"$(printf %s \"$DB_PASSWORD\" | cut -c1-{half})\"; sleep 0.3; \
         printf '%s end\\n' \"$(printf %s \"$DB_PASSWORD\" | cut -c{next}-)\"; \
         echo \"user $DB_USER\" >&2; exit 7",
        seen = seen.display(),
        next = half + 1,
    );
    let r = s.run(&[
        "run",
        "--env-file",
        env.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(r.code, 7, "{r:#?}");
    assert_eq!(r.stdout, "start <concealed by coffer> end\n", "{r:#?}");
    assert!(r.stderr.contains("user <concealed by coffer>"), "{r:#?}");
    assert!(
        !r.stderr.contains(&pw) && !r.stderr.contains(&user),
        "{r:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("{pw}={user}:prod\n")
    );

    // --no-masking shows the values; --env wins over the env file.
    s.run(&["kv", "put", "secret/app/other", "v=other-value"])
        .ok();
    let r = s
        .run(&[
            "run",
            "--no-masking",
            "--env-file",
            env.to_str().unwrap(),
            "--env",
            "DB_USER=coffer://secret/app/other#v",
            "--",
            "sh",
            "-c",
            "echo \"$DB_PASSWORD $DB_USER\"",
        ])
        .ok();
    assert_eq!(r.stdout, format!("{pw} other-value\n"));

    // A reference in the process environment is resolved too.
    let r = s
        .cmd()
        .env("FROM_ENV", "coffer://secret/app/db#user")
        .args([
            "run",
            "--no-masking",
            "--",
            "sh",
            "-c",
            "echo \"$FROM_ENV\"",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout), format!("{user}\n"));

    // A missing command exits 127, as a shell would.
    s.run(&["run", "--", "/nonexistent/program"]).code(127);
}

#[test]
fn resolution_errors_name_the_reference_never_a_value() {
    let s = Server::start();
    let (pw, _) = seed(&s);
    let cases = [
        ("coffer://secret/app/db#nope", "has no field \"nope\""),
        (
            "coffer://nomount/app/db#password",
            "no secrets engine is mounted at \"nomount\"",
        ),
        (
            "coffer://secret/app/missing#password",
            "no secret at secret/app/missing",
        ),
        (
            "coffer://secret/app/db#password?version=9",
            "no secret at secret/app/db",
        ),
    ];
    for (reference, expected) in cases {
        let r = s.run(&["run", "--env", &format!("X={reference}"), "--", "true"]);
        assert_eq!(r.code, 2, "{reference}: {r:#?}");
        assert!(r.stderr.contains(reference), "{reference}: {r:#?}");
        assert!(r.stderr.contains(expected), "{reference}: {r:#?}");
        assert!(!r.stderr.contains(&pw), "{reference}: {r:#?}");
    }
    // A malformed reference is a usage error naming it.
    let r = s.run(&["run", "--env", "X=coffer://secret/app/db", "--", "true"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("names no field"), "{r:#?}");

    // A token without read on the secret: permission denied, audited as a refusal.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("list-only.hcl");
    std::fs::write(
        &policy,
        "path \"secret/metadata/*\" { capabilities = [\"list\"] }\n",
    )
    .unwrap();
    s.run(&["policy", "write", "list-only", policy.to_str().unwrap()])
        .ok();
    let t = s
        .run(&["token", "create", "-policy=list-only", "-field=token"])
        .ok();
    let token = t.stdout.trim().to_string();
    let r = s
        .cmd()
        .env("COFFER_TOKEN", &token)
        .args([
            "run",
            "--env",
            "X=coffer://secret/app/db#password",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("coffer://secret/app/db#password: permission denied"),
        "{stderr}"
    );
    assert!(!stderr.contains(&pw), "{stderr}");
}

#[test]
fn sigterm_is_forwarded_to_the_child_and_its_code_returned() {
    let s = Server::start();
    seed(&s);
    let mut child = s
        .cmd()
        .args([
            "run",
            "--env",
            "DB_PASSWORD=coffer://secret/app/db#password",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "coffer run did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(42));
}

#[test]
fn inject_writes_a_private_file_atomically_and_fails_whole() {
    let s = Server::start();
    let (pw, user) = seed(&s);
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("config.yml.tpl");
    std::fs::write(
        &tpl,
        "db:\n  user: coffer://secret/app/db#user\n  password: \"coffer://secret/app/db#password\"\n",
    )
    .unwrap();
    let out = dir.path().join("config.yml");
    std::fs::write(&out, "old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = s
        .run(&[
            "inject",
            "-i",
            tpl.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .ok();
    assert!(!r.stdout.contains(&pw) && !r.stderr.contains(&pw), "{r:#?}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("db:\n  user: {user}\n  password: \"{pw}\"\n")
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // One bad reference: nothing is written, the old file stays, the
    // error names the reference and the line.
    std::fs::write(
        &tpl,
        "a: coffer://secret/app/db#user\nb: coffer://secret/app/db#nope\n",
    )
    .unwrap();
    let r = s.run(&[
        "inject",
        "-i",
        tpl.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stderr.contains("line 2") && r.stderr.contains("coffer://secret/app/db#nope"),
        "{r:#?}"
    );
    assert!(std::fs::read_to_string(&out).unwrap().contains(&pw));
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 2, "no temporary file is left behind");
}
