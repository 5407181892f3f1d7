//! Logging and the lines `mtfu` prints: text or JSON log lines (`MTFU_LOG`, `MTFU_LOG_FORMAT`),
//! syslog priorities for systemd's journal, and `serve`'s banner.

use std::io::IsTerminal;

/// Logs: `serve` writes them to stdout (journald under systemd), the other commands to stderr
/// so that their own output stays clean. `MTFU_LOG` filters (default `info`);
/// `MTFU_LOG_FORMAT=json` writes one JSON object per line instead of `key=value` text.
pub fn init_logging(to_stdout: bool) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    // rustls warns once per connection whose client sends an IP address as SNI (wrk, some
    // libraries): harmless, and thousands of lines under load.
    let filter =
        EnvFilter::try_from_env("MTFU_LOG").unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let (writer, ansi) = if to_stdout {
        (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        )
    } else {
        (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        )
    };
    // Under systemd, stdout is the journal: each line carries its level as a syslog priority.
    let (writer, ansi) = if to_stdout && journal() {
        (BoxMakeWriter::new(JournalLines), false)
    } else {
        (writer, ansi)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    if std::env::var("MTFU_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Whether our output goes to systemd's journal (systemd sets `JOURNAL_STREAM` for a unit whose
/// stdout or stderr is the journal).
pub fn journal() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Log lines for the journal: each prefixed with `<N>`, its syslog priority (journald reads it,
/// with the unit's default `SyslogLevelPrefix=yes`), so `journalctl -p err` finds the errors.
struct JournalLines;

/// One event's text, written out with its priority when the event is done.
struct PriorityLine {
    priority: u8,
    text: Vec<u8>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for JournalLines {
    type Writer = PriorityLine;

    fn make_writer(&'a self) -> PriorityLine {
        PriorityLine {
            priority: 6,
            text: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> PriorityLine {
        let priority = match *meta.level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        PriorityLine {
            priority,
            text: Vec::new(),
        }
    }
}

impl std::io::Write for PriorityLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for PriorityLine {
    fn drop(&mut self) {
        use std::io::Write;
        let mut out = Vec::with_capacity(self.text.len() + 8);
        for line in self.text.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(format!("<{}>", self.priority).as_bytes());
            out.extend_from_slice(line);
        }
        let _ = std::io::stdout().lock().write_all(&out);
    }
}

/// A line of `serve`'s banner: on stdout, or a log event when the logs are JSON.
pub fn banner(text: String) {
    if json_logs() {
        tracing::info!(target: "mtfu::banner", "{text}");
    } else {
        println!("{text}");
    }
}

pub fn json_logs() -> bool {
    std::env::var("MTFU_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"))
}
