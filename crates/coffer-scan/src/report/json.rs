//! JSON output: an array of findings.

use super::{finding_json, ReportContext};
use crate::finding::Finding;
use std::io::{self, Write};

pub(super) fn write(
    findings: &[Finding],
    ctx: &ReportContext<'_>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let arr: Vec<_> = findings
        .iter()
        .map(|f| finding_json(f, ctx.reveal))
        .collect();
    serde_json::to_writer_pretty(&mut *out, &arr)?;
    writeln!(out)
}
