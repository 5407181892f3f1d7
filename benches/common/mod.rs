//! What the benchmark harnesses share: settings from the environment, the pseudo-random test
//! pattern, and an in-process `s3s-fs` server on loopback.

#![allow(dead_code)] // Each harness uses its own subset.

pub mod delay;
pub mod load;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub const BUCKET: &str = "mtfu-bench";
pub const ACCESS_KEY: &str = "mtfu-bench-access";
pub const SECRET_KEY: &str = "mtfu-bench-secret";
pub const MIB: u64 = 1024 * 1024;

/// The mtfu binary to run: `MTFU_BIN`, else the release build, which must exist.
pub fn mtfu_bin() -> Result<PathBuf> {
    let bin =
        PathBuf::from(std::env::var("MTFU_BIN").unwrap_or_else(|_| "target/release/mtfu".into()));
    if !bin.exists() {
        bail!(
            "{} not found: run `cargo build --release` first (or set MTFU_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

/// `name` from the environment as a number, else `default`.
pub fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}

/// MB/s, MB = 10^6 bytes.
pub fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// One pseudo-random MiB (xorshift); test files are this MiB repeated, so nothing more is
/// held in memory.
pub fn pattern() -> Bytes {
    let len = MIB as usize;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

/// An `s3s-fs` server on a loopback port serving `root` (bucket [`BUCKET`], static keys); its
/// endpoint URL.
pub async fn start_s3(root: &Path) -> Result<String> {
    std::fs::create_dir(root.join(BUCKET))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("s3s-fs: {e:?}"))?;
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = b.build();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let svc = service.clone();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// `mtfu` with the settings every harness uses: a data directory, an ephemeral loopback port,
/// files up to `max_file_size`, no periodic gc, and, given an endpoint, the `s3s-fs` bucket.
pub fn mtfu_command(bin: &Path, dir: &Path, max_file_size: u64, s3: Option<&str>) -> Command {
    let mut c = Command::new(bin);
    // MTFU_BIN and MTFU_BIN_BEFORE are the harnesses', not configuration keys of mtfu's.
    c.env_remove("MTFU_BIN")
        .env_remove("MTFU_BIN_BEFORE")
        .env("MTFU_SERVER__DATA_DIR", dir)
        .env("MTFU_SERVER__LISTEN", "127.0.0.1:0")
        .env("MTFU_SERVER__METRICS_LISTEN", "127.0.0.1:0")
        .env("MTFU_SERVER__BODY_READ_TIMEOUT_SECS", "600")
        .env("MTFU_LIMITS__MAX_FILE_SIZE", max_file_size.to_string())
        .env("MTFU_GC__INTERVAL_SECS", "0");
    if let Some(s3) = s3 {
        c.env("MTFU_BLOBS__BACKEND", "s3")
            .env("MTFU_BLOBS__S3__BUCKET", BUCKET)
            .env("MTFU_BLOBS__S3__REGION", "us-east-1")
            .env("MTFU_BLOBS__S3__ENDPOINT_URL", s3)
            .env("MTFU_BLOBS__S3__FORCE_PATH_STYLE", "true")
            .env("MTFU_BLOBS__S3__ACCESS_KEY_ID", ACCESS_KEY)
            .env("MTFU_BLOBS__S3__SECRET_ACCESS_KEY", SECRET_KEY);
    }
    c
}

/// A running `mtfu serve` child with the demo tenants, and an HTTP/1.1 client trusting it;
/// killed when dropped.
pub struct Mtfu {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Mtfu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mtfu {
    /// `init-data`, then `serve`, both built by `command` for a fresh data directory.
    pub fn start(bin: &Path, command: impl Fn(&Path) -> Command) -> Result<Mtfu> {
        let dir = tempfile::tempdir()?;
        let out = command(dir.path())
            .arg("init-data")
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "mtfu init-data: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log = std::fs::File::create(dir.path().join("mtfu.log"))?;
        let mut child = command(dir.path())
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Read stdout to the end, or mtfu dies of SIGPIPE on its next line.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.path().join("mtfu.log")).unwrap_or_default();
                bail!("mtfu serve did not say where it listens:\n{log}");
            }
        };
        let pem = std::fs::read(dir.path().join("tls/self-signed.crt"))?;
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .http1_only()
            .build()?;
        Ok(Mtfu {
            child,
            base,
            client,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's data directory (its self-signed certificate is in `tls/`).
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    /// The child's peak RSS so far (VmHWM), MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        proc_mib(self.pid(), "VmHWM")
    }

    /// `POST /api/upload` of `part` (named `name`) to `resource`/`resource_id` with `token`;
    /// an error unless it is answered 2xx.
    pub async fn upload_part(
        &self,
        token: &str,
        resource: &str,
        resource_id: &str,
        name: &str,
        part: reqwest::multipart::Part,
    ) -> Result<()> {
        let form = reqwest::multipart::Form::new()
            .text("resource", resource.to_owned())
            .text("resource_id", resource_id.to_owned())
            .part("file", part.file_name(name.to_owned()));
        let r = self
            .client
            .post(format!("{}/api/upload", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            bail!(
                "upload {name}: {status} {}",
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// An access token of demo tenant `user`.
    pub async fn token(&self, user: &str) -> Result<String> {
        let r = self
            .client
            .post(format!("{}/api/token/", self.base))
            .json(&serde_json::json!({"username": user, "password": "test"}))
            .send()
            .await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        match body["access"].as_str() {
            Some(t) if status.is_success() => Ok(t.to_owned()),
            _ => bail!("token for {user}: {status} {body}"),
        }
    }
}

/// A `/proc/PID/status` field, kB → MiB.
pub fn proc_mib(pid: u32, field: &str) -> Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("{field} in /proc/{pid}/status"))?;
    let kb: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
    Ok(kb / 1024.0)
}
