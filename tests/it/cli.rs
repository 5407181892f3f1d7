//! The `mtfu` binary itself: tenant management, init-data, gc, and a child server for tests
//! that must kill the process.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

/// Run `mtfu ARGS` on the data directory `dir`, feeding `stdin`; returns stdout. Panics on
/// failure, with stderr.
pub fn mtfu(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(args)
        .env("MTFU_SERVER__DATA_DIR", dir)
        .env("MTFU_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mtfu");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("mtfu runs");
    assert!(
        out.status.success(),
        "mtfu {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mtfu serve` as a child process on an ephemeral port.
pub struct ChildServer {
    proc: std::process::Child,
    port: u16,
    pub client: reqwest::Client,
}

impl ChildServer {
    pub fn start(dir: &Path) -> ChildServer {
        Self::start_with(dir, &[])
    }

    /// Start `mtfu serve` on `dir` with extra environment variables (`MTFU_...` settings).
    pub fn start_with(dir: &Path, env: &[(&str, String)]) -> ChildServer {
        let mut proc = Command::new(env!("CARGO_BIN_EXE_mtfu"))
            .arg("serve")
            .env("MTFU_SERVER__DATA_DIR", dir)
            .env("MTFU_SERVER__LISTEN", "127.0.0.1:0")
            .env("MTFU_SERVER__METRICS_LISTEN", "127.0.0.1:0")
            .env("MTFU_LIMITS__MAX_FILE_SIZE", "1073741824")
            .env(
                "MTFU_LOG",
                std::env::var("MTFU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mtfu serve");
        let stdout = proc.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut port = 0;
        for line in lines.by_ref() {
            let line = line.expect("line");
            if let Some(addr) = line.split("listening on https://").nth(1) {
                port = addr
                    .rsplit(':')
                    .next()
                    .expect("port")
                    .parse()
                    .expect("port");
                break;
            }
        }
        // Keep reading, so the server never writes into a closed pipe; MTFU_TEST_CHILD_LOG=1
        // shows what it logs (set MTFU_LOG too).
        let show = std::env::var_os("MTFU_TEST_CHILD_LOG").is_some();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if show {
                    eprintln!("[mtfu] {line}");
                }
            }
        });
        assert_ne!(port, 0, "mtfu serve did not report its address");
        ChildServer {
            proc,
            port,
            client: crate::helpers::client_for(dir),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    pub async fn login(&self, user: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/token/"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .expect("token request")
    }

    pub async fn token(&self, user: &str) -> String {
        let r = self.login(user, "test").await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.expect("json");
        v["access"].as_str().expect("access").to_owned()
    }

    /// Send SIGTERM and wait (up to `limit`) for the process to exit; its exit status.
    pub async fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.proc.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.proc.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mtfu did not exit within {limit:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill9(&self) {
        let pid = self.proc.id().to_string();
        let ok = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

#[tokio::test]
async fn tenants_are_managed_from_the_command_line_with_the_password_on_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Where there is no store yet, an admin command makes one only when asked.
    let refused = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(["tenant", "list"])
        .env("MTFU_SERVER__DATA_DIR", dir.path())
        .env("MTFU_LOG", "warn")
        .output()
        .expect("mtfu runs");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("no metadata store") && err.contains("--init"),
        "{err}"
    );
    assert!(
        !dir.path().join("mtfu.sqlite3").exists(),
        "nothing was created"
    );
    let out = mtfu(
        dir.path(),
        &["--init", "tenant", "add", "alice"],
        Some("s3cret pass\n"),
    );
    assert!(out.contains("tenant alice added"), "{out}");
    mtfu(dir.path(), &["init-data"], None);
    let list = mtfu(dir.path(), &["tenant", "list"], None);
    assert!(list.contains("alice") && list.contains("john10"), "{list}");

    let server = ChildServer::start(dir.path());
    assert_eq!(server.login("alice", "s3cret pass").await.status(), 200);
    assert_eq!(server.login("alice", "wrong").await.status(), 401);
    assert_eq!(server.login("john7", "test").await.status(), 200);
    drop(server);

    mtfu(
        dir.path(),
        &["tenant", "passwd", "alice"],
        Some("newpass\n"),
    );
    mtfu(dir.path(), &["tenant", "remove", "john7"], None);
    let server = ChildServer::start(dir.path());
    assert_eq!(server.login("alice", "newpass").await.status(), 200);
    assert_eq!(server.login("john7", "test").await.status(), 401);
}

#[test]
fn a_bad_config_is_a_one_line_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(["migrate"])
        .env("MTFU_SERVER__DATA_DIR", dir.path())
        .env("MTFU_LIMITS__MAX_FILE_SIZE", "huge")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limits.max_file_size"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn the_readme_walkthrough_runs_verbatim() {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("<!-- walkthrough:start -->")
        .nth(1)
        .and_then(|s| s.split("<!-- walkthrough:end -->").next())
        .expect("walkthrough markers in README.md");
    let script: String = block
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().expect("tempdir");
    mtfu(dir.path(), &["init-data"], None);
    let server = ChildServer::start(dir.path());
    // The one change: the port this test's server got instead of the default 8443.
    let script = script.replace("localhost:8443", &format!("localhost:{}", server.port));
    let work = tempfile::tempdir().expect("workdir");
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(work.path())
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("File uploaded successfully").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("\"name\":\"product.txt\""), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .ends_with(r#"{"count":0,"files":[],"num_pages":1,"page_range":[1]}"#),
        "john2 sees none of john1's private files: {stdout}"
    );
}
