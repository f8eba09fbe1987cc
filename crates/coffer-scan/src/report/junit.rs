//! JUnit XML output: one failing test case per finding.

use super::ReportContext;
use crate::finding::Finding;
use std::io::{self, Write};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

pub(super) fn write(
    findings: &[Finding],
    ctx: &ReportContext<'_>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let n = findings.len().max(1);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="coffer-scan" tests="{n}" failures="{}">"#,
        findings.len()
    )?;
    writeln!(
        out,
        r#"  <testsuite name="secrets" tests="{n}" failures="{}">"#,
        findings.len()
    )?;
    if findings.is_empty() {
        writeln!(
            out,
            r#"    <testcase classname="coffer-scan" name="no secrets found"/>"#
        )?;
    }
    for f in findings {
        writeln!(
            out,
            r#"    <testcase classname="{}" name="{}:{} {}">"#,
            esc(&f.path),
            f.line,
            f.column,
            esc(&f.rule_id)
        )?;
        writeln!(
            out,
            r#"      <failure type="{}" message="{}">{}:{}:{} {} fingerprint {}</failure>"#,
            esc(&f.rule_id),
            esc(&f.description),
            esc(&f.path),
            f.line,
            f.column,
            esc(&f.shown(ctx.reveal)),
            f.fingerprint()
        )?;
        writeln!(out, "    </testcase>")?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}
