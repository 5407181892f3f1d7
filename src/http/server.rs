//! The accept loop: TCP → (TLS) → hyper's HTTP/1.1 + HTTP/2 connection, with the protections
//! against slow or hostile clients: a connection cap, a TLS handshake timeout, a header-read
//! timeout, a maximum header size and an idle timeout on every connection. Idleness is decided
//! on requests and responses (see [`crate::http::idle`]), not on bytes: HTTP/2 keep-alive PINGs
//! and their ACKs do not keep a connection open.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::idle::{Activity, drive};
use super::windows::Windows;
use super::{AppState, ConnInfo, handle};
use crate::shutdown::stopped;

/// Serve `listener` until `stop` turns true, then wait up to `grace` for open connections.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let server = &state.cfg.server;
    let slots = Arc::new(Semaphore::new(server.max_connections));
    // Cancelled at shutdown: every connection then closes gracefully (GOAWAY, `Connection:
    // close`) once its requests are done.
    let closing = CancellationToken::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Every connection's task, so that those still open when the grace period ends can be
    // cancelled (their uploads clean up from `Drop`, see crate::cleanup) before we return.
    let mut conns = tokio::task::JoinSet::new();
    // HTTP/2 serves each stream's request in a task of its own, spawned through this executor,
    // so that those too can be cancelled and waited for.
    let streams = StreamExecutor::default();
    let grants = state.windows.clone();
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stopped(&mut stop) => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        let closing = closing.clone();
        let cfg = state.cfg.server.clone();
        let h2 = state.cfg.http2.clone();
        let grants = grants.clone();
        let executor = streams.clone();
        conns.spawn(async move {
            let _permit = permit;
            let conn = ConnInfo { peer, scheme };
            let idle = Duration::from_secs(cfg.idle_timeout_secs);
            let mut builder = auto::Builder::new(executor);
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(cfg.header_read_timeout_secs))
                .max_buf_size(cfg.max_header_bytes.max(8192));
            builder
                .http2()
                .max_concurrent_streams(h2.max_concurrent_streams)
                .timer(TokioTimer::new())
                .max_header_list_size(cfg.max_header_bytes as u32)
                .keep_alive_interval(Some(idle / 2))
                .keep_alive_timeout(Duration::from_secs(20));
            let activity = Activity::new();
            let seen = activity.clone();
            let svc = service_fn(move |req| {
                let state = state.clone();
                let seen = seen.clone();
                async move {
                    let request = seen.request();
                    let resp = handle(state, conn, req).await;
                    Ok::<_, std::convert::Infallible>(request.responded(resp?))
                }
            });
            let result = match tls {
                Some(acceptor) => {
                    let hs = Duration::from_secs(cfg.tls_handshake_timeout_secs);
                    let stream = match tokio::time::timeout(hs, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    if stream.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
                        // A TLS-ALPN-01 validation: the handshake was the whole exchange.
                        return;
                    }
                    // HTTP/2 windows large enough for long round trips, paid for from the
                    // buffer budget while the connection lasts (see crate::http::windows).
                    let windows = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => grants.grant(),
                        _ => grants.initial(),
                    };
                    set_windows(&mut builder, &windows);
                    let io = TokioIo::new(IdleTimeout::new(stream, idle));
                    let conn = builder.serve_connection_with_upgrades(io, svc);
                    drive(conn, |c| c.graceful_shutdown(), &activity, idle, &closing).await
                }
                None => {
                    // Plain HTTP/2 (h2c) is for proxies on the same network: initial windows.
                    set_windows(&mut builder, &grants.initial());
                    let io = TokioIo::new(IdleTimeout::new(tcp, idle));
                    let conn = builder.serve_connection_with_upgrades(io, svc);
                    drive(conn, |c| c.graceful_shutdown(), &activity, idle, &closing).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    closing.cancel();
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            connections = conns.len(),
            "grace period over; cancelling the remaining requests"
        );
        conns.abort_all();
        streams.cancel.cancel();
    }
    while conns.join_next().await.is_some() {}
    // Cancelled requests ran their `Drop` clean-up (see crate::cleanup) when their task ended.
    streams.tracker.close();
    streams.tracker.wait().await;
}

/// A connection's HTTP/2 flow-control windows. An upload waiting for the buffer budget stops
/// reading its stream, and its window stays full: the connection's window leaves room for every
/// stream to do so and the rest still move (hyper's adaptive (BDP) windows size the connection's
/// window like a stream's, so one stalled stream would block the rest).
fn set_windows<E>(builder: &mut auto::Builder<E>, windows: &Windows) {
    builder
        .http2()
        .initial_stream_window_size(windows.stream)
        .initial_connection_window_size(windows.connection);
}

/// hyper's executor for HTTP/2 streams: tracked tasks that one token cancels.
#[derive(Clone, Default)]
struct StreamExecutor {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}

/// An I/O wrapper that fails a read once nothing has been read or written for `idle`: a
/// connection that sends nothing and receives nothing is closed, whatever HTTP state it is in.
pub struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
