//! The HTTP layer's request parsing, as `wire::handle` does it: URI (path
//! and query), token header and body into a core `Request`.
//!
//! Input: one byte choosing the method and token header, then the URI, a
//! NUL, the token header's value, a NUL, and the body.
//!
//! Checks: no panic; an accepted path has no empty, `.` or `..` segment and
//! no control character; a request's `Debug` never shows its token.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue, Uri};
use coffer_core::{Operation, Request};
use coffer_http::wire::{parse_body, parse_path, query_map, token_of};
use libfuzzer_sys::fuzz_target;
use serde_json::Map;

fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (uri, rest) = split_nul(rest);
    let (token, body) = split_nul(rest);
    let Ok(uri) = std::str::from_utf8(uri) else {
        return;
    };
    let Ok(uri) = uri.parse::<Uri>() else {
        return;
    };
    let Ok(path) = parse_path(uri.path()) else {
        return;
    };
    let trimmed = path.strip_suffix('/').unwrap_or(&path);
    assert!(!trimmed.is_empty(), "empty path accepted");
    for seg in trimmed.split('/') {
        assert!(!seg.is_empty(), "empty segment accepted: {path:?}");
        assert!(seg != "." && seg != "..", "dot segment accepted: {path:?}");
        assert!(
            !seg.chars().any(char::is_control),
            "control character accepted"
        );
    }

    let operation = match selector % 6 {
        0 => Operation::Read,
        1 => Operation::List,
        2 => Operation::Update,
        3 => Operation::Patch,
        4 => Operation::Delete,
        _ => Operation::Create,
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(token) {
        if selector & 0x80 == 0 {
            headers.insert("x-vault-token", value);
        } else {
            headers.insert(header::AUTHORIZATION, value);
        }
    }
    let mut data = if operation.is_write() {
        match parse_body(body) {
            Ok(m) => m,
            Err(_) => return,
        }
    } else {
        Map::new()
    };
    if matches!(
        operation,
        Operation::Read | Operation::List | Operation::Delete
    ) {
        data.extend(query_map(&uri));
    }
    let req = Request {
        id: "fuzz".into(),
        operation,
        path,
        data,
        token: token_of(&headers),
        client_addr: None,
        client_port: None,
        wrap_format: coffer_core::WrapFormat::from_header(&String::from_utf8_lossy(body)),
        audited_headers: Vec::new(),
        // A bad X-Vault-Wrap-TTL is refused before the request is built;
        // a valid one must not change what Debug shows either.
        wrap_ttl: coffer_core::wrapping::parse_wrap_ttl(&String::from_utf8_lossy(body)).ok(),
        body: None,
        sideband: Default::default(),
    };
    if req.token.is_some() {
        // The token may only show as present: the output must equal the
        // token-less request's, but for that one field.
        let mut without = req.clone();
        without.token = None;
        let plain = format!("{without:?}");
        let at = plain.rfind("token: None").expect("token field");
        let expected = format!(
            "{}token: Some(<redacted>){}",
            &plain[..at],
            &plain[at + 11..]
        );
        assert_eq!(format!("{req:?}"), expected, "token in Debug output");
    }
});
