//! Who read a secret since a given time, from the access records: the input
//! of emergency revocation.

use chrono::{DateTime, Utc};

use super::AuditBroker;
use crate::Result;

impl AuditBroker {
    /// Accessors of the tokens that read `path` at or after `since` (all
    /// recorded readers when `None`).
    pub async fn readers_since(
        &self,
        path: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<String>> {
        self.access.flush(&self.view).await?;
        let Some(record) = self.access.get(&self.view, path).await? else {
            return Ok(Vec::new());
        };
        let from = since.map(|t| t.timestamp()).unwrap_or(i64::MIN);
        Ok(record
            .readers
            .into_iter()
            .filter(|r| r.last_read >= from)
            .map(|r| r.accessor)
            .collect())
    }
}
