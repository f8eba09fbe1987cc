//! Certificates kept as secret values: subject, SANs and NotAfter from PEM.

use chrono::{DateTime, Utc};
use serde_json::Value;
use x509_parser::prelude::*;

use super::model::CertInfo;

/// The first PEM certificate found in any string field of `data`.
pub fn find_in(data: &Value) -> Option<CertInfo> {
    match data {
        Value::String(s) if s.contains("-----BEGIN CERTIFICATE-----") => parse_pem(s),
        Value::Object(m) => m.values().find_map(find_in),
        Value::Array(a) => a.iter().find_map(find_in),
        _ => None,
    }
}

/// An IP address SAN as text (`127.0.0.1`, `::1`); other lengths (a
/// malformed SAN) as hex.
fn ip_text(bytes: &[u8]) -> String {
    use std::net::IpAddr;
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return IpAddr::from(v4).to_string();
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return IpAddr::from(v6).to_string();
    }
    hex::encode(bytes)
}

/// Parses the first certificate of a PEM text.
pub fn parse_pem(text: &str) -> Option<CertInfo> {
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let (_, pem) = parse_x509_pem(&text.as_bytes()[start..]).ok()?;
    let (_, cert) = X509Certificate::from_der(&pem.contents).ok()?;
    let not_after = DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0)?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(ip) => sans.push(ip_text(ip)),
                GeneralName::RFC822Name(e) => sans.push(e.to_string()),
                GeneralName::URI(u) => sans.push(u.to_string()),
                _ => {}
            }
        }
    }
    Some(CertInfo {
        subject: cert.subject().to_string(),
        sans,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_sans_read_as_addresses() {
        let c = rcgen::generate_simple_self_signed(vec![
            "db.example".into(),
            "127.0.0.1".into(),
            "::1".into(),
        ])
        .unwrap();
        let info = parse_pem(&c.cert.pem()).unwrap();
        assert_eq!(info.sans, ["db.example", "127.0.0.1", "::1"]);
        assert_eq!(ip_text(&[1, 2, 3]), "010203");
    }
}
