//! `GET sys/metrics`: the server's metrics ([`crate::telemetry`]), in Vault's
//! JSON shape, or with `format=prometheus` in Prometheus' text format. It
//! needs `read` on `sys/metrics`, unless the operator configured
//! `unauthenticated_metrics_access` (then it answers without a token, as
//! Vault's does, and is not audited).

use crate::core::Core;
use crate::telemetry::{self, Snapshot};
use crate::util::Params;
use crate::{Error, Request, Response, Result};

/// Prometheus' text exposition format, as Vault labels it.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Answers `sys/metrics`.
pub(crate) async fn handle(core: &Core, req: &Request) -> Result<Response> {
    let params = Params(&req.data);
    let format = params.str("format")?.unwrap_or("");
    if !matches!(format, "" | "prometheus" | "json") {
        return Err(Error::bad(format!(
            "unsupported metrics format {format:?}: expected prometheus, or none for JSON"
        )));
    }
    let snap = snapshot(core).await?;
    Ok(if format == "prometheus" {
        Response::text(PROMETHEUS_CONTENT_TYPE, telemetry::prometheus(&snap))
    } else {
        Response::raw(telemetry::vault_json(&snap))
    })
}

/// The gauges counted at read time: tokens, leases, lifecycle states.
async fn snapshot(core: &Core) -> Result<Snapshot> {
    if core.is_sealed() {
        return Err(Error::Sealed);
    }
    let (due, overdue, failing) = crate::lifecycle::status_counts(core).await?;
    Ok(Snapshot {
        tokens: core.tokens.accessors().await?.len() as u64,
        leases: core.leases.len() as u64,
        unsealed: true,
        due,
        overdue,
        failing,
    })
}
