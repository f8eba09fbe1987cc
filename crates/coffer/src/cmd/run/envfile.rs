//! Env files (`--env-file`): `NAME=value` lines, as `docker --env-file`
//! and dotenv write them: blank lines and `#` comments are skipped, an
//! optional `export ` prefix is dropped, a value in single or double
//! quotes is taken as written between them (double quotes also read
//! `\n`, `\"` and `\\`).

/// One `NAME=value` entry, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The variable's name.
    pub name: String,
    /// Its value as written (a `coffer://` reference or a literal).
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// Whether `name` is a portable environment variable name.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses an env file's text; errors name the line, never its value.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed
            .strip_prefix("export ")
            .unwrap_or(trimmed)
            .trim_start();
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(format!("line {line}: expected NAME=value"));
        };
        let name = name.trim();
        if !valid_name(name) {
            return Err(format!(
                "line {line}: {name:?} is not a valid variable name"
            ));
        }
        let value =
            unquote(value.trim()).ok_or_else(|| format!("line {line}: unterminated quote"))?;
        out.push(Entry {
            name: name.to_string(),
            value,
            line,
        });
    }
    Ok(out)
}

/// The value without its quotes; `None` for an unterminated quote.
fn unquote(v: &str) -> Option<String> {
    if let Some(inner) = v.strip_prefix('\'') {
        return inner.strip_suffix('\'').map(str::to_string);
    }
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        return Some(out);
    }
    // An unquoted value ends at an inline comment (" #").
    Some(match v.find(" #") {
        Some(i) => v[..i].trim_end().to_string(),
        None => v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_like_dotenv() {
        let text = "# app\n\nDATABASE_PASSWORD=coffer://secret/app/db#password\nexport MODE=prod # live\nQ=\"a\\nb\"\nS='x #y'\n";
        let e = parse(text).unwrap();
        let pairs: Vec<(&str, &str)> = e
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("DATABASE_PASSWORD", "coffer://secret/app/db#password"),
                ("MODE", "prod"),
                ("Q", "a\nb"),
                ("S", "x #y"),
            ]
        );
        assert_eq!(e[0].line, 3);
    }

    #[test]
    fn bad_lines_name_the_line_not_the_value() {
        let e = parse("OK=1\nnot a pair\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("1BAD=hunter2\n").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(parse("A=\"open\n").unwrap_err().contains("line 1"));
    }
}
