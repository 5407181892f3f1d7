//! The access log: one structured line per request, written when the response body has been
//! sent (or abandoned), so that it carries the bytes really transferred and the whole duration.
//! Tokens, passwords and query strings are never logged: only the route's name is.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::Body;

tokio::task_local! {
    /// Request-body bytes read by the request being served (see [`count_in`]).
    static BYTES_IN: Arc<AtomicU64>;
}

/// Run `fut` with a request-body byte counter that [`count_in`] adds to.
pub async fn with_bytes_in<F: Future>(counter: Arc<AtomicU64>, fut: F) -> F::Output {
    BYTES_IN.scope(counter, fut).await
}

/// Count `n` request-body bytes for the current request's access log line (no-op elsewhere,
/// e.g. in a background drain).
pub fn count_in(n: usize) {
    let _ = BYTES_IN.try_with(|c| c.fetch_add(n as u64, Ordering::Relaxed));
}

/// What the line says besides the byte counts.
pub struct Line {
    pub request_id: String,
    pub client: String,
    pub method: String,
    pub route: &'static str,
    pub status: u16,
    pub tenant: String,
    pub started: Instant,
    pub bytes_in: Arc<AtomicU64>,
}

impl Line {
    fn emit(&self, bytes_out: u64, complete: bool) {
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        tracing::info!(
            target: "mtfu::access",
            request_id = %self.request_id,
            client = %self.client,
            method = %self.method,
            route = self.route,
            status = self.status,
            tenant = %self.tenant,
            bytes_in,
            bytes_out,
            complete,
            // Whole microseconds in milliseconds: prints as `0.017`, not a binary fraction's noise.
            duration_ms = self.started.elapsed().as_micros() as f64 / 1000.0,
            "request"
        );
        metrics::counter!("mtfu_request_body_bytes_total", "route" => self.route)
            .increment(bytes_in);
        metrics::counter!("mtfu_response_body_bytes_total", "route" => self.route)
            .increment(bytes_out);
    }
}

/// A response body that counts what it sends and logs the request's line when it ends.
struct Logged {
    inner: Body,
    line: Line,
    sent: u64,
    logged: bool,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if !this.logged {
                    this.logged = true;
                    this.line.emit(this.sent, true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
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

impl Drop for Logged {
    fn drop(&mut self) {
        // An empty body may never be polled; a download may be abandoned by its client.
        if !self.logged {
            self.logged = true;
            let complete = self.inner.is_end_stream();
            self.line.emit(self.sent, complete);
        }
    }
}

/// Attach `line` to `resp`: it is logged when the body is done.
pub fn log_when_sent(resp: super::Response, line: Line) -> super::Response {
    use http_body_util::BodyExt;
    resp.map(|inner| {
        Logged {
            inner,
            line,
            sent: 0,
            logged: false,
        }
        .boxed_unsync()
    })
}
