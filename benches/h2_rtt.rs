//! Upload throughput at a real round-trip time: HTTP/1.1 against HTTP/2, through a loopback
//! proxy that delays every byte by half the RTT each way (the machine's kernel has no netem).
//!
//! ```text
//! cargo build --release && cargo bench --bench h2_rtt
//! ```
//!
//! - `MTFU_BIN` is the mtfu binary (default `target/release/mtfu`);
//! - `SIZE_MIB` is the size of each upload (default 64);
//! - `RTT_MS` is the round-trip time the proxy adds (default 50);
//! - `ROUNDS` is the number of interleaved HTTP/1.1 + HTTP/2 pairs (default 3);
//! - `MTFU_HTTP2__STREAM_WINDOW_BYTES` and the like reach the server (it inherits the
//!   environment), to compare windows.
//!
//! Each upload is one `PUT /api/v2/files/...` of `SIZE_MIB` bytes on a connection opened
//! through the proxy and warmed by one request; printed: MB/s (10^6 bytes per second, from
//! sending the request to its answer) of each, the means, and HTTP/2 / HTTP/1.1. The proxy
//! only delays: it does not limit bandwidth or its own buffer, so HTTP/1.1 sees the RTT only
//! once per request, while HTTP/2's flow control waits a round trip for each window update.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;

use common::delay::start_proxy;
use common::{MIB, Mtfu, env_u64, mb_per_s, mtfu_bin, mtfu_command, pattern};

async fn upload(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    body: Bytes,
) -> Result<Duration> {
    let started = Instant::now();
    let r = client
        .put(format!("{base}/api/v2/files/bench/1/{name}"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("{name}: {status} {text}");
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = mtfu_bin()?;
    let size = env_u64("SIZE_MIB", 64)? * MIB;
    let rtt = Duration::from_millis(env_u64("RTT_MS", 50)?);
    let rounds = env_u64("ROUNDS", 3)?;
    let mtfu = Mtfu::start(&bin, |dir| mtfu_command(&bin, dir, size, None))?;
    let token = mtfu.token("john1").await?;
    let port: u16 = mtfu
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .context("port of mtfu's base URL")?;
    let proxy = start_proxy(SocketAddr::from(([127, 0, 0, 1], port)), rtt).await?;
    let base = format!("https://localhost:{}", proxy.port());
    let pem = std::fs::read(mtfu.data_dir().join("tls/self-signed.crt"))?;
    let builder = || {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
            .pool_max_idle_per_host(1)
    };
    let h1 = builder().http1_only().build()?;
    let h2 = builder().http2_prior_knowledge().build()?;
    // The file: the pattern repeated, one buffer shared by every request.
    let p = pattern();
    let mut file = Vec::with_capacity(size as usize);
    while (file.len() as u64) < size {
        let n = (size as usize - file.len()).min(p.len());
        file.extend_from_slice(&p[..n]);
    }
    let file = Bytes::from(file);
    // Warm both connections (TCP + TLS handshakes through the proxy).
    for c in [&h1, &h2] {
        upload(c, &base, &token, "warm.bin", Bytes::from_static(b"x")).await?;
    }
    println!(
        "{} MiB uploads through a proxy adding {} ms RTT, {rounds} interleaved rounds",
        size / MIB,
        rtt.as_millis()
    );
    let (mut sum1, mut sum2) = (0.0, 0.0);
    for round in 1..=rounds {
        let t1 = upload(&h1, &base, &token, &format!("h1-{round}.bin"), file.clone()).await?;
        let t2 = upload(&h2, &base, &token, &format!("h2-{round}.bin"), file.clone()).await?;
        let (m1, m2) = (mb_per_s(size, t1), mb_per_s(size, t2));
        sum1 += m1;
        sum2 += m2;
        println!("round {round}: HTTP/1.1 {m1:.1} MB/s   HTTP/2 {m2:.1} MB/s");
    }
    let (m1, m2) = (sum1 / rounds as f64, sum2 / rounds as f64);
    println!(
        "mean: HTTP/1.1 {m1:.1} MB/s   HTTP/2 {m2:.1} MB/s   HTTP/2 / HTTP/1.1 = {:.2}",
        m2 / m1
    );
    Ok(())
}
