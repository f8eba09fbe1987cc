//! Human-readable output.

use super::ReportContext;
use crate::finding::Finding;
use std::io::{self, Write};

pub(super) fn write(
    findings: &[Finding],
    ctx: &ReportContext<'_>,
    out: &mut dyn Write,
) -> io::Result<()> {
    for f in findings {
        writeln!(
            out,
            "{}:{}:{}  {}  {}",
            f.path, f.line, f.column, f.rule_id, f.description
        )?;
        if !f.secret.is_empty() {
            writeln!(out, "    secret: {}", f.shown(ctx.reveal))?;
        }
        if let Some(c) = &f.commit {
            let short = c.commit.get(..12).unwrap_or(&c.commit);
            writeln!(
                out,
                "    commit: {short}  {} <{}>  {}",
                c.author, c.email, c.date
            )?;
        }
        if let Some(c) = f.checksum {
            writeln!(
                out,
                "    checksum: {} ({} confidence)",
                c.as_str(),
                f.confidence()
            )?;
        }
        if let Some(v) = &f.validation {
            writeln!(
                out,
                "    validation: {} ({}: {})",
                v.status.as_str(),
                v.validator,
                v.detail
            )?;
        }
        writeln!(out, "    fingerprint: {}", f.fingerprint())?;
    }
    match findings.len() {
        0 => writeln!(out, "No secrets found."),
        1 => writeln!(out, "1 secret found."),
        n => writeln!(out, "{n} secrets found."),
    }
}
