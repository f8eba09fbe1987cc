//! One decoding layer: secrets hidden one encoding deep.
//!
//! The engine's keyword pass also reports a few trigger strings; each
//! trigger names a candidate span of the original content, which is decoded
//! once here and scanned again (without decoding: no nesting). A finding in
//! decoded text is reported at the span of the original file it came from:
//! exactly (URL and JSON escapes keep a byte map) or the whole encoded token
//! (base64). Each file gets a budget of decoded bytes and of layers.
//!
//! - base64: the values of a Kubernetes `kind: Secret`'s `data:` block,
//!   base64 PEM (`LS0tLS1CRUdJTi…`, "-----BEGIN" encoded), and the
//!   `user:password` of an `Authorization: Basic` header (found by the
//!   `authorization-basic` rule, so that a provider token used as the
//!   password is reported under its own rule);
//! - URL encoding: tokens holding an encoded `://` (`%3A%2F%2F`);
//! - JSON string escapes: a string literal holding `\n`, `\"`, `\/` or
//!   `\uXXXX` around a keyword hit.

/// Bytes of decoded text per file, at most.
pub const BUDGET: usize = 1 << 20;
/// Decoded candidates per file, at most.
pub const MAX_LAYERS: usize = 128;
/// The longest encoded token considered.
const MAX_TOKEN: usize = 64 << 10;

/// Strings that open a candidate, lowercase (the automaton is ASCII
/// case-insensitive). Index = [`Trigger`] discriminant.
pub const TRIGGERS: &[&str] = &["ls0tls1crudjti", "%3a%2f%2f", "kind: secret"];

/// What a trigger string announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A Kubernetes Secret manifest.
    K8sSecret,
    /// Base64 of `-----BEGIN`.
    Base64Pem,
    /// An URL-encoded `://`.
    UrlEncoded,
    /// The base64 credentials of an `Authorization: Basic` header (not an
    /// automaton trigger: the `authorization-basic` rule's matches).
    BasicAuth,
}

impl Trigger {
    /// The trigger of [`TRIGGERS`]`[i]`.
    pub fn from_index(i: usize) -> Option<Trigger> {
        match i {
            0 => Some(Trigger::Base64Pem),
            1 => Some(Trigger::UrlEncoded),
            2 => Some(Trigger::K8sSecret),
            _ => None,
        }
    }
}

/// A decoded candidate.
#[derive(Debug)]
pub struct Layer {
    /// `base64`, `url` or `json`.
    pub kind: &'static str,
    /// The encoded span in the original content.
    pub start: usize,
    /// End of the encoded span.
    pub end: usize,
    /// Text to scan: `prefix` bytes of original context (the line up to the
    /// token, so that assignment rules see the key), then the decoded bytes,
    /// then the rest of the line.
    pub text: Vec<u8>,
    /// Where the decoded bytes start in `text`.
    pub body: usize,
    /// Length of the decoded bytes.
    pub body_len: usize,
    /// For each decoded byte (and one past the end) its offset in the
    /// original content; `None` when a finding maps to the whole token.
    pub map: Option<Vec<usize>>,
}

impl Layer {
    /// The original span of decoded bytes [s, e) of `text`, when they lie in
    /// the decoded part.
    pub fn original_span(&self, s: usize, e: usize) -> Option<(usize, usize)> {
        if s < self.body || e > self.body + self.body_len || e <= s {
            return None;
        }
        match &self.map {
            Some(m) => Some((m[s - self.body], m[e - self.body])),
            None => Some((self.start, self.end)),
        }
    }
}

