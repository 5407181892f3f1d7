//! Request bodies as byte streams, with the slow-client protections: a body that sends nothing
//! for `server.body_read_timeout_secs`, whose average rate falls below
//! `server.body_min_rate_bytes_per_sec`, or (on routes without a token) that is not whole within
//! `server.unauthenticated_body_deadline_secs` ends with an error instead of holding a slot.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// After an upload is refused (too large), the rest of its body is read and thrown away, at most
/// this much and this long, so that the client reads the error instead of a connection reset.
const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the client sent nothing for {0:?}")]
    Timeout(Duration),
    #[error("the request body arrives slower than {0} bytes/s on average")]
    TooSlow(u64),
    #[error("the request body was not whole within {0:?}")]
    Deadline(Duration),
    #[error("reading the request body failed: {0}")]
    Read(#[from] hyper::Error),
}

/// The overall bounds of one request's body, besides the idle timeout (see
/// [`super::limits::body_policy`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyPolicy {
    /// Slowest average rate, bytes per second of time spent waiting for the body; 0: none.
    pub min_rate: u64,
    /// Waiting time before the rate is checked.
    pub grace: Duration,
    /// Longest time the whole body may take, from the start of the request's handling.
    pub deadline: Option<Duration>,
}

tokio::task_local! {
    /// The body policy of the request being served (see [`with_policy`]).
    static POLICY: BodyPolicy;
}

/// Run `fut` (a request's handling) with `policy` for every body stream it opens.
pub async fn with_policy<F: Future>(policy: BodyPolicy, fut: F) -> F::Output {
    POLICY.scope(policy, fut).await
}

/// The data frames of a request body; trailers are skipped.
pub struct BodyStream {
    body: Incoming,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    /// When the current silence ends the body (set at the first `Pending` after data).
    idle_at: Option<Instant>,
    policy: BodyPolicy,
    created: Instant,
    received: u64,
    /// Time spent waiting for the client, up to the current wait.
    waited: Duration,
    /// Start of the current wait.
    waiting_since: Option<Instant>,
    timed_out: bool,
    ended: bool,
}

impl BodyStream {
    /// A body with the idle timeout `idle` and the policy of the request being served (none
    /// outside one).
    pub fn new(body: Incoming, idle: Duration) -> Self {
        let policy = POLICY.try_with(|p| *p).unwrap_or_default();
        Self {
            body,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            idle_at: None,
            policy,
            created: Instant::now(),
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timed_out: false,
            ended: false,
        }
    }

