//! The catalogue of mtfu's metrics: every metric is described once here (Prometheus `# HELP` and
//! `# TYPE` lines), and those without labels exist at zero from the start, so a scrape right
//! after boot shows every series a dashboard or alert refers to.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Describe every metric and create the unlabelled ones at zero. Called once, right after the
/// recorder is installed.
pub fn describe() {
    describe_counter!(
        "mtfu_requests_total",
        "Requests answered, by route name and status code."
    );
    describe_histogram!(
        "mtfu_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to the end of its response body, by route."
    );
    describe_counter!(
        "mtfu_request_body_bytes_total",
        Unit::Bytes,
        "Request body bytes read, by route."
    );
    describe_counter!(
        "mtfu_response_body_bytes_total",
        Unit::Bytes,
        "Response body bytes sent, by route."
    );
    describe_counter!(
        "mtfu_store_errors_total",
        "Store failures that reached a request, by store (metadata, blob) and kind."
    );
    for (name, help, unit) in [
        (
            "mtfu_upload_bytes_total",
            "File bytes received by uploads.",
            Unit::Bytes,
        ),
        (
            "mtfu_download_bytes_total",
            "File bytes sent by downloads.",
            Unit::Bytes,
        ),
        (
            "mtfu_failed_logins_total",
            "Logins refused: wrong credentials or throttled.",
            Unit::Count,
        ),
    ] {
        describe_counter!(name, unit, help);
        metrics::counter!(name).increment(0);
    }
    for (name, help, unit) in [
        (
            "mtfu_uploads_in_flight",
            "Uploads streaming now.",
            Unit::Count,
        ),
        (
            "mtfu_buffer_bytes_in_use",
            "Upload bytes held in memory now.",
            Unit::Bytes,
        ),
        (
            "mtfu_buffer_bytes_high_water",
            "Most upload bytes held in memory at once since start.",
            Unit::Bytes,
        ),
        (
            "mtfu_buffer_bytes_budget",
            "The upload buffer budget (limits.buffer_budget).",
            Unit::Bytes,
        ),
        (
            "mtfu_http2_window_bytes",
            "http2.window_budget held by HTTP/2 connections' flow-control windows (bytes they \
             may receive unread).",
            Unit::Bytes,
        ),
    ] {
        describe_gauge!(name, unit, help);
        metrics::gauge!(name).increment(0.0);
    }
}
