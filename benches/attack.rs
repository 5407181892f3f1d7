//! The slow-client and connection-exhaustion attacks of issue 11 (items 3–6) together against
//! the release binary, while a well-behaved client keeps working: that client's latency
//! percentiles and the server's peak RSS are printed.
//!
//! ```text
//! cargo build --release && cargo bench --bench attack
//! ```
//!
//! - `MTFU_BIN`: the mtfu binary (default `target/release/mtfu`);
//! - `SECS`: how long the attacks run (default 60);
//! - `IDLE_H2`: HTTP/2 connections that negotiate h2 and send nothing (default 200);
//! - `TRICKLE`: bodies trickled one byte per `body_read_timeout_secs - 1` seconds, half uploads
//!   (`PUT`) and half token requests (default 100);
//! - `FORMS`: clients sending forms of 60 MiB of text fields, and as many sending a part header
//!   that never ends (16 MiB), one after the other (default 4 each).
//!
//! The server runs with its defaults except `server.max_connections = 512` and
//! `server.idle_timeout_secs = 10` (so that idle connections come and go within the run). Every
//! attacker reconnects as soon as it is cut off. The well-behaved client (one HTTP/1.1
//! connection, opened before the attacks) lists files and uploads a small file in turn.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;

use common::{Mtfu, env_u64, mtfu_bin, mtfu_command};

const BOUNDARY: &str = "ATTACK";

