//! Interop with tuspy (PyPI `tuspy`, module `tusclient`), a tus client nobody here wrote, driven
//! through `tests/tus/interop.py` against the real `mtfu` binary, which is killed and restarted
//! in the middle.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::helpers::client_for;
use crate::tus::{data, sha256_hex};

const MIB: usize = 1024 * 1024;

/// `mtfu serve` as a child process on a fixed port, so that a restarted server answers at the
/// same upload URLs.
struct MtfuChild {
    proc: std::process::Child,
}

impl MtfuChild {
    fn start(dir: &Path, port: u16) -> MtfuChild {
        use std::io::BufRead;
        // The port of a killed server can take a moment to be free again.
        for _ in 0..50 {
            let mut proc = std::process::Command::new(env!("CARGO_BIN_EXE_mtfu"))
                .arg("serve")
                .env("MTFU_SERVER__DATA_DIR", dir)
                .env("MTFU_SERVER__LISTEN", format!("127.0.0.1:{port}"))
                .env("MTFU_LIMITS__MAX_FILE_SIZE", (100 * MIB).to_string())
                // A PATCH cut short by the kill holds its upload this long.
                .env("MTFU_TUS__LEASE_SECS", "2")
                .env("MTFU_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn mtfu serve");
            let stdout = proc.stdout.take().expect("stdout");
            let mut lines = std::io::BufReader::new(stdout).lines();
            let up = lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.contains("listening on https://"));
            if up {
                std::thread::spawn(move || lines.for_each(drop));
                return MtfuChild { proc };
            }
            let _ = proc.wait();
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("mtfu serve did not start on port {port}");
    }

    fn kill9(mut self) {
        let _ = self.proc.kill(); // SIGKILL: no graceful anything.
        let _ = self.proc.wait();
    }
}

impl Drop for MtfuChild {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

fn interop_script(base: &str, token: &str, dir: &Path, work: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("python3");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tus/interop.py"))
        .args(["--base", base, "--token", token])
        .arg("--ca")
        .arg(dir.join("tls/self-signed.crt"))
        .arg("--file")
        .arg(work.join("interop.bin"))
        .arg("--storage")
        .arg(work.join("tus-urls.json"))
        .env("REQUESTS_CA_BUNDLE", dir.join("tls/self-signed.crt"))
        .env("NO_PROXY", "localhost,127.0.0.1")
        .env("no_proxy", "localhost,127.0.0.1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// tuspy (`pip install tuspy`) uploads 50 MiB in 1 MiB chunks with sha1 checksums to the real
/// binary: it stops after 20 MiB (the client interrupted), mtfu is killed (-9) and restarted,
/// a second run resumes from tuspy's URL storage, mtfu is killed and restarted again at 35 MiB
/// in the middle of its chunks, tuspy retries; then the file's sha256 is checked, listed and
/// downloaded. Skipped when tuspy is not installed, unless `MTFU_TEST_REQUIRE_TOOLS=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(mtfu_no_tuspy, ignore = "tuspy is not installed (pip install tuspy)")]
async fn tuspy_uploads_through_interruptions_and_restarts() {
    let has_tuspy = std::process::Command::new("python3")
        .args(["-c", "import tusclient"])
        .output()
        .is_ok_and(|o| o.status.success());
    // The build ignores this test where it finds no tuspy (tests/support/detect.rs).
    assert!(has_tuspy, "tuspy is required: pip install tuspy");
    let dir = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("workdir");
    std::fs::write(work.path().join("interop.bin"), data(50 * MIB, 31)).expect("write file");
    crate::cli::mtfu(dir.path(), &["init-data"], None);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let base = format!("https://localhost:{port}");
    let mut server = MtfuChild::start(dir.path(), port);
    let client = client_for(dir.path());
    let token: Value = client
        .post(format!("{base}/api/token/"))
        .json(&serde_json::json!({"username": "john1", "password": "test"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["access"].as_str().expect("access").to_owned();

    // Run 1: the client stops after 20 chunks.
    let out = interop_script(&base, &token, dir.path(), work.path())
        .args(["--stop-at", &(20 * MIB).to_string()])
        .output()
        .await
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains(&format!("interrupted at offset {}", 20 * MIB)),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.kill9();
    server = MtfuChild::start(dir.path(), port);

    // Run 2: resumed from the URL storage; the server dies again half-way.
    let mut child = interop_script(&base, &token, dir.path(), work.path())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let (mut seen, mut restarted) = (String::new(), false);
    while let Some(line) = lines.next_line().await.expect("read") {
        seen.push_str(&line);
        seen.push('\n');
        let offset = line
            .strip_prefix("offset ")
            .and_then(|n| n.parse::<usize>().ok());
        if !restarted && offset.is_some_and(|o| o >= 35 * MIB) {
            server.kill9();
            server = MtfuChild::start(dir.path(), port);
            restarted = true;
        }
    }
    let status = child.wait().await.expect("python3 ends");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut err).await;
    }
    assert!(status.success(), "{seen}\n{err}");
    assert!(restarted, "{seen}");
    assert!(
        seen.contains(&format!("at offset {}", 20 * MIB)),
        "resumed where run 1 stopped: {seen}"
    );
    let want = sha256_hex(&data(50 * MIB, 31));
    assert!(seen.contains(&format!("sha256 ok {want}")), "{seen}\n{err}");
    for l in seen.lines().filter(|l| !l.starts_with("offset ")) {
        eprintln!("tuspy: {l}");
    }
    drop(server);
}
