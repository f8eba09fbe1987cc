//! Policy parsing (Vault HCL and JSON), canonical formatting and ACL
//! matching.
//!
//! Input: policy text, optionally followed by a line `#paths` and request
//! paths (one a line) to evaluate.
//!
//! Checks: no panic; a parsed policy, formatted and parsed again, grants
//! the same capabilities on every path.
#![no_main]

use coffer_core::policy::{format_policy, Acl, Operation, Policy};
use libfuzzer_sys::fuzz_target;

const DEFAULT_PATHS: &str =
    "secret/data/app\nsecret/metadata/app/\nsys/policy/x\nauth/token/create\n";

const OPS: [Operation; 6] = [
    Operation::Read,
    Operation::Create,
    Operation::Update,
    Operation::Patch,
    Operation::Delete,
    Operation::List,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (policy, paths) = text
        .split_once("\n#paths\n")
        .unwrap_or((text, DEFAULT_PATHS));
    let Ok(parsed) = Policy::parse("fuzz", policy) else {
        return;
    };
    let formatted = format_policy(&parsed);
    let reparsed = match Policy::parse("fuzz", &formatted) {
        Ok(p) => p,
        Err(e) => panic!("formatted policy does not parse: {e}\n{formatted}"),
    };
    let acl = Acl::new(std::slice::from_ref(&parsed));
    let acl2 = Acl::new(&[reparsed]);
    for path in paths.lines().take(32) {
        let caps = acl.capabilities(path);
        assert!(
            caps == acl2.capabilities(path),
            "formatting changed the capabilities on {path:?}\n{formatted}"
        );
        for op in OPS {
            let _ = acl.authorize(op, path, None);
            let _ = acl.authorize_without_parameters(op, path);
        }
    }
});