    /// Whether the stream ended because the client went silent or too slow.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether the transport reported the end of the body (which HTTP/2 also does for a stream
    /// the peer reset with NO_ERROR, whatever Content-Length said).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Read and discard what is left, within the drain bounds, in the background.
    pub fn drain_in_background(mut self) {
        tokio::spawn(async move {
            let deadline = Instant::now() + DRAIN_MAX_TIME;
            let mut seen = 0u64;
            while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, self.next()).await {
                seen += chunk.len() as u64;
                if seen > DRAIN_MAX_BYTES {
                    break;
                }
            }
        });
    }

    /// When the body must have ended by (whole-body deadline), or must have brought more bytes
    /// by (average rate), given the wait that started at `since`: the earliest, if any.
    fn policy_deadline(&self, since: Instant) -> Option<Instant> {
        let deadline = self.policy.deadline.map(|d| self.created + d);
        let rate = (self.policy.min_rate > 0).then(|| {
            // The rate fails once waited > grace and received < min_rate × waited.
            let needed =
                Duration::from_secs_f64(self.received as f64 / self.policy.min_rate as f64);
            since + needed.max(self.policy.grace).saturating_sub(self.waited)
        });
        match (deadline, rate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The error for a body stopped at `now`.
    fn fault(&self, now: Instant) -> BodyError {
        if let Some(d) = self.policy.deadline
            && now >= self.created + d
        {
            return BodyError::Deadline(d);
        }
        if self.idle_at.is_some_and(|at| now >= at) {
            return BodyError::Timeout(self.idle);
        }
        BodyError::TooSlow(self.policy.min_rate)
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(Some(Err(this.fault(Instant::now()))));
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.idle_at = None;
                    if let Some(since) = this.waiting_since.take() {
                        this.waited += since.elapsed();
                    }
                    if let Ok(data) = frame.into_data() {
                        super::access::count_in(data.len());
                        this.received += data.len() as u64;
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    let now = Instant::now();
                    let since = *this.waiting_since.get_or_insert(now);
                    let idle_at = *this.idle_at.get_or_insert(now + this.idle);
                    let at = this
                        .policy_deadline(since)
                        .map_or(idle_at, |p| p.min(idle_at));
                    if this.sleep.deadline() != at {
                        this.sleep.as_mut().reset(at);
                    }
                    if this.sleep.as_mut().poll(cx).is_ready() {
                        this.timed_out = true;
                        return Poll::Ready(Some(Err(this.fault(now.max(at)))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// A stream that reports its end one poll late: when the inner stream ends, it first answers
/// `Pending` (waking itself at once), and `None` on the next poll.
///
/// For multer 3.1: while looking for the first boundary it polls the body twice in one call and,
/// if the second poll brings the rest of the body *and* its end, answers "incomplete multipart
/// stream" without looking at what it just read. That happens when the first poll finds nothing
/// yet (the body's frames still on their way) and the whole body arrives before the second, which
/// a small upload over HTTP/2 does now and then. Ending one poll late means that no poll which
/// brings data also brings the end, so multer looks at the data before it sees the end.
pub struct DeferEof<S> {
    inner: S,
    ended: bool,
}

impl<S> DeferEof<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            ended: false,
        }
    }
}

impl<S: Stream + Unpin> Stream for DeferEof<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }
}

/// The most body bytes multer may read in one call, before it hands what it read to the part's
/// reader (see [`ReadAhead`]).
pub const MULTER_READ_AHEAD: usize = 256 * 1024;

/// A stream that answers `Pending` (waking itself at once) after every [`MULTER_READ_AHEAD`]
/// bytes it yields without one.
///
/// multer (3.1) reads every chunk that is ready into its own buffer, a copy, before it looks at
/// that buffer; only then does the part's reader get the data, and with it the upload buffer
/// budget its say. Over HTTP/2 each chunk read gives the client window back, so while the client
/// sends faster than the store writes there is always another chunk ready: one 1 GiB upload with
/// 32 MiB windows had multer holding some 300 MiB (the server's RSS peaked at 380-580 MiB, against
/// 52 MiB over HTTP/1.1). A `Pending` ends multer's read, so what it holds outside the budget is
/// at most twice this and one chunk (what it had not handed on from its previous read, such as
/// the data after a part's headers, and this read).
pub struct ReadAhead<S> {
    inner: S,
    since_pending: usize,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            since_pending: 0,
        }
    }
}

impl<S, E> Stream for ReadAhead<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if self.since_pending >= MULTER_READ_AHEAD {
            self.since_pending = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let r = Pin::new(&mut self.inner).poll_next(cx);
        match &r {
            Poll::Ready(Some(Ok(chunk))) => self.since_pending += chunk.len(),
            Poll::Pending => self.since_pending = 0,
            _ => {}
        }
        r
    }
}

/// multer's parser over a streamed body, with its read-ahead bounded (see [`ReadAhead`]) and
/// the end of the body deferred (see [`DeferEof`]).
pub fn multipart<'r, S, E>(
    body: S,
    boundary: String,
    constraints: multer::Constraints,
) -> multer::Multipart<'r>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'r,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'r,
{
    multer::Multipart::with_constraints(DeferEof::new(ReadAhead::new(body)), boundary, constraints)
}

