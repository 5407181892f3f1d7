//! HTTP/2 flow-control windows, bounded by `http2.window_budget`.
//!
//! A window is a promise to receive that many body bytes before reading any: an upload that
//! waits for the buffer budget stops reading, and what its client already sent sits in memory,
//! outside the buffers `limits.buffer_budget` counts. So the windows beyond HTTP/2's initial
//! 65535 bytes are held from a budget of their own for the connection's life: a connection gets
//! the configured `http2.stream_window_bytes` when `http2.window_budget` can pay for its
//! connection window (the stream's × (streams + 1), see [`connection_window`]), otherwise the
//! largest half, quarter, ... of it that it can, down to 65535 (the small constant every
//! connection may hold, like a TCP receive buffer). The bytes all connections may hold received
//! but unread are thus at most `http2.window_budget` plus 65535 × (streams + 1) per connection,
//! whatever the clients do; the windows' budget is apart from the upload buffers' so that a fast
//! long-distance upload does not take buffers from the others (and the other way round).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::http2::{Http2Config, MIN_WINDOW, connection_window};

/// Hands out windows to HTTP/2 connections from `http2.window_budget`.
pub struct WindowGrants {
    /// The stream window a connection asks for first, and its streams.
    want: u32,
    streams: u32,
    /// `http2.window_budget`, and what connections hold of it now.
    capacity: u64,
    held: Arc<AtomicU64>,
}

/// One connection's windows, and what they hold of the window budget (given back on drop).
pub struct Windows {
    pub stream: u32,
    pub connection: u32,
    _paid: Option<Paid>,
}

/// Bytes of the window budget held by one connection.
struct Paid {
    bytes: u64,
    held: Arc<AtomicU64>,
}

impl Drop for Paid {
    fn drop(&mut self) {
        let left = self.held.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        metrics::gauge!("mtfu_http2_window_bytes").set(left as f64);
    }
}

impl WindowGrants {
    pub fn new(cfg: &Http2Config) -> Arc<Self> {
        Arc::new(Self {
            want: cfg.stream_window_bytes,
            streams: cfg.max_concurrent_streams,
            capacity: cfg.window_budget,
            held: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Bytes of `http2.window_budget` that open connections hold now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// HTTP/2's initial windows: what a connection gets when nothing is paid for (a plain-HTTP
    /// connection, or when the window budget is spent).
    pub fn initial(&self) -> Windows {
        Windows {
            stream: MIN_WINDOW,
            connection: connection_window(MIN_WINDOW, self.streams),
            _paid: None,
        }
    }

    /// The largest windows (the configured stream window, or a half, quarter, ... of it) that
    /// the window budget can pay for now, never waiting.
    pub fn grant(&self) -> Windows {
        let mut stream = self.want;
        while stream > MIN_WINDOW {
            let connection = connection_window(stream, self.streams);
            if let Some(paid) = self.pay(u64::from(connection)) {
                return Windows {
                    stream,
                    connection,
                    _paid: Some(paid),
                };
            }
            stream /= 2;
        }
        self.initial()
    }

    fn pay(&self, bytes: u64) -> Option<Paid> {
        let now = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h + bytes <= self.capacity).then_some(h + bytes)
            })
            .ok()?
            + bytes;
        metrics::gauge!("mtfu_http2_window_bytes").set(now as f64);
        Some(Paid {
            bytes,
            held: self.held.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u32 = 1024 * 1024;

    fn grants(budget: u64, stream: u32) -> Arc<WindowGrants> {
        // One stream: the connection's window is twice the stream's.
        WindowGrants::new(&Http2Config {
            stream_window_bytes: stream,
            max_concurrent_streams: 1,
            window_budget: budget,
        })
    }

    #[test]
    fn windows_take_at_most_the_window_budget_and_come_back() {
        let g = grants(32 << 20, 16 * MIB);
        let first = g.grant();
        assert_eq!((first.stream, first.connection), (16 * MIB, 32 * MIB));
        assert_eq!(g.held(), 32 << 20);
        // The budget is spent: the next connection gets HTTP/2's initial windows, unpaid.
        let second = g.grant();
        assert_eq!(second.stream, MIN_WINDOW);
        assert_eq!(g.held(), 32 << 20);
        drop(first);
        assert_eq!(g.held(), 0);
        assert_eq!(g.grant().stream, 16 * MIB);
    }

    #[test]
    fn a_connection_gets_the_largest_window_the_budget_can_pay_for() {
        let g = grants(36 << 20, 8 * MIB);
        let a = g.grant();
        let b = g.grant();
        assert_eq!((a.stream, b.stream), (8 * MIB, 8 * MIB));
        // What is left (4 MiB) pays for a smaller window.
        let c = g.grant();
        assert_eq!((c.stream, c.connection), (2 * MIB, 4 * MIB));
        assert_eq!(g.held(), 36 << 20);
        // Nothing is left: the next gets the initial windows, unpaid.
        assert_eq!(g.grant().stream, MIN_WINDOW);
    }
}
