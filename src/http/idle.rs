//! Connection idleness decided on requests and responses, not on bytes: a connection is idle
//! when no request is being handled and no response byte has been sent for
//! `server.idle_timeout_secs`. HTTP/2 keep-alive PINGs (ours) and their ACKs, or a client's own
//! PINGs and SETTINGS, move bytes but are not activity, so a client that opens an HTTP/2
//! connection and sends nothing loses it. An idle connection is closed gracefully (GOAWAY on
//! HTTP/2, closing between requests on HTTP/1), and dropped if that does not finish soon.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Body, Response};

/// After an idle connection was asked to close, how long it may take before it is dropped.
const CLOSE_GRACE_MAX: Duration = Duration::from_secs(10);

/// What one connection is doing: requests in their handler, and when a request or response
/// last made progress.
pub struct Activity {
    base: Instant,
    /// Milliseconds after `base` of the last progress.
    last: AtomicU64,
    handling: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            last: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// A request arrived: the connection is busy until it has been answered.
    pub fn request(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Handling {
            activity: self.clone(),
        }
    }

    /// Requests being handled now.
    pub fn handling(&self) -> usize {
        self.handling.load(Ordering::Relaxed)
    }

    /// Resolves once no request is handled and nothing progressed for `idle`.
    pub async fn idle(&self, idle: Duration) {
        loop {
            let now = Instant::now();
            let at = self.last() + idle;
            if now >= at {
                if self.handling() == 0 {
                    return;
                }
                // A request in its handler (bounded by the body and store timeouts).
                tokio::time::sleep_until(now + idle).await;
            } else {
                tokio::time::sleep_until(at).await;
            }
        }
    }
}

/// A request in its handler; dropping it (answered, or cancelled) ends that.
pub struct Handling {
    activity: Arc<Activity>,
}

impl Handling {
    /// The handler answered: the response's body keeps the connection active while it sends.
    pub fn responded(self, resp: Response) -> Response {
        let activity = self.activity.clone();
        drop(self);
        resp.map(|inner| Active { inner, activity }.boxed_unsync())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.activity.touch();
        self.activity.handling.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body whose frames count as activity.
struct Active {
    inner: Body,
    activity: Arc<Activity>,
}

impl HttpBody for Active {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_ready() {
            self.activity.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.activity.touch();
    }
}

/// Serve `conn` until it ends. When `closing` is cancelled (shutdown), or the connection has
/// been idle for `idle`, it is asked to close gracefully (`shutdown`); after an idle close it is
/// dropped if that takes longer than `idle` (at most 10 s).
pub async fn drive<C, E>(
    conn: C,
    shutdown: impl Fn(Pin<&mut C>),
    activity: &Activity,
    idle: Duration,
    closing: &CancellationToken,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let mut conn = pin!(conn);
    let mut asked = false;
    let mut hard = pin!(tokio::time::sleep(Duration::ZERO));
    let mut hard_armed = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = closing.cancelled(), if !asked => {
                asked = true;
                shutdown(conn.as_mut());
            }
            _ = activity.idle(idle), if !asked => {
                tracing::debug!("closing an idle connection");
                asked = true;
                shutdown(conn.as_mut());
                hard.as_mut().reset(Instant::now() + idle.min(CLOSE_GRACE_MAX));
                hard_armed = true;
            }
            _ = hard.as_mut(), if hard_armed => return Ok(()),
        }
    }
}