/// Read a whole small body (token requests, forms), refusing more than `max` bytes (400), or a
/// body that stops arriving or is too slow (408).
pub async fn read_small(
    body: Incoming,
    max: usize,
    idle: Duration,
) -> Result<Bytes, super::error::ApiError> {
    use super::error::ApiError;
    let mut stream = BodyStream::new(body, idle);
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) if stream.timed_out() => {
                return Err(ApiError::Detail {
                    status: http::StatusCode::REQUEST_TIMEOUT,
                    detail: format!("The request body was not received in time: {e}."),
                    code: Some("body_timeout"),
                });
            }
            Err(e) => return Err(ApiError::bad_request(e.to_string())),
        };
        if buf.len() + chunk.len() > max {
            return Err(ApiError::bad_request(format!(
                "request body larger than {max} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Largest token request or non-multipart form accepted.
pub const SMALL_BODY_MAX: usize = 64 * 1024;

/// The fields of a small form body: JSON object, `application/x-www-form-urlencoded`, or
/// `multipart/form-data` text fields. No body or no `Content-Type`: no fields. Values that are
/// files in a multipart body are reported as `FormValue::File`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormValue {
    Text(String),
    File,
}

pub async fn small_form(
    req: http::Request<Incoming>,
    idle: Duration,
) -> Result<std::collections::HashMap<String, FormValue>, super::error::ApiError> {
    use super::error::ApiError;
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let bytes = read_small(req.into_body(), SMALL_BODY_MAX, idle).await?;
    let mut out = std::collections::HashMap::new();
    match mime.as_str() {
        "" if bytes.is_empty() => {}
        "application/json" => {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("JSON parse error - {e}")))?;
            let serde_json::Value::Object(map) = v else {
                return Err(ApiError::bad_request(
                    "JSON parse error - expected an object",
                ));
            };
            for (k, v) in map {
                let text = match v {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(k, FormValue::Text(text));
            }
        }
        "application/x-www-form-urlencoded" => {
            for (k, v) in form_urlencoded::parse(&bytes) {
                out.insert(k.into_owned(), FormValue::Text(v.into_owned()));
            }
        }
        "multipart/form-data" => {
            let boundary = multer::parse_boundary(&ct)
                .map_err(|e| ApiError::bad_request(format!("Multipart form parse error - {e}")))?;
            let once = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
            let mut mp = multer::Multipart::new(once, boundary);
            while let Some(field) = mp
                .next_field()
                .await
                .map_err(|e| ApiError::bad_request(format!("Multipart form parse error - {e}")))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                if field.file_name().is_some() {
                    out.insert(name, FormValue::File);
                } else {
                    let text = field.text().await.map_err(|e| {
                        ApiError::bad_request(format!("Multipart form parse error - {e}"))
                    })?;
                    out.insert(name, FormValue::Text(text));
                }
            }
        }
        _ => return Err(ApiError::UnsupportedMediaType(ct)),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A body whose first poll finds nothing yet and whose next poll finds all of it and its end:
    /// what an HTTP/2 stream looks like when the whole body lands between two polls.
    fn late_body(chunks: Vec<&'static str>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        let mut queue: VecDeque<Bytes> = chunks.into_iter().map(Bytes::from).collect();
        let mut first = true;
        futures_util::stream::poll_fn(move |cx| {
            if std::mem::take(&mut first) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(queue.pop_front().map(Ok))
        })
    }

    /// The frames reqwest sends for a small form (one text field, one file), as they were seen
    /// when multer answered "incomplete multipart stream" for this complete body.
    const FORM: [&str; 10] = [
        "--XYZ\r\n",
        "Content-Disposition: form-data; name=\"resource\"\r\n\r\n",
        "doc",
        "\r\n",
        "--XYZ\r\n",
        "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n",
        "y",
        "\r\n",
        "--XYZ--\r\n",
        "",
    ];

    #[tokio::test]
    async fn a_form_that_arrives_whole_between_two_polls_is_parsed() {
        let mut mp = multipart(
            Box::pin(late_body(FORM.to_vec())),
            "XYZ".into(),
            multer::Constraints::new(),
        );
        let mut seen = Vec::new();
        while let Some(field) = mp.next_field().await.expect("a complete form") {
            let name = field.name().unwrap_or_default().to_owned();
            seen.push((name, field.text().await.expect("field")));
        }
        assert_eq!(
            seen,
            [
                ("resource".into(), "doc".into()),
                ("file".into(), "y".into())
            ]
        );
    }

    #[tokio::test]
    async fn a_form_cut_short_is_still_incomplete() {
        let mut mp = multipart(
            Box::pin(late_body(FORM[..7].to_vec())),
            "XYZ".into(),
            multer::Constraints::new(),
        );
        let mut error = None;
        loop {
            match mp.next_field().await {
                Ok(Some(field)) => {
                    if let Err(e) = field.text().await {
                        error = Some(e);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        assert!(
            matches!(error, Some(multer::Error::IncompleteFieldData { .. })),
            "{error:?}"
        );
    }

    /// A body that is all there at once (an HTTP/2 stream whose client keeps its window full):
    /// multer hands the part's data on in pieces of at most twice [`MULTER_READ_AHEAD`] and a
    /// chunk, not after reading the whole body into its own buffer.
    #[tokio::test]
    async fn multer_reads_ahead_at_most_its_bound_of_a_body_that_is_all_there() {
        const CHUNK: usize = 16 * 1024;
        let mut body =
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
                .to_vec();
        body.extend(vec![b'x'; 4 * 1024 * 1024]);
        body.extend(b"\r\n--B--\r\n");
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(CHUNK)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut mp = multipart(
            futures_util::stream::iter(chunks),
            "B".into(),
            multer::Constraints::new(),
        );
        let mut field = mp.next_field().await.expect("a part").expect("one");
        let (mut total, mut largest) = (0, 0);
        while let Some(piece) = field.chunk().await.expect("data") {
            total += piece.len();
            largest = largest.max(piece.len());
        }
        assert_eq!(total, 4 * 1024 * 1024);
        assert!(
            largest <= 2 * MULTER_READ_AHEAD + CHUNK,
            "multer read {largest} bytes ahead"
        );
    }
}
