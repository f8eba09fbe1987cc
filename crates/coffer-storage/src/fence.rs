//! Fencing tokens for background work.
//!
//! The leader runs its background work inside [`fenced`] with the term of
//! its lease. A shared backend reads the term back ([`current`]) in
//! `write_batch` and checks it against the lease in the same transaction,
//! so a leader that was paused past its lease (and replaced) cannot write.
//! Tasks spawned by background work keep the fence with [`inherit`].

use std::future::Future;

tokio::task_local! {
    static FENCE: u64;
}

/// Runs `fut` with every storage write it makes fenced by `term`.
pub async fn fenced<F: Future>(term: u64, fut: F) -> F::Output {
    FENCE.scope(term, fut).await
}

/// The term of the fence the current task runs under, if any.
pub fn current() -> Option<u64> {
    FENCE.try_with(|t| *t).ok()
}

/// Wraps `fut` (typically about to be spawned) in the current task's fence,
/// if it has one.
pub fn inherit<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let term = current();
    async move {
        match term {
            Some(t) => FENCE.scope(t, fut).await,
            None => fut.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fence_follows_the_task_and_inherited_spawns() {
        assert_eq!(current(), None);
        fenced(7, async {
            assert_eq!(current(), Some(7));
            let kept = tokio::spawn(inherit(async { current() }));
            let lost = tokio::spawn(async { current() });
            assert_eq!(kept.await.unwrap(), Some(7));
            assert_eq!(lost.await.unwrap(), None);
        })
        .await;
        assert_eq!(current(), None);
    }
}
