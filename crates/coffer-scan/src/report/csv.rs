//! CSV output with a header line.

use super::ReportContext;
use crate::finding::Finding;
use std::io::{self, Write};

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(super) fn write(
    findings: &[Finding],
    ctx: &ReportContext<'_>,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(
        out,
        "rule,description,path,line,column,secret,fingerprint,commit,author,date"
    )?;
    for f in findings {
        let (commit, author, date) = match &f.commit {
            Some(c) => (c.commit.as_str(), c.author.as_str(), c.date.as_str()),
            None => ("", "", ""),
        };
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            field(&f.rule_id),
            field(&f.description),
            field(&f.path),
            f.line,
            f.column,
            field(&f.shown(ctx.reveal)),
            f.fingerprint(),
            field(commit),
            field(author),
            field(date)
        )?;
    }
    Ok(())
}
