//! SARIF 2.1.0 output, as GitHub code scanning reads it.

use super::ReportContext;
use crate::finding::Finding;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, Write};

pub(super) fn write(
    findings: &[Finding],
    ctx: &ReportContext<'_>,
    out: &mut dyn Write,
) -> io::Result<()> {
    // Only the rules that produced results are listed (the full set is
    // hundreds of entries); ruleIndex points into this list.
    let used: Vec<&crate::engine::Rule> = ctx
        .rules
        .iter()
        .filter(|r| findings.iter().any(|f| f.rule_id == r.id))
        .collect();
    let index: HashMap<&str, usize> = used
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let rules: Vec<Value> = used
        .iter()
        .map(|r| {
            let mut tags = vec![Value::from("security"), Value::from("secret")];
            tags.extend(r.tags.iter().map(|t| Value::from(t.as_str())));
            json!({
                "id": r.id,
                "name": pascal_case(&r.id),
                "shortDescription": {"text": r.description},
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": tags, "secretType": r.secret_type},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut res = json!({
                "ruleId": f.rule_id,
                "level": f.level(),
                "message": {"text": format!("{} ({}): {}", f.description, f.rule_id, f.shown(ctx.reveal))},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path},
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": f.end_column.max(f.column),
                        }
                    }
                }],
                "partialFingerprints": {"secretFingerprint/v1": f.fingerprint()},
            });
            if let Some(obj) = res.as_object_mut() {
                if let Some(&i) = index.get(f.rule_id.as_str()) {
                    obj.insert("ruleIndex".into(), i.into());
                }
                let mut props = serde_json::Map::new();
                if let Some(c) = &f.commit {
                    props.insert("commit".into(), c.commit.clone().into());
                    props.insert("author".into(), c.author.clone().into());
                    props.insert("email".into(), c.email.clone().into());
                    props.insert("date".into(), c.date.clone().into());
                }
                if let Some(d) = f.decoded {
                    props.insert("decoded".into(), d.into());
                }
                if let Some(c) = f.path_class {
                    props.insert("pathClass".into(), c.into());
                }
                if let Some(c) = f.checksum {
                    props.insert("checksum".into(), c.as_str().into());
                }
                if let Some(v) = &f.validation {
                    super::insert_validation(&mut props, v);
                }
                if !props.is_empty() {
                    obj.insert("properties".into(), props.into());
                }
                if !f.also.is_empty() {
                    let related: Vec<Value> = f
                        .also
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            json!({
                                "id": i + 1,
                                "physicalLocation": {
                                    "artifactLocation": {"uri": l.path},
                                    "region": {"startLine": l.line},
                                },
                                "message": {"text": format!("also in {}", l.commit.as_deref().unwrap_or("the tree"))},
                            })
                        })
                        .collect();
                    obj.insert("relatedLocations".into(), related.into());
                }
            }
            res
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "coffer-scan",
                "informationUri": "https://github.com/coffer/coffer",
                "semanticVersion": ctx.version,
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// `aws-access-key-id` -> `AwsAccessKeyId`: SARIF wants a rule name that
/// differs from its id.
fn pascal_case(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}
