//! The audit broker: every authenticated request and its response go
//! through here before the client sees an answer.
//!
//! This is the seam the request path calls; the devices, hashing, chaining
//! and access records plug in behind it.

use crate::barrier::View;
use crate::core::Core;
use crate::mounts::MountEntry;
use crate::token::TokenEntry;
use crate::{Request, Response, Result};

/// What the request path knows about one request when it audits it.
pub struct AuditContext<'a> {
    /// The request as the core sees it (operation, path, data, client address).
    pub request: &'a Request,
    /// The authenticated token, when authentication succeeded.
    pub token: Option<&'a TokenEntry>,
    /// The mount that handles the path, if any.
    pub mount: Option<&'a MountEntry>,
}

/// Dispatches audit entries to the enabled devices.
pub struct AuditBroker {
    #[allow(dead_code)]
    view: View,
}

impl AuditBroker {
    /// A broker keeping its configuration in `view`.
    pub fn new(view: View) -> Self {
        AuditBroker { view }
    }

    /// Loads the enabled devices after unseal.
    pub async fn load(&self) -> Result<()> {
        Ok(())
    }

    /// Closes the devices on seal.
    pub fn clear(&self) {}

    /// Records a request before it is handled. An error refuses the request.
    pub async fn log_request(
        &self,
        _ctx: &AuditContext<'_>,
        _error: Option<&crate::Error>,
    ) -> Result<()> {
        Ok(())
    }

    /// Records the response (or error) before it is returned. An error
    /// replaces the answer: nothing unrecorded reaches the client.
    pub async fn log_response(
        &self,
        _ctx: &AuditContext<'_>,
        _result: &Result<Response>,
    ) -> Result<()> {
        Ok(())
    }
}

/// Handles `sys/audit`, `sys/audit/:path` and `sys/audit-hash/:path`.
pub(crate) async fn handle_sys(
    _core: &Core,
    _req: &Request,
    _rest: &str,
    _token: &TokenEntry,
) -> Result<Response> {
    Err(crate::Error::UnsupportedPath("unsupported path".into()))
}
