//! HTTP/2 flow-control windows paid for from the global buffer budget.
//!
//! A window is a promise to receive that many body bytes before reading any: an upload that
//! waits for the budget stops reading, and what its client already sent sits in memory, outside
//! the buffers the budget counts. So the windows beyond HTTP/2's initial 65535 bytes are held
//! from `limits.buffer_budget` for the connection's life: a connection gets the configured
//! `http2.stream_window_bytes` when the budget can pay for its connection window (the stream's
//! × (streams + 1), see [`connection_window`]), otherwise the largest half, quarter, ... of it that it can, down to 65535 (the
//! small constant every connection may hold, like a TCP receive buffer). Windows together never
//! take more than half of the budget, so uploads always keep the other half.

use std::sync::Arc;

use crate::config::http2::{Http2Config, MIN_WINDOW, connection_window};
use crate::upload::{Budget, BudgetPermit};

/// Hands out windows to HTTP/2 connections from the buffer budget.
pub struct WindowGrants {
    budget: Arc<Budget>,
    /// The stream window a connection asks for first, and its streams.
    want: u32,
    streams: u32,
    /// The most all windows together may hold: half the budget.
    share: u64,
}

/// One connection's windows, and the budget paying for them (given back on drop).
pub struct Windows {
    pub stream: u32,
    pub connection: u32,
    _paid: Option<BudgetPermit>,
}

impl WindowGrants {
    pub fn new(budget: Arc<Budget>, cfg: &Http2Config) -> Arc<Self> {
        let share = budget.capacity() / 2;
        Arc::new(Self {
            budget,
            want: cfg.stream_window_bytes,
            streams: cfg.max_concurrent_streams,
            share,
        })
    }

    /// HTTP/2's initial windows: what a connection gets when nothing is paid for (a plain-HTTP
    /// connection, or when the budget's window share is spent).
    pub fn initial(&self) -> Windows {
        Windows {
            stream: MIN_WINDOW,
            connection: connection_window(MIN_WINDOW, self.streams),
            _paid: None,
        }
    }

    /// The largest windows (the configured stream window, or a half, quarter, ... of it) that
    /// the budget can pay for now, never waiting.
    pub fn grant(&self) -> Windows {
        let mut stream = self.want;
        while stream > MIN_WINDOW {
            let connection = connection_window(stream, self.streams);
            if let Some(paid) = self
                .budget
                .try_acquire_windows(u64::from(connection), self.share)
            {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u32 = 1024 * 1024;

    fn grants(budget: u64, stream: u32) -> Arc<WindowGrants> {
        // One stream: the connection's window is twice the stream's.
        let cfg = Http2Config {
            stream_window_bytes: stream,
            max_concurrent_streams: 1,
        };
        WindowGrants::new(Budget::new(budget), &cfg)
    }

    #[test]
    fn windows_take_at_most_half_the_budget_and_come_back() {
        let g = grants(64 << 20, 16 * MIB);
        let first = g.grant();
        assert_eq!((first.stream, first.connection), (16 * MIB, 32 * MIB));
        assert_eq!(g.budget.windows(), 32 << 20);
        assert_eq!(g.budget.in_use(), 0, "upload buffers are counted apart");
        // The share is spent: the next connection gets HTTP/2's initial windows, unpaid.
        let second = g.grant();
        assert_eq!(second.stream, MIN_WINDOW);
        assert_eq!(g.budget.windows(), 32 << 20);
        drop(first);
        assert_eq!(g.budget.windows(), 0);
        assert_eq!(g.grant().stream, 16 * MIB);
    }

    #[tokio::test]
    async fn a_connection_gets_the_largest_window_the_budget_can_pay_for() {
        let g = grants(128 << 20, 8 * MIB);
        let a = g.grant();
        let b = g.grant();
        assert_eq!((a.stream, b.stream), (8 * MIB, 8 * MIB));
        // Uploads hold most of the rest: what is left (4 MiB) pays for a smaller window.
        let uploads = g.budget.acquire(92 << 20).await;
        let c = g.grant();
        assert_eq!((c.stream, c.connection), (2 * MIB, 4 * MIB));
        assert_eq!(g.budget.in_use() + g.budget.windows(), 128 << 20);
        // Nothing is left: the next gets the initial windows, unpaid.
        assert_eq!(g.grant().stream, MIN_WINDOW);
        drop(uploads);
    }
}
