//! S3 upload throughput and memory: mtfu (the release binary, a child process) streaming uploads
//! to an `s3s-fs` server on loopback, against the same bytes uploaded straight to the same server
//! by an aws-sdk-s3 client; then the mtfu child's peak RSS during concurrent uploads.
//!
//! ```text
//! cargo build --release && cargo bench --bench s3_upload
//! ```
//!
//! - `MTFU_BIN` is the mtfu binary (default `target/release/mtfu`; build it first);
//! - `SIZE_MIB` is the size of every upload (default 1024);
//! - `COUNT` is the number of concurrent uploads of the second part (default 16).
//!
//! 1. One upload through mtfu (HTTPS, multipart/form-data, `POST /api/upload`) and one straight
//!    to s3s-fs (multipart upload, 8 MiB parts, 2 in flight, SHA-256 part checksums: what mtfu
//!    sends with its defaults), each body generated as a stream of 1 MiB chunks; MB/s of each
//!    and their ratio.
//! 2. `COUNT` concurrent uploads through a fresh mtfu child with the default buffer budget
//!    (64 MiB): wall time, aggregate MB/s and the child's VmHWM (peak RSS, /proc/PID/status).
//!
//! s3s-fs runs in this process on a loopback port and writes to a temporary directory; objects
//! are deleted as soon as their upload is done. MB = 10^6 bytes. Client connections are
//! HTTP/1.1, one per upload.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use mtfu::blob::s3::S3Store;
use mtfu::config::S3BlobConfig;
use mtfu::upload::Budget;
use reqwest::multipart::Part;
use sha2::{Digest, Sha256};

use common::{
    ACCESS_KEY, BUCKET, MIB, Mtfu, SECRET_KEY, env_u64, mb_per_s, mtfu_bin, mtfu_command, pattern,
    proc_mib, start_s3,
};

const PREFIX: &str = "files/";
/// mtfu's defaults: `blobs.s3.part_size`, `blobs.s3.parts_in_flight`, `limits.buffer_budget`.
const PART: usize = 8 * 1024 * 1024;
const IN_FLIGHT: usize = 2;
const DEFAULT_BUDGET: u64 = 64 * MIB;
const RSS_GOAL_MIB: f64 = 128.0;
const RATIO_GOAL: f64 = 0.8;

/// `size` bytes as 1 MiB slices of one pseudo-random buffer (nothing more held in memory).
fn body_stream(
    size: u64,
    pattern: Bytes,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunk = pattern.len() as u64;
    futures_util::stream::iter((0..size.div_ceil(chunk)).map(move |i| {
        let n = (size - i * chunk).min(chunk) as usize;
        Ok(pattern.slice(0..n))
    }))
}

// ---------------------------------------------------------------------------------------------
// s3s-fs on loopback

/// The SDK client exactly as mtfu builds it.
async fn s3_client(endpoint: &str) -> Result<aws_sdk_s3::Client> {
    let cfg = S3BlobConfig {
        bucket: BUCKET.into(),
        endpoint_url: Some(endpoint.into()),
        force_path_style: true,
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        key_prefix: PREFIX.into(),
        ..S3BlobConfig::default()
    };
    let store = S3Store::open(&cfg, Budget::new(DEFAULT_BUDGET))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(store.client().0.clone())
}

/// Delete every finished object under the prefix (s3s-fs writes objects to a temporary file
/// and renames it, so a listed object is complete).
async fn delete_objects(client: &aws_sdk_s3::Client) -> Result<()> {
    let page = client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(PREFIX)
        .send()
        .await?;
    for o in page.contents() {
        if let Some(k) = o.key() {
            let _ = client.delete_object().bucket(BUCKET).key(k).send().await;
        }
    }
    Ok(())
}

fn sha256_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

/// A multipart upload of `size` streamed bytes: 8 MiB parts, 2 in flight, SHA-256 checksums.
async fn direct_upload(client: &aws_sdk_s3::Client, key: &str, size: u64) -> Result<()> {
    let upload_id = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await?
        .upload_id()
        .context("no upload id")?
        .to_owned();
    let mut set = tokio::task::JoinSet::<Result<CompletedPart>>::new();
    let mut done = Vec::new();
    let mut number = 1;
    let mut buf = BytesMut::with_capacity(PART);
    let mut body = Box::pin(body_stream(size, pattern()));
    let mut finished = false;
    while !finished {
        match body.next().await {
            Some(chunk) => {
                let mut chunk = chunk?;
                while !chunk.is_empty() {
                    let take = (PART - buf.len()).min(chunk.len());
                    buf.extend_from_slice(&chunk.split_to(take));
                    if buf.len() < PART {
                        continue;
                    }
                    while set.len() >= IN_FLIGHT {
                        done.push(set.join_next().await.context("joinset")???);
                    }
                    let data = std::mem::replace(&mut buf, BytesMut::with_capacity(PART));
                    set.spawn(upload_part(
                        client.clone(),
                        key.to_owned(),
                        upload_id.clone(),
                        number,
                        data.freeze(),
                    ));
                    number += 1;
                }
            }
            None => finished = true,
        }
    }
    if !buf.is_empty() {
        set.spawn(upload_part(
            client.clone(),
            key.to_owned(),
            upload_id.clone(),
            number,
            buf.freeze(),
        ));
    }
    while let Some(r) = set.join_next().await {
        done.push(r??);
    }
    done.sort_by_key(|p| p.part_number());
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

async fn upload_part(
    client: aws_sdk_s3::Client,
    key: String,
    upload_id: String,
    number: i32,
    data: Bytes,
) -> Result<CompletedPart> {
    let checksum = sha256_b64(&data);
    let out = client
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .content_length(data.len() as i64)
        .checksum_sha256(&checksum)
        .body(S3Body::from(data))
        .send()
        .await?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_owned))
        .checksum_sha256(checksum)
        .build())
}

