//! The stop signal of the server's long-running tasks (listeners, the ACME renewer, the garbage
//! collector): a `watch` channel of `bool` that turns true once, when shutdown begins. It sits
//! below the modules that watch it, so that none of them imports another to learn it.

use tokio::sync::watch;

/// Resolves once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
