//! Resumable (tus) upload throughput and memory, next to the plain multipart upload of the same
//! bytes: mtfu (the release binary, a child process) on local disk and on S3 (`s3s-fs` on
//! loopback, in this process).
//!
//! ```text
//! cargo build --release && cargo bench --bench tus_upload
//! ```
//!
//! - `MTFU_BIN` is the mtfu binary (default `target/release/mtfu`; build it first);
//! - `SIZE_MIB` is the size of the file (default 1024);
//! - `STORES` is `local,s3` (default) or one of them.
//!
//! For each store, three uploads of the same `SIZE_MIB` bytes, each through a fresh mtfu child
//! with the default settings (64 MiB buffer budget, 8 MiB S3 parts): `POST /api/upload`
//! (multipart/form-data, streamed), then tus (`POST /api/v2/uploads`, then one `PATCH` after the
//! other) in 5 MiB chunks and in 1 MiB chunks. Printed: seconds, MB/s (MB = 10^6 bytes, from
//! the first request to the last answer) and the child's VmHWM (peak RSS, /proc/PID/status)
//! after start and after the upload. Each upload's sha256 as mtfu lists it is checked against
//! the bytes sent. Client connections are HTTP/1.1 and reused.

mod common;

use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use futures_util::Stream;
use reqwest::multipart::{Form, Part};
use sha2::{Digest, Sha256};

use common::{BUCKET, MIB, Mtfu, env_u64, mb_per_s, mtfu_bin, mtfu_command, pattern, start_s3};

/// Bytes `from..to` of the file, as a stream of slices of the pattern.
fn range_stream(
    from: u64,
    to: u64,
    pattern: Bytes,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let p = pattern.len() as u64;
    let mut at = from;
    futures_util::stream::iter(std::iter::from_fn(move || {
        if at >= to {
            return None;
        }
        let start = at % p;
        let n = (p - start).min(to - at);
        at += n;
        Some(Ok(pattern.slice(start as usize..(start + n) as usize)))
    }))
}

fn sha256_of(size: u64, pattern: &Bytes) -> String {
    let mut h = Sha256::new();
    let mut at = 0;
    while at < size {
        let n = (pattern.len() as u64).min(size - at) as usize;
        h.update(&pattern[..n]);
        at += n as u64;
    }
    hex::encode(h.finalize())
}

impl Mtfu {
    async fn multipart(&self, token: &str, size: u64, name: &str) -> Result<()> {
        let part = Part::stream_with_length(
            reqwest::Body::wrap_stream(range_stream(0, size, pattern())),
            size,
        )
        .file_name(name.to_owned())
        .mime_str("application/octet-stream")?;
        let form = Form::new()
            .text("resource", "bench")
            .text("resource_id", "1")
            .part("file", part);
        let r = self
            .client
            .post(format!("{}/api/upload", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "upload: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    async fn tus(&self, token: &str, size: u64, chunk: u64, name: &str) -> Result<()> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let meta = format!(
            "filename {},resource {},resource_id {},content_type {}",
            b64(name),
            b64("bench"),
            b64("1"),
            b64("application/octet-stream")
        );
        let r = self
            .client
            .post(format!("{}/api/v2/uploads", self.base))
            .bearer_auth(token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", size.to_string())
            .header("Upload-Metadata", meta)
            .send()
            .await?;
        if r.status() != 201 {
            bail!(
                "tus create: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        let url = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("Location")?
            .to_owned();
        let mut at = 0;
        while at < size {
            let end = (at + chunk).min(size);
            let body = reqwest::Body::wrap_stream(range_stream(at, end, pattern()));
            let r = self
                .client
                .patch(&url)
                .bearer_auth(token)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Offset", at.to_string())
                .header("Content-Type", "application/offset+octet-stream")
                .header("Content-Length", (end - at).to_string())
                .body(body)
                .send()
                .await?;
            if r.status() != 204 {
                bail!(
                    "tus PATCH at {at}: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
            at = end;
        }
        Ok(())
    }

    async fn listed_sha256(&self, token: &str, name: &str) -> Result<String> {
        let r = self
            .client
            .get(format!("{}/api/files/bench/1?page_size=100", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        let v: serde_json::Value = r.json().await?;
        v["files"]
            .as_array()
            .and_then(|fs| fs.iter().find(|f| f["name"] == name))
            .and_then(|f| f["sha256"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("{name} not listed: {v}"))
    }
}

#[derive(Clone, Copy)]
enum Way {
    Multipart,
    Tus(u64),
}

impl Way {
    fn label(self) -> String {
        match self {
            Way::Multipart => "POST /api/upload (multipart)".into(),
            Way::Tus(c) => format!("tus, {} MiB chunks", c / MIB),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = mtfu_bin()?;
    let size = env_u64("SIZE_MIB", 1024)? * MIB;
    let stores = std::env::var("STORES").unwrap_or_else(|_| "local,s3".into());
    let want = sha256_of(size, &pattern());
    println!(
        "tus_upload: mtfu {}; {} MiB per upload; default settings (64 MiB buffer budget, \
         8 MiB S3 parts); MB = 10^6 bytes",
        bin.display(),
        size / MIB
    );
    let root = tempfile::tempdir()?;
    let mut endpoint = None;
    for store in stores.split(',').map(str::trim) {
        let s3 = match store {
            "local" => None,
            "s3" => {
                if endpoint.is_none() {
                    endpoint = Some(start_s3(root.path()).await?);
                }
                endpoint.clone()
            }
            other => bail!("unknown store {other:?} in STORES"),
        };
        println!();
        match &s3 {
            None => println!("local disk"),
            Some(e) => println!("S3 (s3s-fs at {e}, root {})", root.path().display()),
        }
        println!(
            "  {:<32} {:>8} {:>8} {:>14} {:>14}",
            "", "secs", "MB/s", "RSS start MiB", "RSS peak MiB"
        );
        for (i, way) in [Way::Multipart, Way::Tus(5 * MIB), Way::Tus(MIB)]
            .into_iter()
            .enumerate()
        {
            let app = Mtfu::start(&bin, |dir| mtfu_command(&bin, dir, 8 << 30, s3.as_deref()))?;
            let token = app.token("john1").await?;
            let start_rss = app.peak_rss_mib()?;
            let name = format!("bench{i}.bin");
            let t = Instant::now();
            match way {
                Way::Multipart => app.multipart(&token, size, &name).await?,
                Way::Tus(chunk) => app.tus(&token, size, chunk, &name).await?,
            }
            let took = t.elapsed();
            let peak = app.peak_rss_mib()?;
            let got = app.listed_sha256(&token, &name).await?;
            if got != want {
                bail!("{}: sha256 {got}, sent {want}", way.label());
            }
            println!(
                "  {:<32} {:>8.2} {:>8.1} {:>14.1} {:>14.1}",
                way.label(),
                took.as_secs_f64(),
                mb_per_s(size, took),
                start_rss,
                peak
            );
            drop(app);
            // The objects of this run (s3s-fs keeps them on disk).
            if s3.is_some() {
                let bucket = root.path().join(BUCKET);
                std::fs::remove_dir_all(&bucket)?;
                std::fs::create_dir(&bucket)?;
            }
        }
    }
    Ok(())
}