/// Collects the layers of one file from its triggers (kind, offset) and the
/// offsets of keyword hits (for JSON strings), within the budget.
pub fn layers(data: &[u8], triggers: &[(Trigger, usize)], hits: &[usize]) -> Vec<Layer> {
    let mut out: Vec<Layer> = Vec::new();
    let mut budget = BUDGET;
    let mut push = |l: Layer, out: &mut Vec<Layer>| {
        if out.len() >= MAX_LAYERS || l.text.len() > budget {
            return;
        }
        if out.iter().any(|o| o.start == l.start && o.end == l.end) {
            return;
        }
        budget -= l.text.len();
        out.push(l);
    };
    let mut k8s_done = false;
    for &(t, at) in triggers {
        match t {
            Trigger::K8sSecret if k8s_done => {}
            Trigger::K8sSecret => {
                k8s_done = true;
                for l in k8s_data(data) {
                    push(l, &mut out);
                }
            }
            Trigger::Base64Pem => {
                let end = run_end(data, at, is_b64);
                if let Some(text) = b64_decode(&data[at..end]) {
                    if memchr::memmem::find(&text, b"PRIVATE KEY").is_some() {
                        let n = text.len();
                        push(
                            Layer {
                                kind: "base64",
                                start: at,
                                end,
                                text,
                                body: 0,
                                body_len: n,
                                map: None,
                            },
                            &mut out,
                        );
                    }
                }
            }
            Trigger::UrlEncoded => {
                let (s, e) = token_around(data, at);
                if let Some(l) = url_layer(data, s, e) {
                    push(l, &mut out);
                }
            }
            Trigger::BasicAuth => {
                let end = run_end(data, at, is_b64);
                if let Some(text) = basic_credentials(&data[at..end]) {
                    let n = text.len();
                    push(
                        Layer {
                            kind: "base64",
                            start: at,
                            end,
                            text,
                            body: 0,
                            body_len: n,
                            map: None,
                        },
                        &mut out,
                    );
                }
            }
        }
    }
    for &h in hits {
        if out.len() >= MAX_LAYERS {
            break;
        }
        if out
            .iter()
            .any(|o| o.kind == "json" && o.start <= h && h < o.end)
        {
            continue;
        }
        if let Some(l) = json_layer(data, h) {
            push(l, &mut out);
        }
    }
    out
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn run_end(data: &[u8], at: usize, pred: fn(u8) -> bool) -> usize {
    let hi = (at + MAX_TOKEN).min(data.len());
    data[at..hi]
        .iter()
        .position(|&b| !pred(b))
        .map_or(hi, |i| at + i)
}

/// The whitespace- and quote-delimited token holding `at`.
fn token_around(data: &[u8], at: usize) -> (usize, usize) {
    let stop = |b: u8| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b'<' | b'>');
    let lo = at.saturating_sub(4096);
    let s = data[lo..at]
        .iter()
        .rposition(|&b| stop(b))
        .map_or(lo, |i| lo + i + 1);
    let hi = (at + MAX_TOKEN).min(data.len());
    let e = data[at..hi]
        .iter()
        .position(|&b| stop(b))
        .map_or(hi, |i| at + i);
    (s, e)
}

/// Standard or URL-safe base64, padding optional; `None` when invalid or
/// when the result is not text (a secret's value is text).
pub fn b64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let out = crate::checksum::b64_bytes(s)?;
    let text = std::str::from_utf8(&out).ok()?;
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return None;
    }
    Some(out)
}

/// The `user:password` of HTTP Basic credentials (base64), when they
/// decode to one line of text holding a colon.
pub fn basic_credentials(b64: &[u8]) -> Option<Vec<u8>> {
    let text = b64_decode(b64)?;
    let colon = memchr::memchr(b':', &text)?;
    if text.len() > 4096 || text.contains(&b'\n') || colon + 1 >= text.len() {
        return None;
    }
    Some(text)
}