#[tokio::main]
async fn main() -> Result<()> {
    let secs = env_u64("SECS", 60)?;
    let idle_h2 = env_u64("IDLE_H2", 200)?;
    let trickle = env_u64("TRICKLE", 100)?;
    let forms = env_u64("FORMS", 4)?;
    let tus_floods = env_u64("TUS_FLOODS", 2)?;
    let bin = mtfu_bin()?;
    let mtfu = Mtfu::start(&bin, |dir| {
        let mut c = mtfu_command(&bin, dir, 10 * 1024 * 1024, None);
        c.env("MTFU_SERVER__BODY_READ_TIMEOUT_SECS", "30")
            .env("MTFU_SERVER__MAX_CONNECTIONS", "512")
            .env("MTFU_SERVER__IDLE_TIMEOUT_SECS", "10")
            .env("MTFU_LOG", "error");
        c
    })?;
    let token = mtfu.token("john1").await?;
    // The tenant creating unfinished resumable uploads without end (item 8).
    let flooder = mtfu.token("john2").await?;
    let pem = std::fs::read(mtfu.data_dir().join("tls/self-signed.crt"))?;
    let port: u16 = mtfu
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .context("port")?;
    println!(
        "attack for {secs} s: {idle_h2} idle HTTP/2 connections, {trickle} trickled bodies, \
         {forms} text-field floods, {forms} endless part headers, {tus_floods} unfinished-upload \
         floods"
    );
    // The well-behaved client's connection exists before the attack.
    let good = mtfu.client.clone();
    let _ = good.get(format!("{}/healthz", mtfu.base)).send().await?;

    let stop = Instant::now() + Duration::from_secs(secs);
    let mut attackers = tokio::task::JoinSet::new();
    let cut = Arc::new(AtomicU64::new(0));
    for _ in 0..idle_h2 {
        let (pem, cut) = (pem.clone(), cut.clone());
        attackers.spawn(async move {
            while Instant::now() < stop {
                if idle_h2_once(port, &pem).await.is_ok() {
                    cut.fetch_add(1, Ordering::Relaxed);
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }
    for i in 0..trickle {
        let (client, base, token) = (insecure_client()?, mtfu.base.clone(), token.clone());
        attackers.spawn(async move {
            while Instant::now() < stop {
                let body = reqwest::Body::wrap_stream(futures_util::stream::iter(0..1024).then(
                    |_| async {
                        tokio::time::sleep(Duration::from_secs(29)).await;
                        Ok::<_, std::io::Error>(Bytes::from_static(b"x"))
                    },
                ));
                let req = if i.is_multiple_of(2) {
                    client
                        .put(format!("{base}/api/v2/files/attack/1/slow.bin"))
                        .bearer_auth(&token)
                } else {
                    client
                        .post(format!("{base}/api/token/"))
                        .header("content-type", "application/json")
                };
                let _ = req.body(body).send().await;
            }
        });
    }
    for kind in 0..2 {
        for _ in 0..forms {
            let (client, base, token) = (insecure_client()?, mtfu.base.clone(), token.clone());
            attackers.spawn(async move {
                while Instant::now() < stop {
                    let body = if kind == 0 {
                        text_flood()
                    } else {
                        endless_header()
                    };
                    let _ = client
                        .post(format!("{base}/api/upload"))
                        .bearer_auth(&token)
                        .header(
                            "content-type",
                            format!("multipart/form-data; boundary={BOUNDARY}"),
                        )
                        .body(body)
                        .send()
                        .await;
                }
            });
        }
    }

    let (tus_admitted, tus_refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for _ in 0..tus_floods {
        let (client, base, token) = (insecure_client()?, mtfu.base.clone(), flooder.clone());
        let (admitted, refused) = (tus_admitted.clone(), tus_refused.clone());
        attackers.spawn(async move {
            while Instant::now() < stop {
                let r = client
                    .post(format!("{base}/api/v2/uploads"))
                    .bearer_auth(&token)
                    .header("Tus-Resumable", "1.0.0")
                    .header("Upload-Length", (10u64 << 20).to_string())
                    // filename f.bin, resource flood, resource_id 1
                    .header(
                        "Upload-Metadata",
                        "filename Zi5iaW4=,resource Zmxvb2Q=,resource_id MQ==",
                    )
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(201) => admitted.fetch_add(1, Ordering::Relaxed),
                    Ok(429) => refused.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
            }
        });
    }

    let mut latencies = Vec::new();
    let mut errors = 0u64;
    let mut i = 0u64;
    while Instant::now() < stop {
        i += 1;
        let started = Instant::now();
        let ok = if i.is_multiple_of(10) {
            let form = reqwest::multipart::Form::new()
                .text("resource", "good")
                .text("resource_id", "1")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(vec![7u8; 4096]).file_name("good.bin"),
                );
            good.post(format!("{}/api/upload", mtfu.base))
                .bearer_auth(&token)
                .multipart(form)
                .send()
                .await
                .map(|r| r.status())
        } else {
            good.get(format!("{}/api/list_files?page_size=10", mtfu.base))
                .bearer_auth(&token)
                .send()
                .await
                .map(|r| r.status())
        };
        latencies.push(started.elapsed());
        match ok {
            Ok(s) if s.is_success() => {}
            other => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("well-behaved request {i} failed: {other:?}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    attackers.abort_all();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "well-behaved client: {} requests, {errors} failed; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        pct(1.0).as_secs_f64() * 1000.0,
    );
    println!(
        "idle HTTP/2 connections closed by the server: {}",
        cut.load(Ordering::Relaxed)
    );
    println!(
        "unfinished tus uploads of the flooding tenant: {} admitted, {} refused with 429",
        tus_admitted.load(Ordering::Relaxed),
        tus_refused.load(Ordering::Relaxed)
    );
    println!("server peak RSS (VmHWM): {:.0} MiB", mtfu.peak_rss_mib()?);
    Ok(())
}

/// A client of its own (own connections) that trusts anything: the attackers do not care.
fn insecure_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .build()?)
}

/// Negotiate h2 and send nothing until the server closes the connection.
async fn idle_h2_once(port: u16, pem: &[u8]) -> Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await?;
    let (_send, conn) = h2::client::handshake(stream).await?;
    let _ = conn.await;
    Ok(())
}

/// 1000 distinct text fields of 60 KiB, no file.
fn text_flood() -> reqwest::Body {
    let value = "v".repeat(60 * 1024);
    let parts = futures_util::stream::iter(0..1000).map(move |i| {
        Ok::<_, std::io::Error>(Bytes::from(format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n{value}\r\n"
        )))
    });
    reqwest::Body::wrap_stream(parts)
}

/// One part whose headers never end: 16 MiB of one header line.
fn endless_header() -> reqwest::Body {
    let start = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-Pad: "
    );
    let pad = Bytes::from(vec![b'a'; 64 * 1024]);
    let chunks = futures_util::stream::once(async move { Ok(Bytes::from(start)) })
        .chain(futures_util::stream::iter(0..256).map(move |_| Ok(pad.clone())))
        .map(|c: Result<Bytes, std::io::Error>| c);
    reqwest::Body::wrap_stream(chunks)
}
