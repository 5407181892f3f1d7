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

    /// From now on, no chunk may start more than `cap` bytes further until [`Gate::disarm`]
    /// (what multer buffers meanwhile is at most `cap` + one chunk).
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
///
/// multer reads every chunk that is ready before it looks at its buffer, so while armed the
/// gate hands out one chunk per poll (then `Pending`, waking itself at once): multer looks for
/// the end of the headers after each chunk and asks for another only if it is not there. A
/// chunk asked for once the cap is spent therefore means headers longer than the cap.
pub struct HeaderGate<S> {
    inner: S,
    gate: Arc<Gate>,
    /// A chunk was handed out while armed: the next poll answers `Pending` first.
    pause: bool,
}

impl<S> HeaderGate<S> {
    pub fn new(inner: S, gate: Arc<Gate>) -> HeaderGate<S> {
        HeaderGate {
            inner,
            gate,
            pause: false,
        }
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
        let armed = self.gate.until.load(Ordering::Relaxed) != u64::MAX;
        if std::mem::take(&mut self.pause) && armed {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                // A chunk that starts within the cap passes whole: it may hold the end of the
                // headers and the start of the part's data. Asking for more once the cap is
                // spent means the headers are longer than it.
                let g = &self.gate;
                let before = g.seen.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if before >= g.until.load(Ordering::Relaxed) {
                    g.tripped.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(HeadersTooLong.into())));
                }
                self.pause = armed;
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
        for _ in 0..3 {
            assert!(
                s.next().await.expect("chunk").is_ok(),
                "starts within the cap"
            );
        }
        assert!(s.next().await.expect("chunk").is_err(), "past the cap");
        assert!(gate.tripped());
    }

    /// What tripped a first version: multer reads every ready chunk before looking for the
    /// end of the headers, so a short header followed by much data that is already there must
    /// still pass.
    #[tokio::test]
    async fn a_short_header_followed_by_data_already_there_passes() {
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n".to_vec();
        body.extend(vec![b'x'; 100 * 1024]);
        body.extend(b"\r\n--B--\r\n");
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(16 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let gate = Gate::new();
        let stream = HeaderGate::new(futures_util::stream::iter(chunks), gate.clone());
        let mut mp = super::super::body::multipart(stream, "B".into(), multer::Constraints::new());
        gate.arm(1024);
        let mut field = mp.next_field().await.expect("a field").expect("one");
        gate.disarm();
        let mut n = 0;
        while let Some(c) = field.next().await {
            n += c.expect("data").len();
        }
        assert_eq!(n, 100 * 1024);
        assert!(!gate.tripped());
    }
}
