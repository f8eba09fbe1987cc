//! Golden tests for the JSON and SARIF reporters. The secrets are generated
//! from a fixed seed at run time; the expected files hold only redacted
//! values and fingerprints. Regenerate with `UPDATE_GOLDEN=1`.

use coffer_scan::finding::CommitInfo;
use coffer_scan::report::{self, Format, ReportContext};
use coffer_scan::template::{expand, Rng};
use coffer_scan::validate::Validation;
use coffer_scan::{Config, Scanner};
use std::path::PathBuf;

fn findings() -> (Scanner, Vec<coffer_scan::Finding>) {
    let scanner = Scanner::new(&Config::builtin().unwrap()).unwrap();
    let mut rng = Rng::new(42);
    let content = expand(
        "# settings\nGITHUB_TOKEN=ghp_<<alnum:36>>\nDATABASE_URL=postgres://app:<<pw:18>>@db.internal/app\n",
        &mut rng,
        1.0,
    );
    let mut f = scanner.scan("deploy/app.env", content.as_bytes());
    let more = expand("aws_access_key_id = AKIA<<base32:16>>\n", &mut rng, 1.0);
    let mut g = scanner.scan("infra/main.tf", more.as_bytes());
    for x in &mut g {
        x.commit = Some(CommitInfo {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            author: "Dev One".into(),
            email: "dev@example.org".into(),
            date: "2026-01-02T03:04:05+00:00".into(),
        });
    }
    f.append(&mut g);
    // Validation, as `coffer scan --validate` attaches it (the third is
    // not validated: no field at all).
    f[0].validation = Some(Validation::live("github", "the provider accepts it"));
    f[1].validation = Some(Validation::unknown(
        "postgres",
        "host db.internal is not in --validate-host",
    ));
    (scanner, f)
}

fn check(format: Format, name: &str) {
    let (scanner, f) = findings();
    assert_eq!(
        f.len(),
        3,
        "{:?}",
        f.iter().map(|x| &x.rule_id).collect::<Vec<_>>()
    );
    let ctx = ReportContext {
        rules: scanner.rules(),
        reveal: false,
        version: "0.0.0-test",
    };
    let mut out = Vec::new();
    report::write(format, &f, &ctx, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for x in &f {
        assert!(
            !text.contains(x.secret.as_str()),
            "secret leaked into {name}"
        );
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, expected, "{name} differs from the golden file");
}

#[test]
fn json_report_matches_golden() {
    check(Format::Json, "report.json");
}

#[test]
fn sarif_report_matches_golden() {
    check(Format::Sarif, "report.sarif");
    // Structural checks GitHub code scanning relies on.
    let (scanner, f) = findings();
    let ctx = ReportContext {
        rules: scanner.rules(),
        reveal: false,
        version: "0.0.0-test",
    };
    let mut out = Vec::new();
    report::write(Format::Sarif, &f, &ctx, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for r in run["results"].as_array().unwrap() {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(region["startColumn"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn reveal_shows_secrets_only_when_asked() {
    let (scanner, f) = findings();
    let ctx = ReportContext {
        rules: scanner.rules(),
        reveal: true,
        version: "t",
    };
    let mut out = Vec::new();
    report::write(Format::Csv, &f, &ctx, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("rule,description,path,line"));
    assert!(text.contains(f[0].secret.as_str()));
    let mut out = Vec::new();
    report::write(
        Format::Junit,
        &f,
        &ReportContext {
            reveal: false,
            ..ctx
        },
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("<testsuites") && text.contains("failures=\"3\""));
    assert!(!text.contains(f[0].secret.as_str()));
}

/// Every format that shows validation shows it for the validated findings
/// only: JSON fields, SARIF's property bag, a line of the human report.
#[test]
fn validation_is_in_json_sarif_and_human_output() {
    let (scanner, f) = findings();
    let ctx = ReportContext {
        rules: scanner.rules(),
        reveal: false,
        version: "t",
    };
    let render = |format| {
        let mut out = Vec::new();
        report::write(format, &f, &ctx, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
    assert_eq!(json[0]["validation"], "live");
    assert_eq!(json[0]["validator"], "github");
    assert_eq!(json[1]["validation"], "unknown");
    assert!(json[2].get("validation").is_none());
    let sarif: serde_json::Value = serde_json::from_str(&render(Format::Sarif)).unwrap();
    let results = &sarif["runs"][0]["results"];
    assert_eq!(results[0]["properties"]["validation"], "live");
    assert_eq!(
        results[1]["properties"]["validationDetail"],
        "host db.internal is not in --validate-host"
    );
    assert!(results[2]["properties"].get("validation").is_none());
    let human = render(Format::Human);
    assert!(
        human.contains("    validation: live (github: the provider accepts it)\n"),
        "{human}"
    );
    assert_eq!(human.matches("validation:").count(), 2, "{human}");
}
