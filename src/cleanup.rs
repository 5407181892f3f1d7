//! Clean-up work that must finish before the process exits.
//!
//! When a request future is dropped (a client disconnect, or the shutdown grace period running
//! out) its unfinished upload cleans up from `Drop`: the blob and intent are removed, an S3
//! multipart upload is aborted. `Drop` cannot await, so that work runs as a task — spawned
//! through [`spawn`], so that [`wait`] at shutdown lets it finish instead of the runtime
//! dropping it half-way. Whatever still does not finish is found later by `mtfu gc` through
//! its intent.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

fn tracker() -> &'static TaskTracker {
    static TRACKER: OnceLock<TaskTracker> = OnceLock::new();
    TRACKER.get_or_init(TaskTracker::new)
}

/// Run `fut` as a tracked clean-up task on the current runtime (`None` outside one).
pub fn spawn<F>(fut: F) -> Option<JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("clean-up outside a runtime: left to gc");
        return None;
    };
    tracing::debug!(running = tracker().len(), "clean-up task spawned");
    Some(tracker().spawn_on(fut, &rt))
}

/// Wait up to `limit` for every clean-up task spawned so far (and any they spawn) to end.
/// Returns false if some were still running.
pub async fn wait(limit: Duration) -> bool {
    let t = tracker();
    t.close();
    let done = tokio::time::timeout(limit, t.wait()).await.is_ok();
    // Reopen: in tests several servers live in one process, one after another.
    t.reopen();
    done
}

/// Clean-up tasks running now (for logs and tests).
pub fn running() -> usize {
    tracker().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_lets_spawned_clean_up_finish() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(());
        });
        assert!(wait(Duration::from_secs(5)).await);
        assert!(rx.await.is_ok(), "the task ran to its end");
    }
}
