//! What an operator sees of the binary: log lines journald can rank, JSON logs that are all
//! JSON, one-line errors that say each thing once.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// `mtfu serve` with `env`, its stdout lines until one contains `until` (at most 200 lines),
/// then stopped.
fn serve_lines(env: &[(&str, &str)], until: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut proc = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(["serve", "--init-data"])
        .env("MTFU_SERVER__DATA_DIR", dir.path())
        .env("MTFU_SERVER__LISTEN", "127.0.0.1:0")
        .env("MTFU_SERVER__METRICS_LISTEN", "off")
        .env("MTFU_LOG", "debug")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mtfu serve");
    let stdout = proc.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take(200)
    {
        let done = line.contains(until);
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = proc.kill();
    let _ = proc.wait();
    lines
}

#[test]
fn under_systemd_every_log_line_carries_its_priority() {
    let lines = serve_lines(&[("JOURNAL_STREAM", "8:12345")], "listening on https://");
    assert!(
        lines.iter().any(|l| l.contains("listening on https://")),
        "{lines:#?}"
    );
    let logged: Vec<&String> = lines.iter().filter(|l| l.starts_with('<')).collect();
    assert!(!logged.is_empty(), "{lines:#?}");
    for l in &logged {
        let p = l.as_bytes()[1];
        assert!(matches!(p, b'3'..=b'7') && l.as_bytes()[2] == b'>', "{l}");
    }
    assert!(logged.iter().any(|l| l.starts_with("<6>")), "{lines:#?}");
    // A startup failure on stderr is an error.
    let out = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(["--config", "/nonexistent/mtfu.toml", "migrate"])
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .expect("mtfu runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("<3>mtfu: "), "{err}");
}

#[test]
fn with_json_logs_every_line_is_json() {
    let lines = serve_lines(&[("MTFU_LOG_FORMAT", "json")], "listening on https://");
    assert!(
        lines.iter().any(|l| l.contains("listening on https://")),
        "{lines:#?}"
    );
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v.get("level").is_some(), "{l}");
    }
}

#[test]
fn a_startup_error_says_its_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A data directory that cannot be created: a file stands where its parent should be.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(["migrate"])
        .env("MTFU_SERVER__DATA_DIR", blocker.join("data"))
        .output()
        .expect("mtfu runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

#[test]
fn a_quota_in_fractions_of_a_unit_is_accepted_and_a_bad_one_says_what_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::cli::mtfu(dir.path(), &["init-data"], None);
    let out = crate::cli::mtfu(
        dir.path(),
        &["tenant", "quota", "john1", "--bytes", "1.5G"],
        None,
    );
    assert!(out.contains("1610612736") || out.contains("1.5"), "{out}");
    let bad = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(["tenant", "quota", "john1", "--bytes", "1.5Q"])
        .env("MTFU_SERVER__DATA_DIR", dir.path())
        .output()
        .expect("mtfu runs");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("K, M, G or T"), "{err}");
}

#[test]
fn tenant_list_shows_usage_and_quotas_and_speaks_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::cli::mtfu(dir.path(), &["init-data"], None);
    crate::cli::mtfu(
        dir.path(),
        &["tenant", "quota", "john2", "--files", "7"],
        None,
    );
    let table = crate::cli::mtfu(dir.path(), &["tenant", "list"], None);
    assert!(
        table.contains("QUOTA_BYTES") && table.contains("john10"),
        "{table}"
    );
    let header = table.lines().next().expect("a header");
    assert!(
        header.contains("CREATED") && header.trim_end().ends_with("LAST_LOGIN"),
        "{header}"
    );
    // Never logged in: "-"; created: to the second.
    let john1 = table
        .lines()
        .find(|l| l.starts_with("john1 "))
        .expect("john1");
    assert!(john1.trim_end().ends_with(" -"), "{john1}");
    assert!(john1.contains("Z "), "{john1}");
    let json = crate::cli::mtfu(dir.path(), &["tenant", "list", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    let rows = v.as_array().expect("array");
    assert_eq!(rows.len(), 10);
    let john2 = rows.iter().find(|r| r["name"] == "john2").expect("john2");
    assert_eq!(john2["quota_files"], 7);
    assert_eq!(john2["files"], 0);
    assert_eq!(john2["bytes"], 0);
    assert!(john2["quota_bytes"].is_null());
    assert!(john2["last_login"].is_null(), "never logged in");
    let created = john2["created"].as_str().expect("created");
    assert!(mtfu::domain::parse_rfc3339(created).is_some(), "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_has_help_and_type_and_counters_exist_from_the_start() {
    let app = crate::helpers::spawn_app().await;
    let text = app.metrics_text().await;
    for name in [
        "mtfu_upload_bytes_total",
        "mtfu_download_bytes_total",
        "mtfu_failed_logins_total",
        "mtfu_uploads_in_flight",
        "mtfu_buffer_bytes_in_use",
        "mtfu_buffer_bytes_high_water",
        "mtfu_buffer_bytes_budget",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} has no sample: {text}"
        );
    }
    // Labelled series: described as soon as they exist (a request has been answered here).
    let _ = app.client.get(app.url("/healthz")).send().await;
    let text = app.metrics_text().await;
    for name in ["mtfu_requests_total", "mtfu_request_duration_seconds"] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
    }
}
