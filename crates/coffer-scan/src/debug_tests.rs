//! Findings, edits and allowlist candidates keep the secret out of `{:?}`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use zeroize::Zeroizing;

use crate::allow::Candidate;
use crate::finding::Finding;
use crate::remediate::Edit;

fn planted() -> String {
    format!(
        "planted-{:016x}",
        RandomState::new().build_hasher().finish()
    )
}

#[test]
fn finding_hides_the_secret() {
    let s = planted();
    let finding = Finding {
        rule_id: "generic-api-key".into(),
        description: "Generic API key".into(),
        path: "src/config.rs".into(),
        line: 1,
        column: 1,
        end_line: 1,
        end_column: 1 + s.len(),
        start: 0,
        end: s.len(),
        secret: Zeroizing::new(s.clone()),
        entropy: 4.0,
        secret_type: "api_key".into(),
        vendor: None,
        commit: None,
        decoded: None,
        also: Vec::new(),
        checksum: None,
        validation: None,
        path_class: None,
    };
    let out = format!("{finding:?}");
    assert!(
        !out.contains(&s) && out.contains("<redacted>") && out.contains("src/config.rs"),
        "{out}"
    );
}

#[test]
fn edit_hides_the_literal() {
    let s = planted();
    let edit = Edit {
        start: 0,
        end: s.len(),
        expected: Zeroizing::new(s.clone()),
        replacement: "coffer://secret/app#k".into(),
    };
    let out = format!("{edit:?}");
    assert!(!out.contains(&s) && out.contains("<redacted>"), "{out}");
}

#[test]
fn candidate_hides_secret_match_and_line() {
    let s = planted();
    let line = format!("api_key = \"{s}\"");
    let candidate = Candidate {
        path: "a.env",
        commit: None,
        secret: s.as_bytes(),
        matched: line.as_bytes(),
        line: line.as_bytes(),
    };
    let out = format!("{candidate:?}");
    assert!(!out.contains(&s) && out.contains("redacted"), "{out}");
    // Byte slices would print as numbers: make sure those are absent too.
    assert!(
        !out.contains(
            &format!("{:?}", &s.as_bytes()[..6])
                .trim_end_matches(']')
                .to_string()
        ),
        "{out}"
    );
}