// ---------------------------------------------------------------------------------------------
// mtfu as a child process

/// mtfu on the s3s-fs bucket, under the benchmark's key prefix.
fn s3_mtfu(bin: &Path, dir: &Path, endpoint: &str) -> Command {
    let mut c = mtfu_command(bin, dir, 2 << 30, Some(endpoint));
    c.env("MTFU_BLOBS__S3__KEY_PREFIX", PREFIX);
    c
}

impl Mtfu {
    async fn upload(&self, token: &str, i: usize, size: u64) -> Result<()> {
        let part = Part::stream_with_length(
            reqwest::Body::wrap_stream(body_stream(size, pattern())),
            size,
        )
        .mime_str("application/octet-stream")?;
        self.upload_part(
            token,
            "bench",
            &i.to_string(),
            &format!("bench{i}.bin"),
            part,
        )
        .await
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = mtfu_bin()?;
    let size = env_u64("SIZE_MIB", 1024)? * MIB;
    let count = env_u64("COUNT", 16)? as usize;
    let root = tempfile::tempdir()?;
    let endpoint = start_s3(root.path()).await?;
    let s3 = s3_client(&endpoint).await?;
    println!(
        "s3_upload: mtfu {} -> s3s-fs {endpoint} (root {}); {} MiB per upload; \
         part 8 MiB, 2 in flight; MB = 10^6 bytes",
        bin.display(),
        root.path().display(),
        size / MIB
    );

    // 1. One upload each way.
    let direct = {
        let t = Instant::now();
        direct_upload(&s3, &format!("{PREFIX}direct.bin"), size).await?;
        let d = t.elapsed();
        delete_objects(&s3).await?;
        d
    };
    let through = {
        let app = Mtfu::start(&bin, |dir| s3_mtfu(&bin, dir, &endpoint))?;
        let token = app.token("john1").await?;
        let t = Instant::now();
        app.upload(&token, 0, size).await?;
        let d = t.elapsed();
        delete_objects(&s3).await?;
        d
    };
    let (direct_mbs, mtfu_mbs) = (mb_per_s(size, direct), mb_per_s(size, through));
    let ratio = mtfu_mbs / direct_mbs;
    println!();
    println!("single upload                      secs       MB/s");
    println!(
        "  aws-sdk-s3 -> s3s-fs       {:>10.2} {:>10.1}",
        direct.as_secs_f64(),
        direct_mbs
    );
    println!(
        "  client -> mtfu -> s3s-fs   {:>10.2} {:>10.1}",
        through.as_secs_f64(),
        mtfu_mbs
    );
    println!(
        "  ratio mtfu/direct          {:>21.2}  (goal >= {RATIO_GOAL}: {})",
        ratio,
        verdict(ratio >= RATIO_GOAL)
    );

    // 2. Concurrent uploads through a fresh child, default budget.
    let app = Mtfu::start(&bin, |dir| s3_mtfu(&bin, dir, &endpoint))?;
    let mut tokens = Vec::new();
    for u in 1..=count.clamp(1, 10) {
        tokens.push(app.token(&format!("john{u}")).await?);
    }
    let idle = proc_mib(app.pid(), "VmHWM")?;
    let cleanup = tokio::sync::Mutex::new(());
    let t = Instant::now();
    let uploads = (0..count).map(|i| {
        let (app, token, s3, cleanup) = (&app, &tokens[i % tokens.len()], &s3, &cleanup);
        async move {
            app.upload(token, i, size).await?;
            let _one = cleanup.lock().await;
            delete_objects(s3).await
        }
    });
    let results = futures_util::future::join_all(uploads).await;
    let wall = t.elapsed();
    let peak = proc_mib(app.pid(), "VmHWM")?;
    for r in results {
        r?;
    }
    let total = size * count as u64;
    println!();
    println!(
        "{count} concurrent uploads of {} MiB through mtfu, buffer budget {} MiB",
        size / MIB,
        DEFAULT_BUDGET / MIB
    );
    println!(
        "  wall {:.2} s, aggregate {:.1} MB/s",
        wall.as_secs_f64(),
        mb_per_s(total, wall)
    );
    println!(
        "  mtfu VmHWM: {idle:.1} MiB after start, {peak:.1} MiB peak  (goal < {RSS_GOAL_MIB} MiB: {})",
        verdict(peak < RSS_GOAL_MIB)
    );
    drop(app);
    Ok(())
}
