//! `[http2]`: HTTP/2 flow control, which sets both how fast one upload stream can go over a
//! long round trip and how many received bytes one connection may hold unread. The windows are
//! paid for from `window_budget` (see [`crate::http::windows`]).

use serde::{Deserialize, Serialize};

/// HTTP/2 flow-control windows and stream concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Config {
    /// Flow-control window of one stream, bytes: what a client may send on one request before
    /// mtfu has read it. One stream's upload rate is at most about half of this per round trip
    /// (32 MiB over 50 ms: HTTP/1.1's pace), as a TCP receive buffer bounds an HTTP/1.1 upload.
    /// A connection gets it only while `window_budget` can pay for its windows (its connection
    /// window is this × (streams + 1)); otherwise the largest half, quarter, ... that costs at
    /// most an eighth of what is left of the budget (all of it when no connection holds any),
    /// down to HTTP/2's 65535.
    pub stream_window_bytes: u32,
    /// Requests (streams) open at once on one connection.
    pub max_concurrent_streams: u32,
    /// The most all HTTP/2 connections' windows beyond the initial 65535 may hold together,
    /// bytes: with `limits.buffer_budget`, the bound on body bytes held in memory. The default
    /// pays for one connection with the full default windows (32 MiB × 5 = 160 MiB) and smaller
    /// ones beside.
    pub window_budget: u64,
}

impl Default for Http2Config {
    fn default() -> Self {
        Self {
            stream_window_bytes: 32 * 1024 * 1024,
            max_concurrent_streams: 4,
            window_budget: 192 * 1024 * 1024,
        }
    }
}

/// HTTP/2's initial window, the least a connection's streams get (and not paid for from the
/// budget: like a TCP receive buffer, it is the small constant every connection may hold).
pub const MIN_WINDOW: u32 = 65_535;

/// HTTP/2's largest window, 2^31 - 1.
const MAX_WINDOW: u64 = (1 << 31) - 1;

/// The connection's window for a stream window of `stream` bytes and `streams` streams: room
/// for every stream to fill its own window and one more stream's worth. An upload waiting for
/// the buffer budget stops reading and its window stays full; were the connection's window
/// smaller, streams waiting for the budget could take all of it, and the streams holding the
/// budget could then never receive the bytes that finish their parts and give it back (a
/// deadlock). It is also the most body bytes one connection holds received but unread.
pub fn connection_window(stream: u32, streams: u32) -> u32 {
    (u64::from(stream) * (u64::from(streams) + 1)).min(MAX_WINDOW) as u32
}

impl Http2Config {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.stream_window_bytes < MIN_WINDOW {
            return Err((
                "http2.stream_window_bytes",
                format!("must be at least {MIN_WINDOW} (HTTP/2's initial window)"),
            ));
        }
        if self.max_concurrent_streams == 0 {
            return Err(("http2.max_concurrent_streams", "must be at least 1".into()));
        }
        let conn =
            u64::from(self.stream_window_bytes) * (u64::from(self.max_concurrent_streams) + 1);
        if conn > MAX_WINDOW {
            return Err((
                "http2.stream_window_bytes",
                format!(
                    "times (http2.max_concurrent_streams + 1) must be at most {MAX_WINDOW} \
                     (HTTP/2's largest connection window); it is {conn}"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_window_leaves_a_stream_of_room_and_stays_in_range() {
        let d = Http2Config::default();
        assert!(d.validate().is_ok());
        assert_eq!(
            connection_window(d.stream_window_bytes, d.max_concurrent_streams),
            32 * 1024 * 1024 * 5
        );
        let big = Http2Config {
            stream_window_bytes: 1 << 30,
            max_concurrent_streams: 4,
            ..Http2Config::default()
        };
        assert_eq!(
            big.validate().expect_err("too big").0,
            "http2.stream_window_bytes"
        );
        let small = Http2Config {
            stream_window_bytes: 1024,
            ..Http2Config::default()
        };
        assert!(small.validate().is_err());
    }
}
