//! Secret data from the command line, as `vault kv put` and `vault write`
//! read it:
//! `key=value`, `key=@file` (the file's contents), `key=-` (stdin),
//! `@file.json` (a JSON object) and a lone `-` (a JSON object on stdin).
//! A key given twice becomes a list. Error messages never echo values.

use std::io::Read;

use serde_json::{Map, Value};

/// Where file and stdin contents come from (real I/O or a test double).
pub trait Source {
    /// The contents of a file.
    fn file(&mut self, path: &str) -> std::io::Result<String>;
    /// All of standard input.
    fn stdin(&mut self) -> std::io::Result<String>;
}

/// The process's real files and standard input.
pub struct Real;

impl Source for Real {
    fn file(&mut self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn stdin(&mut self) -> std::io::Result<String> {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    }
}

/// Parses the data arguments into a JSON object.
pub fn parse(args: &[String], src: &mut dyn Source) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut stdin_used = false;
    let mut take_stdin = |src: &mut dyn Source| -> Result<String, String> {
        if std::mem::replace(&mut stdin_used, true) {
            return Err("standard input can be used only once".into());
        }
        src.stdin()
            .map_err(|e| format!("cannot read standard input: {e}"))
    };
    for (i, arg) in args.iter().enumerate() {
        let n = i + 1;
        if arg == "-" {
            let text = take_stdin(src)?;
            merge_object(&mut out, &text, "standard input")?;
        } else if let Some(file) = arg.strip_prefix('@') {
            let text = src
                .file(file)
                .map_err(|e| format!("cannot read {file}: {e}"))?;
            merge_object(&mut out, &text, file)?;
        } else if let Some((key, value)) = arg.split_once('=') {
            if key.is_empty() {
                return Err(format!("data argument {n} has an empty key"));
            }
            let value = if value == "-" {
                take_stdin(src)?
            } else if let Some(file) = value.strip_prefix('@') {
                src.file(file)
                    .map_err(|e| format!("cannot read {file} for key {key:?}: {e}"))?
            } else {
                value.to_owned()
            };
            insert(&mut out, key.to_owned(), Value::String(value));
        } else {
            return Err(format!("data argument {n} is not of the form key=value"));
        }
    }
    Ok(out)
}

/// Merges a JSON object (from a file or stdin) into `out`.
fn merge_object(out: &mut Map<String, Value>, text: &str, from: &str) -> Result<(), String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            for (k, v) in map {
                insert(out, k, v);
            }
            Ok(())
        }
        Ok(_) => Err(format!("{from} must hold a JSON object")),
        // serde_json's message gives only a position, never the content.
        Err(e) => Err(format!("{from} is not valid JSON: {e}")),
    }
}

/// Inserts a key; a repeated key turns into a list of its values.
fn insert(out: &mut Map<String, Value>, key: String, value: Value) {
    match out.get_mut(&key) {
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            out.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fake {
        stdin: String,
    }

    impl Source for Fake {
        fn file(&mut self, path: &str) -> std::io::Result<String> {
            match path {
                "key.pem" => Ok("PEM\n".into()),
                "obj.json" => Ok(r#"{"a": "1", "n": 2}"#.into()),
                _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "nope")),
            }
        }
        fn stdin(&mut self) -> std::io::Result<String> {
            Ok(std::mem::take(&mut self.stdin))
        }
    }

    fn run(args: &[&str], stdin: &str) -> Result<Value, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(
            &args,
            &mut Fake {
                stdin: stdin.into(),
            },
        )
        .map(Value::Object)
    }

    #[test]
    fn pairs_files_and_stdin() {
        assert_eq!(
            run(
                &["user=u", "pass=a=b", "cert=@key.pem", "note=-"],
                "from stdin"
            )
            .unwrap(),
            json!({"user": "u", "pass": "a=b", "cert": "PEM\n", "note": "from stdin"})
        );
        assert_eq!(run(&["@obj.json"], "").unwrap(), json!({"a": "1", "n": 2}));
        assert_eq!(run(&["-"], r#"{"x": true}"#).unwrap(), json!({"x": true}));
        assert_eq!(
            run(&["k=1", "k=2", "k=3"], "").unwrap(),
            json!({"k": ["1", "2", "3"]})
        );
    }

    #[test]
    fn errors_never_echo_values() {
        let err = run(&["hunter2-lookalike"], "").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = run(&["-"], "{\"k\": \"s3cr3t-lookalike\"").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(run(&["=v"], "").is_err());
        assert!(run(&["a=-", "b=-"], "x").is_err());
        assert!(run(&["a=@missing"], "").is_err());
        assert!(run(&["-"], "[1]").is_err());
    }
}
