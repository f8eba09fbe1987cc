//! Keys filed under epoch-second buckets, `<prefix><second>/<rest>`: the
//! rotation scheduler's due index and the shared change events. One reader
//! serves both: the buckets come from the paginated listing, earliest
//! first, and reading stops at the first bucket past the bound, so the cost
//! follows what is due, not what is stored.

use crate::barrier::View;
use crate::Result;

/// Time buckets read by the first page: most reads find the first bucket
/// past the bound at once, so the first page is small; later pages double.
const FIRST_PAGE: usize = 8;
/// The most time buckets one page reads.
const MAX_PAGE: usize = 256;

/// One key of the index: its bucket's second and the key (in the view).
pub(crate) struct Timed {
    /// The bucket's epoch second.
    pub at: i64,
    /// The whole key, relative to the view.
    pub key: String,
    /// Where the part below the bucket starts in `key`.
    rest: usize,
}

impl Timed {
    /// The part of the key below its bucket.
    pub fn rest(&self) -> &str {
        &self.key[self.rest..]
    }
}

/// Every key under `prefix` whose bucket is at or before `up_to`, earliest
/// bucket first.
pub(crate) async fn until(view: &View, prefix: &str, up_to: i64) -> Result<Vec<Timed>> {
    let mut out = Vec::new();
    let mut after = String::new();
    let mut page = FIRST_PAGE;
    'pages: loop {
        let buckets = view.list_page(prefix, &after, Some(page)).await?;
        let Some(last) = buckets.last() else {
            break;
        };
        for bucket in &buckets {
            let Some(at) = bucket.strip_suffix('/').and_then(|t| t.parse::<i64>().ok()) else {
                continue;
            };
            if at > up_to {
                break 'pages;
            }
            let dir = format!("{prefix}{bucket}");
            for key in view.keys_with_prefix(&dir).await? {
                if key.len() > dir.len() && key.starts_with(&dir) {
                    out.push(Timed {
                        at,
                        rest: dir.len(),
                        key,
                    });
                }
            }
        }
        if buckets.len() < page {
            break;
        }
        after = last.clone();
        page = (page * 2).min(MAX_PAGE);
    }
    Ok(out)
}
