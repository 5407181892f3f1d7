//! Bounds on the framing of a streamed multipart form (`/api/upload`): the parts of a form
//! (`limits.max_form_parts`), the bytes before a part's data — its boundary line and headers
//! (`limits.max_part_header_bytes`) — and the non-file bytes of the form together
//! (`limits.max_form_text_bytes`). multer has a whole-stream limit but none on a part's headers;
//! it re-scans its buffer on every read while looking for their end, so a header that never ends
//! costs quadratic CPU. [`HeaderGate`] fails the body once a part's headers pass the cap.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::error::ApiError;
use crate::config::LimitsConfig;

/// The caps of one form.
#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    pub parts: u64,
    pub header_bytes: u64,
    pub text_bytes: u64,
}

impl FormLimits {
    pub fn of(cfg: &LimitsConfig) -> FormLimits {
        FormLimits {
            parts: cfg.max_form_parts,
            header_bytes: cfg.max_part_header_bytes,
            text_bytes: cfg.max_form_text_bytes,
        }
    }

    pub fn too_many_parts(&self) -> ApiError {
        ApiError::bad_request(format!(
            "Multipart form parse error - more than {} parts (limits.max_form_parts)",
            self.parts
        ))
    }

    pub fn headers_too_long(&self) -> ApiError {
        ApiError::bad_request(format!(
            "Multipart form parse error - a part's headers are longer than {} bytes \
             (limits.max_part_header_bytes)",
            self.header_bytes
        ))
    }

    pub fn too_much_text(&self) -> ApiError {
        ApiError::bad_request(format!(
            "Multipart form parse error - the non-file fields are larger than {} bytes \
             together (limits.max_form_text_bytes)",
            self.text_bytes
        ))
    }
}

/// The shared side of a [`HeaderGate`]: the reader arms it before asking multer for the next
/// part and disarms it when the part's data starts.
#[derive(Debug, Default)]
pub struct Gate {
    seen: AtomicU64,
    /// Bytes the body may have yielded in all while armed; `u64::MAX` when disarmed.
    until: AtomicU64,
    tripped: AtomicBool,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate {
            until: AtomicU64::new(u64::MAX),
            ..Gate::default()
        })
    }

    /// From now on, at most `cap` more bytes until [`Gate::disarm`].
    pub fn arm(&self, cap: u64) {
        let seen = self.seen.load(Ordering::Relaxed);
        self.until
            .store(seen.saturating_add(cap), Ordering::Relaxed);
    }

    pub fn disarm(&self) {
        self.until.store(u64::MAX, Ordering::Relaxed);
    }

    /// Whether the body was failed for passing the cap.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }
}

/// A body stream that fails once more bytes than its [`Gate`] allows have arrived.
pub struct HeaderGate<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> HeaderGate<S> {
    pub fn new(inner: S, gate: Arc<Gate>) -> HeaderGate<S> {
        HeaderGate { inner, gate }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a part's headers are too long")]
struct HeadersTooLong;

impl<S, E> Stream for HeaderGate<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.gate.tripped() {
            return Poll::Ready(Some(Err(HeadersTooLong.into())));
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let g = &self.gate;
                let seen =
                    g.seen.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                if seen > g.until.load(Ordering::Relaxed) {
                    g.tripped.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(HeadersTooLong.into())));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn the_gate_fails_past_its_cap_only_while_armed() {
        let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 100])));
        let gate = Gate::new();
        let mut s = HeaderGate::new(futures_util::stream::iter(chunks), gate.clone());
        for _ in 0..3 {
            assert!(s.next().await.expect("chunk").is_ok(), "disarmed");
        }
        gate.arm(250);
        assert!(s.next().await.expect("chunk").is_ok());
        assert!(s.next().await.expect("chunk").is_ok());
        assert!(s.next().await.expect("chunk").is_err(), "past the cap");
        assert!(gate.tripped());
    }
}
