//! The interface every mounted secrets engine implements.

use async_trait::async_trait;

use crate::barrier::View;
use crate::mounts::MountEntry;
use crate::{Request, Response, Result};

/// What an engine sees of its mount when it handles a request.
pub struct EngineCtx<'a> {
    /// The engine's own storage, below its mount's private prefix.
    pub view: &'a View,
    /// The mount's entry (path, type, options, config).
    pub mount: &'a MountEntry,
}

/// A secrets engine mounted at a path. It sees only its own storage view and
/// the path relative to its mount; routing, authentication, authorization and
/// audit happen before it is called.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Whether `path` already exists, to tell a create from an update.
    /// `None` means the engine makes no such distinction (writes are updates).
    async fn exists(
        &self,
        _ctx: &EngineCtx<'_>,
        _req: &Request,
        _path: &str,
    ) -> Result<Option<bool>> {
        Ok(None)
    }

    /// Handles `req` for `path`, relative to the mount.
    async fn handle(&self, ctx: &EngineCtx<'_>, req: &Request, path: &str) -> Result<Response>;
}