/// The `data:` values of a Kubernetes Secret: `  key: <base64>` lines
/// indented under a `data:` line.
fn k8s_data(data: &[u8]) -> Vec<Layer> {
    let mut out = Vec::new();
    let mut in_data: Option<usize> = None;
    let mut off = 0;
    for line in data.split(|&b| b == b'\n') {
        let start = off;
        off += line.len() + 1;
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let body = &line[indent..];
        if body.is_empty() || body.starts_with(b"#") {
            continue;
        }
        if body.starts_with(b"data:") && body[5..].iter().all(u8::is_ascii_whitespace) {
            in_data = Some(indent);
            continue;
        }
        let Some(di) = in_data else { continue };
        if indent <= di {
            in_data = None;
            continue;
        }
        let Some(colon) = memchr::memchr(b':', body) else {
            continue;
        };
        let mut vs = colon + 1;
        while vs < body.len() && matches!(body[vs], b' ' | b'"' | b'\'') {
            vs += 1;
        }
        let ve = vs + body[vs..].iter().take_while(|&&b| is_b64(b)).count();
        if ve - vs < 8 {
            continue;
        }
        let Some(decoded) = b64_decode(&body[vs..ve]) else {
            continue;
        };
        let (ts, te) = (start + indent + vs, start + indent + ve);
        // `key: "decoded"`: the key gives assignment rules their context.
        let mut text = line[..indent + vs].to_vec();
        let quoted = !body[..vs].contains(&b'"') && !decoded.contains(&b'\n');
        if quoted {
            text.push(b'"');
        }
        let b = text.len();
        let n = decoded.len();
        text.extend_from_slice(&decoded);
        if quoted {
            text.push(b'"');
        }
        text.extend_from_slice(&line[indent + ve..]);
        text.push(b'\n');
        out.push(Layer {
            kind: "base64",
            start: ts,
            end: te,
            text,
            body: b,
            body_len: n,
            map: None,
        });
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes the token [s, e) with a byte map.
fn url_layer(data: &[u8], s: usize, e: usize) -> Option<Layer> {
    let tok = &data[s..e];
    let mut text = Vec::with_capacity(tok.len());
    let mut map = Vec::with_capacity(tok.len() + 1);
    let mut i = 0;
    while i < tok.len() {
        map.push(s + i);
        if tok[i] == b'%' && i + 2 < tok.len() {
            if let (Some(h), Some(l)) = (hex_val(tok[i + 1]), hex_val(tok[i + 2])) {
                text.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        text.push(tok[i]);
        i += 1;
    }
    map.push(e);
    std::str::from_utf8(&text).ok()?;
    let n = text.len();
    Some(Layer {
        kind: "url",
        start: s,
        end: e,
        text,
        body: 0,
        body_len: n,
        map: Some(map),
    })
}

/// The JSON string literal holding offset `h`, decoded, when it holds
/// escapes.
fn json_layer(data: &[u8], h: usize) -> Option<Layer> {
    let ls = memchr::memrchr(b'\n', &data[..h]).map_or(0, |i| i + 1);
    let le = memchr::memchr(b'\n', &data[h..]).map_or(data.len(), |i| h + i);
    let line = &data[ls..le];
    memchr::memchr(b'\\', line)?;
    // Walk the line's string literals; find the one holding h.
    let mut i = 0;
    while i < line.len() {
        if line[i] != b'"' {
            i += 1;
            continue;
        }
        let open = i;
        i += 1;
        let mut escaped = false;
        while i < line.len() && line[i] != b'"' {
            if line[i] == b'\\' {
                escaped = true;
                i += 1;
            }
            i += 1;
        }
        let close = i.min(line.len());
        i += 1;
        let (s, e) = (ls + open + 1, ls + close);
        if !(s <= h && h < e) {
            continue;
        }
        if !escaped || e - s > MAX_TOKEN {
            return None;
        }
        return json_unescape(data, s, e);
    }
    None
}

fn json_unescape(data: &[u8], s: usize, e: usize) -> Option<Layer> {
    let src = &data[s..e];
    let mut text = Vec::with_capacity(src.len());
    let mut map = Vec::with_capacity(src.len() + 1);
    let mut i = 0;
    while i < src.len() {
        let at = s + i;
        if src[i] != b'\\' || i + 1 >= src.len() {
            map.push(at);
            text.push(src[i]);
            i += 1;
            continue;
        }
        let (bytes, used): (Vec<u8>, usize) = match src[i + 1] {
            b'n' => (vec![b'\n'], 2),
            b'r' => (vec![b'\r'], 2),
            b't' => (vec![b'\t'], 2),
            b'"' => (vec![b'"'], 2),
            b'\\' => (vec![b'\\'], 2),
            b'/' => (vec![b'/'], 2),
            b'u' if i + 6 <= src.len() => {
                let hex = std::str::from_utf8(&src[i + 2..i + 6]).ok()?;
                let cp = u32::from_str_radix(hex, 16).ok()?;
                let c = char::from_u32(cp)?;
                let mut buf = [0u8; 4];
                (c.encode_utf8(&mut buf).as_bytes().to_vec(), 6)
            }
            _ => (vec![src[i], src[i + 1]], 2),
        };
        for b in bytes {
            map.push(at);
            text.push(b);
        }
        i += used;
    }
    map.push(e);
    let n = text.len();
    Some(Layer {
        kind: "json",
        start: s,
        end: e,
        text,
        body: 0,
        body_len: n,
        map: Some(map),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_maps() {
        assert_eq!(b64_decode(b"aHVudGVyMg==").unwrap(), b"hunter2");
        assert!(b64_decode(b"////").is_none(), "binary is no secret text");
        let data = br#"{"a": "x\"y\nz"}"#;
        let l = json_layer(data, 9).unwrap();
        assert_eq!(l.text, b"x\"y\nz");
        // "y" is decoded byte 2, at original offset 10.
        assert_eq!(l.original_span(2, 3), Some((10, 11)));
        let u = b"u=postgres%3A%2F%2Fa%3Ab@h";
        let l = url_layer(u, 2, u.len()).unwrap();
        assert_eq!(l.text, b"postgres://a:b@h");
    }

    #[test]
    fn budget_bounds_layers() {
        let mut data = b"kind: Secret\ndata:\n".to_vec();
        for i in 0..1000 {
            data.extend_from_slice(format!("  k{i}: aHVudGVyMg==\n").as_bytes());
        }
        let l = layers(&data, &[(Trigger::K8sSecret, 0)], &[]);
        assert_eq!(l.len(), MAX_LAYERS);
    }
}
