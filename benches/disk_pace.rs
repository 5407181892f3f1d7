//! One large upload at the disk's pace (issue 14, goal 5): a `SIZE_MIB` (1024) HTTPS multipart
//! `POST /api/upload` by curl on one connection into the local store, against this disk's own
//! sequential write with `fdatasync` (dd, same file, same file system), in interleaved rounds
//! of one run. Printed per round: MB/s of each, the ratio, and the server's CPU seconds per GiB
//! (user + system, from /proc: a t3a.micro runs on CPU credits).
//!
//! ```text
//! cargo build --release && cargo bench --bench disk_pace
//! MTFU_BIN_BEFORE=/tmp/mtfu-main cargo bench --bench disk_pace   # two binaries, side by side
//! ```
//!
//! - `MTFU_BIN`: the binary measured (default `target/release/mtfu`); `MTFU_BIN_BEFORE`: another
//!   one measured in the same rounds;
//! - `SIZE_MIB` (1024), `ROUNDS` (3).
//!
//! The source file is written once (a pseudo-random MiB, repeated) and read by both dd and
//! curl from the page cache; each copy is removed after its round so that every round writes to
//! the same free space. MB = 10^6 bytes. The goal: mtfu ≥ 0.8 × dd.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use common::load::cpu_secs;
use common::{MIB, Mtfu, env_u64, mb_per_s, mtfu_bin, mtfu_command, pattern};

const GOAL: f64 = 0.8;

struct Server {
    label: String,
    mtfu: Mtfu,
    token: String,
    uploads: u32,
}

/// `dd` of `src` into `dir` with `conv=fdatasync`; MB/s.
fn dd(src: &Path, dir: &Path, bytes: u64) -> Result<f64> {
    let dest = dir.join("dd.bin");
    let t = Instant::now();
    let out = Command::new("dd")
        .arg(format!("if={}", src.display()))
        .arg(format!("of={}", dest.display()))
        .args(["bs=1M", "conv=fdatasync", "status=none"])
        .output()
        .context("running dd")?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!("dd: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::remove_file(&dest)?;
    Ok(mb_per_s(bytes, took))
}

/// One curl upload of `src` to `s`; MB/s and the server's CPU seconds for it.
fn upload(s: &mut Server, src: &Path, bytes: u64) -> Result<(f64, f64)> {
    s.uploads += 1;
    let cert = s.mtfu.data_dir().join("tls/self-signed.crt");
    let pid = s.mtfu.pid();
    let cpu0 = cpu_secs(pid)?;
    let t = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--cacert")
        .arg(&cert)
        .args(["-H", &format!("Authorization: Bearer {}", s.token)])
        .args(["-F", "resource=disk", "-F"])
        .arg(format!("resource_id={}", s.uploads))
        .arg("-F")
        .arg(format!("file=@{};filename=big.bin", src.display()))
        .arg(format!("{}/api/upload", s.mtfu.base))
        .output()
        .context("running curl")?;
    let took = t.elapsed();
    let cpu = cpu_secs(pid)? - cpu0;
    let code = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !code.starts_with('2') {
        bail!(
            "{}: upload answered {code}: {}",
            s.label,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The next round writes to the same free space: the blob goes (the row stays; harmless).
    let blobs = s.mtfu.data_dir().join("blobs");
    remove_big_files(&blobs, bytes)?;
    Ok((
        mb_per_s(bytes, took),
        cpu / (bytes as f64 / (1u64 << 30) as f64),
    ))
}

/// Remove files of at least `bytes` under `dir` (the uploaded blob).
fn remove_big_files(dir: &Path, bytes: u64) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            remove_big_files(&entry.path(), bytes)?;
        } else if meta.len() >= bytes {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The source file: [`pattern`]'s MiB, repeated.
fn source(dir: &Path, bytes: u64) -> Result<PathBuf> {
    use std::io::Write;
    let path = dir.join("src.bin");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let block = pattern();
    for _ in 0..bytes / MIB {
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(path)
}

#[tokio::main]
async fn main() -> Result<()> {
    let bytes = env_u64("SIZE_MIB", 1024)? * MIB;
    let rounds = env_u64("ROUNDS", 3)?;
    let mut bins: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(before) = std::env::var("MTFU_BIN_BEFORE") {
        bins.push(("before (MTFU_BIN_BEFORE)".into(), before.into()));
    }
    bins.push(("mtfu (MTFU_BIN)".into(), mtfu_bin()?));
    let work = tempfile::tempdir()?;
    let src = source(work.path(), bytes)?;
    println!(
        "{} MiB, one HTTPS connection (curl, HTTP/1.1), {rounds} rounds; load {}",
        bytes / MIB,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut servers = Vec::new();
    for (label, bin) in &bins {
        let b = bin.clone();
        let mtfu = Mtfu::start(bin, |dir| mtfu_command(&b, dir, 2 * bytes, None))?;
        let token = mtfu.token("john1").await?;
        servers.push(Server {
            label: label.clone(),
            mtfu,
            token,
            uploads: 0,
        });
    }
    println!(
        "{:<28} {:>10} {:>10} {:>8} {:>14}",
        "round", "dd MB/s", "mtfu MB/s", "ratio", "CPU s / GiB"
    );
    let mut sums = vec![(0.0, 0.0, 0.0); servers.len()];
    for r in 0..rounds {
        for (i, s) in servers.iter_mut().enumerate() {
            let disk = dd(&src, s.mtfu.data_dir(), bytes)?;
            let (rate, cpu) = upload(s, &src, bytes)?;
            println!(
                "{:<28} {disk:>10.0} {rate:>10.0} {:>8.2} {cpu:>14.2}",
                format!("{} #{}", s.label, r + 1),
                rate / disk
            );
            sums[i].0 += disk;
            sums[i].1 += rate;
            sums[i].2 += cpu;
        }
    }
    println!("means:");
    let n = rounds.max(1) as f64;
    let mut last = 0.0;
    for (s, (disk, rate, cpu)) in servers.iter().zip(&sums) {
        last = rate / disk;
        println!(
            "{:<28} {:>10.0} {:>10.0} {last:>8.2} {:>14.2}",
            s.label,
            disk / n,
            rate / n,
            cpu / n
        );
    }
    println!(
        "goal: mtfu >= {GOAL} x dd: {last:.2} ({})",
        if last >= GOAL { "met" } else { "not met" }
    );
    Ok(())
}
