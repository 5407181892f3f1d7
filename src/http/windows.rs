//! HTTP/2 flow-control windows, bounded by `http2.window_budget`.
//!
//! A window is a promise to receive that many body bytes before reading any: an upload that
//! waits for the buffer budget stops reading, and what its client already sent sits in memory,
//! outside the buffers `limits.buffer_budget` counts. So the windows beyond HTTP/2's initial
//! 65535 bytes are held from a budget of their own for the connection's life: a connection gets
//! the configured `http2.stream_window_bytes` when `http2.window_budget` can pay for its
//! connection window (the stream's × (streams + 1), see [`connection_window`]), otherwise the
//! largest half, quarter, ... of it that costs at most an eighth of what is left
//! ([`SHARE_OF_REST`]; all of it when no connection holds any), down to 65535 (the small
//! constant every connection may hold, like a TCP receive buffer). The eighth is what keeps the
//! budget shared: a grant is held for the connection's life, so were the rest handed out
//! greedily (the largest window that still fits), the second and third connections beside a
//! full one would take it all and every later connection would move 64 KiB per round trip (16
//! concurrent curl uploads took 1.4× as long as with the shares). The bytes all connections may
//! hold received but unread are thus at most `http2.window_budget` plus 65535 × (streams + 1)
//! per connection, whatever the clients do; the windows' budget is apart from the upload
//! buffers' so that a fast long-distance upload does not take buffers from the others (and the
//! other way round).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::http2::{Http2Config, MIN_WINDOW, connection_window};

/// A connection that cannot have the configured windows gets smaller ones costing at most
/// this fraction (1/8) of the window budget left: with the defaults (192 MiB, a full grant of
/// 160 MiB), a second connection gets 512 KiB stream windows, and about twenty connections
/// get 128 KiB or more, where the greedy rule gave 4 MiB, 2 MiB, 256 KiB, 128 KiB and then
/// 64 KiB to all the rest.
pub const SHARE_OF_REST: u64 = 8;

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

    /// The configured windows if the window budget can pay for them now, otherwise the
    /// largest half, quarter, ... of them that costs at most [`SHARE_OF_REST`] of what is left
    /// (of all of it, when nothing is held); never waiting.
    pub fn grant(&self) -> Windows {
        let mut stream = self.want;
        let mut share = 1;
        while stream > MIN_WINDOW {
            let connection = connection_window(stream, self.streams);
            if let Some(paid) = self.pay(u64::from(connection), share) {
                return Windows {
                    stream,
                    connection,
                    _paid: Some(paid),
                };
            }
            stream /= 2;
            share = SHARE_OF_REST;
        }
        self.initial()
    }

    /// Holds `bytes` of the window budget if they are at most 1/`share` of what is left, or,
    /// when no connection holds any of it, if they fit (a budget set below one full grant then
    /// still gives a lone connection the largest windows it can pay for).
    fn pay(&self, bytes: u64, share: u64) -> Option<Paid> {
        let now = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                let rest = self.capacity.saturating_sub(h);
                let share = if h == 0 { 1 } else { share };
                (bytes.saturating_mul(share) <= rest).then_some(h + bytes)
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
    fn a_connection_gets_the_full_window_or_a_share_of_what_is_left() {
        let g = grants(36 << 20, 8 * MIB);
        let a = g.grant();
        let b = g.grant();
        assert_eq!((a.stream, b.stream), (8 * MIB, 8 * MIB));
        // What is left (4 MiB) pays for a smaller window costing at most an eighth of it.
        let c = g.grant();
        assert_eq!((c.stream, c.connection), (MIB / 4, MIB / 2));
        assert_eq!(g.held(), (32 << 20) + u64::from(MIB / 2));
        // Nothing is left: the next gets the initial windows, unpaid.
        let g = grants(32 << 20, 8 * MIB);
        let _full = (g.grant(), g.grant());
        assert_eq!(g.grant().stream, MIN_WINDOW);
    }

    /// With the defaults, one connection gets the full windows and the next twenty still get
    /// at least twice HTTP/2's initial window (the greedy rule left 64 KiB from the fifth on).
    #[test]
    fn beside_a_full_window_the_rest_of_the_budget_is_shared() {
        let g = WindowGrants::new(&Http2Config::default());
        let held: Vec<Windows> = (0..21).map(|_| g.grant()).collect();
        assert_eq!(held[0].stream, Http2Config::default().stream_window_bytes);
        assert_eq!(held[1].stream, MIB / 2);
        assert!(held.iter().all(|w| w.stream >= 2 * MIN_WINDOW), "{:?}", {
            held.iter().map(|w| w.stream).collect::<Vec<_>>()
        });
        // Shares shrink as the budget empties, and never overdraw it.
        assert!(held.windows(2).all(|p| p[0].stream >= p[1].stream));
        assert!(g.held() <= Http2Config::default().window_budget);
    }

    /// A budget below one full grant: the first connection, finding it unused, gets the largest
    /// windows that fit; the next a share of the rest.
    #[test]
    fn a_lone_connection_gets_the_largest_windows_a_small_budget_can_pay_for() {
        let g = grants(20 << 20, 16 * MIB);
        let a = g.grant();
        assert_eq!((a.stream, a.connection), (8 * MIB, 16 * MIB));
        // 4 MiB left: windows costing at most 512 KiB.
        assert_eq!(g.grant().stream, MIB / 4);
        drop(a);
    }
}
