//! Request bodies: size limits chosen by path, a cap on large bodies in
//! flight, a read timeout, and a bound on JSON element count and depth that
//! is checked before any `serde_json::Value` is built.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Body limit of unauthenticated endpoints (`sys/init`, `sys/unseal`, login
/// paths, and any request without a token).
pub const UNAUTHENTICATED_BODY_BYTES: usize = 64 * 1024;
/// Body limit of the other `sys/` endpoints.
pub const SYS_BODY_BYTES: usize = 1024 * 1024;
/// A body larger than this needs one of the large-body slots.
pub const LARGE_BODY_BYTES: usize = 1024 * 1024;
/// Most JSON values (array elements, object members, containers) in a body.
pub const MAX_JSON_ELEMENTS: usize = 100_000;
/// Deepest JSON nesting accepted.
pub const MAX_JSON_DEPTH: usize = 64;
/// How long a request waits for a large-body slot before a 503.
pub const LARGE_BODY_WAIT: Duration = Duration::from_secs(5);

/// `sys/` endpoints that answer without a token.
const UNAUTHENTICATED_SYS: &[&str] = &[
    "sys/init",
    "sys/unseal",
    "sys/seal-status",
    "sys/health",
    "sys/leader",
];

/// The body limit for a request to `path` (as checked by `parse_path`;
/// `None` when the path is invalid), given whether it carries a token, and
/// the configured maximum.
pub fn limit_for(path: Option<&str>, has_token: bool, configured: usize) -> usize {
    let small = UNAUTHENTICATED_BODY_BYTES.min(configured);
    let Some(path) = path else { return small };
    let path = path.trim_end_matches('/');
    if !has_token || UNAUTHENTICATED_SYS.contains(&path) || is_login(path) {
        return small;
    }
    if path == "sys" || path.starts_with("sys/") {
        return SYS_BODY_BYTES.min(configured);
    }
    configured
}

/// `auth/<mount...>/login` or `auth/<mount...>/login/<name>`.
fn is_login(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("auth/") else {
        return false;
    };
    rest.split('/').skip(1).any(|seg| seg.starts_with("login"))
}

/// Why a body was refused; each maps to a Vault-style error.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (413).
    TooLarge,
    /// The stream failed (400).
    Read,
    /// No large-body slot came free in time (503).
    Busy,
    /// Not all of it arrived within the read timeout (408).
    Timeout,
}

/// A body read into memory, with the large-body slot it holds (if any)
/// until it is dropped. The bytes (which may hold secret values) are
/// zeroized when it is dropped.
pub struct ReadBody {
    /// The bytes.
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
    /// Held while the request is handled.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// Reads `body` up to `limit` bytes within `timeout`. A body over
/// [`LARGE_BODY_BYTES`] first takes a slot of `large`. A body announced
/// larger than four times the limit is refused at once; a smaller excess is
/// drained (up to four times the limit) so that the client reads the 413
/// instead of a connection reset.
pub async fn read(
    body: Body,
    content_length: Option<u64>,
    limit: usize,
    timeout: Duration,
    large: &Arc<Semaphore>,
) -> Result<ReadBody, BodyError> {
    if let Some(n) = content_length {
        if n > (limit as u64).saturating_mul(4) {
            return Err(BodyError::TooLarge);
        }
    }
    match tokio::time::timeout(timeout, read_inner(body, content_length, limit, large)).await {
        Ok(r) => r,
        Err(_) => Err(BodyError::Timeout),
    }
}

async fn read_inner(
    body: Body,
    content_length: Option<u64>,
    limit: usize,
    large: &Arc<Semaphore>,
) -> Result<ReadBody, BodyError> {
    use futures_util::StreamExt;
    let mut slot: Option<OwnedSemaphorePermit> = None;
    let announced = content_length
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= limit);
    if announced.is_some_and(|n| n > LARGE_BODY_BYTES) {
        slot = Some(take_slot(large).await?);
    }
    let mut stream = body.into_data_stream();
    // Zeroizing, and sized up front when the length is announced, so that
    // no reallocation leaves a stray copy of a secret behind.
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(
        announced.unwrap_or(0).min(LARGE_BODY_BYTES),
    ));
    let mut seen: usize = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            buf = zeroize::Zeroizing::new(Vec::new());
            if seen > limit.saturating_mul(4) {
                break;
            }
            continue;
        }
        if seen > LARGE_BODY_BYTES && slot.is_none() {
            slot = Some(take_slot(large).await?);
        }
        if let Some(n) = announced {
            let have = buf.len();
            buf.reserve_exact(n.saturating_sub(have));
        }
        buf.extend_from_slice(&chunk);
    }
    if seen > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(ReadBody { bytes: buf, slot })
}

async fn take_slot(large: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, BodyError> {
    match tokio::time::timeout(LARGE_BODY_WAIT, large.clone().acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(BodyError::Busy),
    }
}

/// Checks the shape of a JSON text without building it: at most
/// [`MAX_JSON_ELEMENTS`] values and [`MAX_JSON_DEPTH`] levels of nesting.
/// Counts are upper bounds (every `,` and every container opens one value);
/// strings are skipped. Invalid JSON is left for the parser to refuse.
pub fn check_json_shape(bytes: &[u8]) -> Result<(), String> {
    let mut depth: usize = 0;
    let mut elements: usize = 1;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip to the closing quote, honouring backslash escapes.
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                elements += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(format!(
                        "failed to parse JSON input: nesting deeper than {MAX_JSON_DEPTH} levels"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' => elements += 1,
            _ => {}
        }
        if elements > MAX_JSON_ELEMENTS {
            return Err(format!(
                "failed to parse JSON input: more than {MAX_JSON_ELEMENTS} elements"
            ));
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_by_path() {
        let max = 32 << 20;
        assert_eq!(limit_for(Some("sys/unseal"), false, max), 64 * 1024);
        assert_eq!(limit_for(Some("sys/unseal"), true, max), 64 * 1024);
        assert_eq!(limit_for(Some("sys/init"), true, max), 64 * 1024);
        assert_eq!(limit_for(Some("auth/approle/login"), true, max), 64 * 1024);
        assert_eq!(
            limit_for(Some("auth/userpass/login/bob"), true, max),
            64 * 1024
        );
        assert_eq!(limit_for(Some("sys/policy/x"), true, max), 1 << 20);
        assert_eq!(limit_for(Some("secret/data/x"), true, max), max);
        assert_eq!(limit_for(Some("secret/data/x"), false, max), 64 * 1024);
        assert_eq!(limit_for(None, true, max), 64 * 1024);
        assert_eq!(limit_for(Some("secret/data/x"), true, 1000), 1000);
    }

    #[test]
    fn json_shape() {
        assert!(check_json_shape(br#"{"a":[1,2,{"b":"x,[,{"}]}"#).is_ok());
        assert!(check_json_shape(br#"{"a":"\"[[[[,,,,"}"#).is_ok());
        let deep = "[".repeat(65);
        assert!(check_json_shape(deep.as_bytes()).is_err());
        let deep_ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(check_json_shape(deep_ok.as_bytes()).is_ok());
        let wide = format!("[{}1]", "1,".repeat(100_000));
        assert!(check_json_shape(wide.as_bytes()).is_err());
        let ok = format!("[{}1]", "1,".repeat(90_000));
        assert!(check_json_shape(ok.as_bytes()).is_ok());
    }
}
