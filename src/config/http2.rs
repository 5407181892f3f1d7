//! `[http2]`: HTTP/2 flow control, which sets both how fast one upload stream can go over a
//! long round trip and how many received bytes one connection may hold unread.

use serde::{Deserialize, Serialize};

/// HTTP/2 flow-control windows and stream concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Config {
    /// Flow-control window of one stream, bytes: what a client may send on one request before
    /// mtfu has read it. One stream's upload rate is at most this per round trip (16 MiB over
    /// 50 ms: 335 MB/s), as a TCP receive buffer bounds an HTTP/1.1 upload.
    pub stream_window_bytes: u32,
    /// Requests (streams) open at once on one connection.
    pub max_concurrent_streams: u32,
}

impl Default for Http2Config {
    fn default() -> Self {
        Self {
            // 4 MiB: a 1 GiB server must survive a few dozen connections each holding its
            // whole connection window unread (36 MiB with 8 streams). Raise it for long-distance
            // uploads on a bigger machine (16 MiB: HTTP/2 at HTTP/1.1's pace over 50 ms).
            stream_window_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 8,
        }
    }
}

/// HTTP/2's largest window, 2^31 - 1.
const MAX_WINDOW: u64 = (1 << 31) - 1;

impl Http2Config {
    /// The connection's window: room for every stream to fill its own window (an upload waiting
    /// for the buffer budget stops reading, and its window stays full) and one more stream's
    /// worth, so a stalled stream never blocks its siblings. It is also the most body bytes one
    /// connection holds received but unread.
    pub fn connection_window_bytes(&self) -> u32 {
        let w = u64::from(self.stream_window_bytes) * (u64::from(self.max_concurrent_streams) + 1);
        w.min(MAX_WINDOW) as u32
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.stream_window_bytes < 65_535 {
            return Err((
                "http2.stream_window_bytes",
                "must be at least 65535 (HTTP/2's initial window)".into(),
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
        assert_eq!(d.connection_window_bytes(), 4 * 1024 * 1024 * 9);
        let big = Http2Config {
            stream_window_bytes: 1 << 30,
            max_concurrent_streams: 4,
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
