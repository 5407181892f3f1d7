//! Small uploads on PostgreSQL + S3: 10 KiB multipart `POST /api/upload`s through mtfu at 16
//! connections, against the same bodies put straight into the same S3 server by aws-sdk-s3
//! (`PutObject` with a SHA-256 checksum, what mtfu sends for a body that fits one part) at the
//! same concurrency, in interleaved rounds of one run. The direct client is the ceiling: mtfu
//! adds TLS, the form, authentication and the metadata commit on top of the same `PutObject`.
//!
//! ```text
//! cargo build --release && cargo bench --bench s3_small
//! ```
//!
//! - `MTFU_BIN` (default `target/release/mtfu`); PostgreSQL at `MTFU_TEST_POSTGRES_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), where a fresh database is made and dropped;
//! - `CONNS` (16), `SECS` per round (10), `ROUNDS` (3), `SIZE` in bytes (10240);
//! - `S3_RTT_MS` (0): a round-trip time added between both clients and the S3 server, by a
//!   delaying proxy in this process (common::delay), as a real S3 endpoint is milliseconds
//!   away: with it, the S3 server's answers and not this machine's two cores set the pace.
//!
//! s3s-fs runs in this process on a loopback port (plain HTTP, as in the other S3 benchmarks),
//! shared by both clients; so do the two clients. MB = 10^6 bytes.

mod common;

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use common::delay::start_proxy;
use common::load::{CpuSplit, Load, cpu_secs, payload, run_with, uploads};
use common::{ACCESS_KEY, BUCKET, Mtfu, SECRET_KEY, env_u64, mtfu_bin, mtfu_command, start_s3};

const GOAL: f64 = 0.8;

/// The SDK client exactly as mtfu builds it.
async fn s3_client(endpoint: &str) -> Result<aws_sdk_s3::Client> {
    let cfg = mtfu::config::S3BlobConfig {
        bucket: BUCKET.into(),
        endpoint_url: Some(endpoint.into()),
        force_path_style: true,
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        key_prefix: "direct/".into(),
        ..Default::default()
    };
    let store = mtfu::blob::s3::S3Store::open(&cfg, mtfu::upload::Budget::new(64 * common::MIB))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(store.client().0.clone())
}

async fn direct(client: &aws_sdk_s3::Client, data: Bytes, conns: usize, secs: f64) -> Load {
    let client = client.clone();
    let run = uuid::Uuid::new_v4().simple().to_string();
    run_with(conns, secs, 200, move |c, n| {
        let (client, data, key) = (
            client.clone(),
            data.clone(),
            format!("direct/{run}/{c}/{n}"),
        );
        async move {
            // Hashed per request, as mtfu hashes every body it puts.
            let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data));
            client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .content_length(data.len() as i64)
                .checksum_sha256(checksum)
                .body(S3Body::from(data))
                .send()
                .await
                .map(|_| 200)
                .map_err(|e| format!("{e:?}"))
        }
    })
    .await
}

/// One round's figures; CPU is ms per answered upload: the machine's (both cores), this
/// process's (the clients and s3s-fs), mtfu's and PostgreSQL's.
fn row(label: &str, l: &Load, split: &CpuSplit, mtfu_secs: Option<f64>) {
    let per = |secs: f64| secs * 1e3 / l.ok.max(1) as f64;
    println!(
        "{label:<26} {:>7.0} {:>7.1} {:>7.1} {:>8.2} {:>8.2} {:>6} {:>6.2} {:>6}",
        l.rate(),
        l.quantile_ms(0.5),
        l.quantile_ms(0.99),
        per(split.machine),
        per(split.harness),
        mtfu_secs.map_or_else(|| "-".into(), |c| format!("{:.2}", per(c))),
        per(split.postgres),
        l.failed
    );
    if let Some(e) = &l.first_error {
        eprintln!("{label}: first failure: {e}");
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let conns = env_u64("CONNS", 16)? as usize;
    let secs = env_u64("SECS", 10)? as f64;
    let rounds = env_u64("ROUNDS", 3)?;
    let size = env_u64("SIZE", 10240)? as usize;
    let bin = mtfu_bin()?;
    let admin = std::env::var("MTFU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());

    let rtt = std::time::Duration::from_millis(env_u64("S3_RTT_MS", 0)?);

    let s3_root = tempfile::tempdir()?;
    let mut endpoint = start_s3(s3_root.path()).await?;
    if !rtt.is_zero() {
        let s3: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse()?;
        endpoint = format!("http://{}", start_proxy(s3, rtt).await?);
    }
    let (pg, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .context("connect to PostgreSQL (MTFU_TEST_POSTGRES_URL)")?;
    tokio::spawn(conn);
    let db = format!("mtfu_bench_{}", uuid::Uuid::new_v4().simple());
    pg.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    let url = mtfu::meta::postgres::with_dbname(&admin, &db);

    let result = async {
        let (b, e, u) = (bin.clone(), endpoint.clone(), url.clone());
        let mtfu = Mtfu::start(&bin, move |dir| {
            let mut c = mtfu_command(&b, dir, 1 << 30, Some(&e));
            c.env("MTFU_METADATA__BACKEND", "postgres")
                .env("MTFU_METADATA__POSTGRES__URL", &u);
            c
        })?;
        let token = mtfu.token("john1").await?;
        let client = s3_client(&endpoint).await?;
        let data = Bytes::from(payload(size, 0x5eed));
        // Warm up both paths.
        let _ = direct(&client, data.clone(), conns, 1.0).await;
        let _ = uploads(&mtfu.client, &mtfu.base, &token, "warmup", size, conns, 1.0).await;

        println!(
            "{size}-byte uploads, {conns} connections, {secs} s x {rounds} rounds, \
             S3 {} ms RTT away; load {}",
            rtt.as_millis(),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        println!("CPU: ms per upload, of the machine (busy, both cores) and of each process");
        println!(
            "{:<26} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} {:>6} {:>6}",
            "client / round",
            "req/s",
            "p50 ms",
            "p99 ms",
            "machine",
            "harness",
            "mtfu",
            "pg",
            "failed"
        );
        let (mut d_sum, mut m_sum) = (0.0, 0.0);
        for r in 1..=rounds {
            let split0 = CpuSplit::now()?;
            let d = direct(&client, data.clone(), conns, secs).await;
            row(
                &format!("S3 PutObject direct #{r}"),
                &d,
                &CpuSplit::now()?.since(&split0),
                None,
            );
            let (split0, cpu0) = (CpuSplit::now()?, cpu_secs(mtfu.pid())?);
            let m = uploads(&mtfu.client, &mtfu.base, &token, "bench", size, conns, secs).await;
            let cpu = cpu_secs(mtfu.pid())? - cpu0;
            row(
                &format!("mtfu PG + S3 #{r}"),
                &m,
                &CpuSplit::now()?.since(&split0),
                Some(cpu),
            );
            d_sum += d.rate();
            m_sum += m.rate();
        }
        let n = rounds.max(1) as f64;
        let (d, m) = (d_sum / n, m_sum / n);
        println!("means: S3 PutObject direct {d:.0} req/s, mtfu PG + S3 {m:.0} req/s");
        let ratio = m / d;
        println!(
            "ratio mtfu / direct: {ratio:.2} (goal >= {GOAL}: {})",
            if ratio >= GOAL { "met" } else { "not met" }
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    // The server is gone (dropped above); its database can go.
    let _ = pg
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
    result
}
