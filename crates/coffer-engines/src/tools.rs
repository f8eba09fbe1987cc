//! `sys/tools/random[/<source>][/<bytes>]` and `sys/tools/hash[/<algorithm>]`:
//! random bytes from the platform's generator and digests of caller data,
//! as Vault's tools. Both are writes (`update`); the path's values win over
//! the body's, with Vault's warning.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::json;
use zeroize::Zeroizing;

use crate::util::Params;
use crate::{Error, Operation, Request, Response, Result};

/// Most bytes one `sys/tools/random` call hands out (Vault's limit).
const MAX_RANDOM_BYTES: i64 = 128 * 1024;
/// Bytes handed out when none are asked for.
const DEFAULT_RANDOM_BYTES: i64 = 32;
/// The entropy sources Vault names; Coffer has no seal entropy, so `seal`
/// falls back to the platform's with a warning, as Vault does.
const SOURCES: [&str; 3] = ["platform", "seal", "all"];

/// Answers `rest` (the path below `sys/`) if it is one of the tools.
pub fn handle(req: &Request, rest: &str) -> Option<Result<Response>> {
    let (tail, random) = if let Some(t) = tool_tail(rest, "tools/random") {
        (t, true)
    } else if let Some(t) = tool_tail(rest, "tools/hash") {
        (t, false)
    } else {
        return None;
    };
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Some(Err(Error::UnsupportedOperation));
    }
    Some(if random {
        random_bytes(req, tail)
    } else {
        hash(req, tail)
    })
}

/// The path segments after `tool` (`Some("")` for the tool itself).
fn tool_tail<'a>(rest: &'a str, tool: &str) -> Option<&'a str> {
    match rest.strip_prefix(tool)? {
        "" => Some(""),
        t => t.strip_prefix('/'),
    }
}

/// Vault's warning when a path value replaced a body value.
fn replaced_warning(names: &[&str]) -> String {
    format!(
        "Endpoint replaced the value of these parameters with the values captured from the endpoint's path: [{}]",
        names.join(" ")
    )
}

fn format_of(p: &Params<'_>, default: &str) -> Result<String> {
    let format = p.str("format")?.unwrap_or(default).to_string();
    match format.as_str() {
        "hex" | "base64" => Ok(format),
        other => Err(Error::bad(format!(
            "unsupported encoding format {other:?}; must be \"hex\" or \"base64\""
        ))),
    }
}

fn encode(bytes: &[u8], format: &str) -> String {
    if format == "hex" {
        hex::encode(bytes)
    } else {
        STANDARD.encode(bytes)
    }
}

/// `random[/<source>][/<bytes>]` below its tool path (`tail`), also
/// answered by the transit engine's `random`.
pub fn random_bytes(req: &Request, tail: &str) -> Result<Response> {
    let p = Params(&req.data);
    let segments: Vec<&str> = if tail.is_empty() {
        Vec::new()
    } else {
        tail.split('/').collect()
    };
    let (path_source, path_bytes) = match segments.as_slice() {
        [] => (None, None),
        [one] if SOURCES.contains(one) => (Some(*one), None),
        [one] => (None, Some(*one)),
        [source, bytes] => (Some(*source), Some(*bytes)),
        _ => (None, Some(tail)),
    };
    let mut warnings = Vec::new();
    let bytes = match path_bytes {
        Some(b) => {
            if p.has("bytes") {
                warnings.push(replaced_warning(&["bytes"]));
            }
            b.parse::<i64>().map_err(|_| {
                Error::bad(format!(
                    "error parsing url-set byte count: {b:?} is not an integer"
                ))
            })?
        }
        None => p.i64("bytes")?.unwrap_or(DEFAULT_RANDOM_BYTES),
    };
    let source = match path_source {
        Some(s) => s,
        None => p.str("source")?.unwrap_or("platform"),
    };
    if !SOURCES.contains(&source) {
        return Err(Error::bad(format!(
            "unsupported entropy source {source:?}; must be \"platform\" or \"seal\", or \"all\""
        )));
    }
    let format = format_of(&p, "base64")?;
    if bytes < 1 {
        return Err(Error::bad("'bytes' cannot be less than 1"));
    }
    if bytes > MAX_RANDOM_BYTES {
        return Err(Error::bad(format!(
            "'bytes' should be less than {MAX_RANDOM_BYTES}"
        )));
    }
    if source == "seal" {
        warnings
            .push("no seal/entropy augmentation available, using platform entropy source".into());
    }
    // `bytes` is within 1..=MAX_RANDOM_BYTES here.
    let buf = Zeroizing::new(coffer_crypto::random::bytes(bytes as usize));
    let mut resp = Response::data(json!({"random_bytes": encode(&buf, &format)}));
    resp.warnings = warnings;
    Ok(resp)
}

/// `hash[/<algorithm>]` below its tool path (`tail`), also answered by
/// the transit engine's `hash`.
pub fn hash(req: &Request, tail: &str) -> Result<Response> {
    let p = Params(&req.data);
    let mut warnings = Vec::new();
    let algorithm = if tail.is_empty() {
        p.str("algorithm")?.unwrap_or("sha2-256")
    } else {
        if p.has("algorithm") {
            warnings.push(replaced_warning(&["algorithm"]));
        }
        tail
    };
    let format = format_of(&p, "hex")?;
    let input = p.str("input")?.unwrap_or("");
    let data = Zeroizing::new(
        STANDARD
            .decode(input)
            .map_err(|_| Error::bad("unable to decode input as base64"))?,
    );
    let sum = coffer_crypto::hash::digest_named(algorithm, &data)
        .ok_or_else(|| Error::bad(format!("unsupported algorithm {algorithm}")))?;
    let mut resp = Response::data(json!({"sum": encode(&sum, &format)}));
    resp.warnings = warnings;
    Ok(resp)
}
