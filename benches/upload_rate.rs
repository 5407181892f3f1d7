//! Small uploads on the embedded default (SQLite metadata, blobs on local disk, HTTPS):
//! requests/s of 10 KiB multipart `POST /api/upload`s at 16 connections, and what each costs
//! the server: syncs (`fsync` + `fdatasync`, counted by `perf stat` on the syscall tracepoints)
//! and CPU time.
//!
//! ```text
//! cargo build --release && cargo bench --bench upload_rate
//! MTFU_BIN_BEFORE=/tmp/mtfu-main cargo bench --bench upload_rate   # two binaries, side by side
//! ```
//!
//! - `MTFU_BIN`: the binary measured (default `target/release/mtfu`);
//! - `MTFU_BIN_BEFORE`: another binary (say, main's) measured in the same run, in interleaved
//!   rounds, with the ratio printed;
//! - `CONNS` (16), `SECS` per round (10), `ROUNDS` (3), `SIZE` in bytes (10240).
//!
//! Each binary serves a fresh data directory for the whole run; every upload is a new file. The
//! client (this process, reqwest over HTTP/1.1 + TLS) shares the machine's cores with the
//! server, as wrk did in bench/run.sh. Syncs are counted only where `perf` can attach (root, or
//! `kernel.perf_event_paranoid` permitting); otherwise they print as `-`.

mod common;

use std::path::{Path, PathBuf};

use anyhow::Result;

use common::load::{SyncCounter, cpu_secs, uploads};
use common::{Mtfu, env_u64, mtfu_bin, mtfu_command};

const GOAL: f64 = 1000.0;

struct Server {
    label: String,
    mtfu: Mtfu,
    token: String,
}

struct Round {
    rate: f64,
    p50: f64,
    p99: f64,
    syncs: Option<f64>,
    cpu_ms: f64,
    failed: u64,
}

async fn start(label: &str, bin: &Path) -> Result<Server> {
    let b = bin.to_owned();
    let mtfu = Mtfu::start(bin, |dir| mtfu_command(&b, dir, 1 << 30, None))?;
    let token = mtfu.token("john1").await?;
    // Warm up: connections, the blocking-thread pool, SQLite's caches.
    let _ = uploads(&mtfu.client, &mtfu.base, &token, "warmup", 10240, 16, 1.0).await;
    Ok(Server {
        label: label.to_owned(),
        mtfu,
        token,
    })
}

async fn round(s: &Server, conns: usize, secs: f64, size: usize) -> Result<Round> {
    let pid = s.mtfu.pid();
    let counter = SyncCounter::start(pid);
    let cpu0 = cpu_secs(pid)?;
    let load = uploads(
        &s.mtfu.client,
        &s.mtfu.base,
        &s.token,
        "bench",
        size,
        conns,
        secs,
    )
    .await;
    let cpu = cpu_secs(pid)? - cpu0;
    let syncs = counter.and_then(SyncCounter::stop);
    if let Some(e) = &load.first_error {
        eprintln!("{}: {} failed; first: {e}", s.label, load.failed);
    }
    let n = load.ok.max(1) as f64;
    Ok(Round {
        rate: load.rate(),
        p50: load.quantile_ms(0.5),
        p99: load.quantile_ms(0.99),
        syncs: syncs.map(|x| x as f64 / n),
        cpu_ms: cpu * 1e3 / n,
        failed: load.failed,
    })
}

fn print(label: &str, r: &Round) {
    let syncs = r
        .syncs
        .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"));
    println!(
        "{label:<28} {:>9.0} {:>8.1} {:>8.1} {:>12} {:>12.2} {:>7}",
        r.rate, r.p50, r.p99, syncs, r.cpu_ms, r.failed
    );
}

fn mean(rounds: &[Round]) -> Round {
    let n = rounds.len().max(1) as f64;
    let avg = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).sum::<f64>() / n;
    Round {
        rate: avg(&|r| r.rate),
        p50: avg(&|r| r.p50),
        p99: avg(&|r| r.p99),
        syncs: rounds
            .iter()
            .map(|r| r.syncs)
            .sum::<Option<f64>>()
            .map(|s| s / n),
        cpu_ms: avg(&|r| r.cpu_ms),
        failed: rounds.iter().map(|r| r.failed).sum(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let conns = env_u64("CONNS", 16)? as usize;
    let secs = env_u64("SECS", 10)? as f64;
    let rounds = env_u64("ROUNDS", 3)?;
    let size = env_u64("SIZE", 10240)? as usize;
    let mut bins: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(before) = std::env::var("MTFU_BIN_BEFORE") {
        bins.push(("before (MTFU_BIN_BEFORE)".into(), before.into()));
    }
    bins.push(("mtfu (MTFU_BIN)".into(), mtfu_bin()?));
    println!(
        "{size}-byte uploads, {conns} connections, {secs} s x {rounds} rounds; load {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut servers = Vec::new();
    for (label, bin) in &bins {
        servers.push(start(label, bin).await?);
    }
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>12} {:>12} {:>7}",
        "binary / round", "req/s", "p50 ms", "p99 ms", "syncs/upload", "CPU ms/upload", "failed"
    );
    let mut results: Vec<Vec<Round>> = servers.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for (i, s) in servers.iter().enumerate() {
            let got = round(s, conns, secs, size).await?;
            print(&format!("{} #{}", s.label, r + 1), &got);
            results[i].push(got);
        }
    }
    println!("means:");
    let means: Vec<Round> = results.iter().map(|r| mean(r)).collect();
    for (s, m) in servers.iter().zip(&means) {
        print(&s.label, m);
    }
    if let [before, after] = &means[..] {
        println!(
            "ratio after/before: {:.2}x req/s; syncs per upload {} -> {}",
            after.rate / before.rate,
            before.syncs.map_or("-".into(), |s| format!("{s:.2}")),
            after.syncs.map_or("-".into(), |s| format!("{s:.2}")),
        );
    }
    let last = means.last().map_or(0.0, |m| m.rate);
    println!(
        "goal: >= {GOAL:.0} req/s: {:.0} ({})",
        last,
        if last >= GOAL { "met" } else { "not met" }
    );
    Ok(())
}
