//! Memory that comes back (issue 14, goal 3): the RSS of a release mtfu child idle, at its peak
//! and `SETTLE_SECS` after a load of small uploads, listings and large uploads, on the embedded
//! default (SQLite + local disk) and on PostgreSQL + S3 (s3s-fs in this process).
//!
//! ```text
//! cargo build --release && \
//!     MTFU_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench memory
//! ```
//!
//! - `MTFU_BIN`: the mtfu binary (default `target/release/mtfu`); any `MALLOC_*` or
//!   `GLIBC_TUNABLES` of this process reach the child, to compare allocator settings;
//! - `STORES=default,pg-s3` (default both; `pg-s3` needs `MTFU_TEST_POSTGRES_URL` and runs in a
//!   fresh database, dropped at the end);
//! - `SMALL=3000` 10 KiB uploads from `CLIENTS=16` clients, then `LISTINGS=200`
//!   `GET /api/list_files`, then `BIG=16` concurrent uploads of `BIG_MIB=64` MiB;
//! - `SETTLE_SECS=10`: how long after the load the RSS is read again.
//!
//! The goal: at most 64 MiB `SETTLE_SECS` after the load, on both.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::Stream;
use reqwest::multipart::Part;
use tokio_postgres::NoTls;

use common::{MIB, Mtfu, env_u64, mtfu_bin, mtfu_command, pattern, proc_mib, start_s3};

const GOAL_MIB: f64 = 64.0;
const SMALL_BYTES: usize = 10 * 1024;

/// `size` bytes as slices of `pattern` (nothing more held in this process).
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

struct Figures {
    idle: f64,
    peak: f64,
    after: f64,
    load_secs: f64,
}

/// The load against a started `m`, and the RSS figures.
async fn run(m: Mtfu) -> Result<Figures> {
    let (small, clients, listings) = (
        env_u64("SMALL", 3000)? as usize,
        env_u64("CLIENTS", 16)? as usize,
        env_u64("LISTINGS", 200)? as usize,
    );
    let (big, big_size, settle) = (
        env_u64("BIG", 16)? as usize,
        env_u64("BIG_MIB", 64)? * MIB,
        env_u64("SETTLE_SECS", 10)?,
    );
    let m = Arc::new(m);
    let token = Arc::new(m.token("john1").await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = proc_mib(m.pid(), "VmRSS")?;
    let start = Instant::now();
    let small_body = Bytes::from(pattern().slice(0..SMALL_BYTES).to_vec());
    let mut set = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (m, token, body) = (m.clone(), token.clone(), small_body.clone());
        set.spawn(async move {
            for i in (c..small).step_by(clients) {
                let part = Part::stream(body.clone());
                m.upload_part(
                    &token,
                    "mem",
                    &(i % 100).to_string(),
                    &format!("s{i}.bin"),
                    part,
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    for i in 0..listings {
        let r = m
            .client
            .get(format!("{}/api/list_files?page={}", m.base, i % 20 + 1))
            .bearer_auth(token.as_str())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("list_files: {}", r.status());
        }
        r.bytes().await?;
    }
    for i in 0..big {
        let (m, token) = (m.clone(), token.clone());
        set.spawn(async move {
            let part = Part::stream_with_length(
                reqwest::Body::wrap_stream(body_stream(big_size, pattern())),
                big_size,
            );
            m.upload_part(&token, "mem", "big", &format!("b{i}.bin"), part)
                .await
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let load_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(settle)).await;
    Ok(Figures {
        idle,
        peak: m.peak_rss_mib()?,
        after: proc_mib(m.pid(), "VmRSS")?,
        load_secs,
    })
}

fn default_store(bin: &Path, dir: &Path) -> Command {
    mtfu_command(bin, dir, 128 * MIB, None)
}

async fn pg_s3(bin: &Path, admin_url: &str) -> Result<Figures> {
    let (admin, conn) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .context("connect to MTFU_TEST_POSTGRES_URL")?;
    let conn = tokio::spawn(conn);
    let db = format!("mtfu_bench_{}", uuid::Uuid::now_v7().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let url = mtfu::meta::postgres::with_dbname(admin_url, &db);
    let root = tempfile::tempdir()?;
    let out = async {
        let endpoint = start_s3(root.path()).await?;
        let m = Mtfu::start(bin, |dir| {
            let mut c = mtfu_command(bin, dir, 128 * MIB, Some(&endpoint));
            c.env("MTFU_METADATA__BACKEND", "postgres")
                .env("MTFU_METADATA__POSTGRES__URL", &url);
            c
        })?;
        run(m).await
    }
    .await;
    let dropped = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
    drop(admin);
    let _ = conn.await;
    let out = out?;
    dropped.context("drop the bench database")?;
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = mtfu_bin()?;
    let stores = std::env::var("STORES").unwrap_or_else(|_| "default,pg-s3".into());
    let pg_url = std::env::var("MTFU_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let mut rows = Vec::new();
    for store in stores.split(',').map(str::trim) {
        let figures = match store {
            "default" => run(Mtfu::start(&bin, |dir| default_store(&bin, dir))?).await?,
            "pg-s3" => match &pg_url {
                Some(url) => pg_s3(&bin, url).await?,
                None => {
                    eprintln!("pg-s3: skipped, MTFU_TEST_POSTGRES_URL is not set");
                    continue;
                }
            },
            other => bail!("STORES: unknown store {other:?}"),
        };
        rows.push((store, figures));
    }
    println!(
        "memory: {} (RSS MiB; goal: at most {GOAL_MIB} MiB after the load)",
        bin.display()
    );
    println!("store      load s   idle   peak  after  after/goal");
    for (store, f) in rows {
        println!(
            "{:<9} {:>7.1} {:>6.1} {:>6.1} {:>6.1}  {:>10.2}",
            store,
            f.load_secs,
            f.idle,
            f.peak,
            f.after,
            f.after / GOAL_MIB
        );
    }
    Ok(())
}
