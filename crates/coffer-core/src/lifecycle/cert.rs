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
                GeneralName::IPAddress(ip) => sans.push(format!("{ip:?}")),
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
