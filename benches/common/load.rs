//! Small uploads at a fixed concurrency (a closed loop, like `wrk -c`), the server's CPU time,
//! and the syncs it issues (counted by `perf stat` on its syscall tracepoints).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;

const BOUNDARY: &str = "----mtfubench0123456789abcdef";

/// What a run of [`run`] or [`run_with`] measured.
#[derive(Debug, Default)]
pub struct Load {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Sorted.
    pub latencies: Vec<Duration>,
    pub first_error: Option<String>,
}

impl Load {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile of the latencies, ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

/// `size` printable pseudo-random bytes (no CR/LF, so no boundary can appear).
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            33 + (x % 94) as u8
        })
        .collect()
}

/// A `multipart/form-data` upload of `data` as `name` to resource `resource`/1: the body and
/// its `Content-Type`.
pub fn form(resource: &str, name: &str, data: &[u8]) -> (Bytes, String) {
    let mut b = Vec::with_capacity(data.len() + 512);
    for (k, v) in [("resource", resource), ("resource_id", "1")] {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (
        Bytes::from(b),
        format!("multipart/form-data; boundary={BOUNDARY}"),
    )
}

/// `conns` clients each sending one request after another for `secs`, each request made by
/// `send(client number, request number)`; a request counts when it answers `ok_status`.
pub async fn run_with<F, Fut>(conns: usize, secs: f64, ok_status: u16, send: F) -> Load
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u16, String>> + Send,
{
    let send = Arc::new(send);
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (send, failed, first_error) = (send.clone(), failed.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let t0 = Instant::now();
                match send(c, n).await {
                    Ok(s) if s == ok_status => lat.push(t0.elapsed()),
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let mut e = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        e.get_or_insert_with(|| format!("{other:?}"));
                    }
                }
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let first_error = first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    Load {
        ok: latencies.len() as u64,
        failed: failed.load(Ordering::Relaxed),
        elapsed,
        latencies,
        first_error,
    }
}

/// 10 KiB-style uploads (`size` bytes) to `base`'s `POST /api/upload` as the holder of `token`,
/// every file a new name under `resource`.
pub async fn uploads(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    resource: &str,
    size: usize,
    conns: usize,
    secs: f64,
) -> Load {
    let data = Arc::new(payload(size, 0x5eed));
    let (client, url, token, resource) = (
        client.clone(),
        format!("{base}/api/upload"),
        token.to_owned(),
        resource.to_owned(),
    );
    let run = uuid::Uuid::new_v4().simple().to_string();
    run_with(conns, secs, 200, move |c, n| {
        let (body, ct) = form(&resource, &format!("{run}-{c}-{n}.bin"), &data);
        let req = client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body);
        async move {
            let r = req.send().await.map_err(|e| e.to_string())?;
            let s = r.status().as_u16();
            let text = r.text().await.map_err(|e| e.to_string())?;
            if s != 200 {
                return Err(format!("{s} {text}"));
            }
            Ok(s)
        }
    })
    .await
}

/// User + system CPU seconds of process `pid` so far.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit(") ").next().context("stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // CLK_TCK is 100 on every Linux this runs on.
    Ok(ticks / 100.0)
}

/// CPU seconds so far of the machine as a whole (busy, every core), of this process, and of every
/// process whose name is `postgres` (the server and its backends), to show where a load's CPU
/// went. Backends that exit between two readings are not counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    pub machine: f64,
    pub harness: f64,
    pub postgres: f64,
}

impl CpuSplit {
    pub fn now() -> Result<CpuSplit> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let f: Vec<u64> = stat
            .lines()
            .next()
            .context("/proc/stat")?
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        let busy: u64 = f.iter().take(8).sum::<u64>() - f[3] - f[4];
        let mut postgres = 0.0;
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let is_pg = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres");
            if is_pg {
                postgres += cpu_secs(pid).unwrap_or(0.0);
            }
        }
        Ok(CpuSplit {
            machine: busy as f64 / 100.0,
            harness: cpu_secs(std::process::id())?,
            postgres,
        })
    }

    /// What was used since `earlier`.
    pub fn since(&self, earlier: &CpuSplit) -> CpuSplit {
        CpuSplit {
            machine: self.machine - earlier.machine,
            harness: self.harness - earlier.harness,
            postgres: self.postgres - earlier.postgres,
        }
    }
}

/// `fsync` + `fdatasync` calls of a process (all its threads, present and future), counted by
/// `perf stat` on the syscall tracepoints; `None` where perf is missing or not allowed.
pub struct SyncCounter(Child);

impl SyncCounter {
    pub fn start(pid: u32) -> Option<SyncCounter> {
        let child = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-e",
                "syscalls:sys_enter_fsync",
                "-e",
                "syscalls:sys_enter_fdatasync",
                "-p",
                &pid.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        // perf needs a moment to attach to every thread.
        std::thread::sleep(Duration::from_millis(500));
        Some(SyncCounter(child))
    }

    /// Stop counting: the syncs seen, or `None` (perf failed).
    pub fn stop(self) -> Option<u64> {
        let SyncCounter(child) = self;
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let out = child.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let mut total = 0;
        let mut seen = 0;
        for line in text.lines() {
            let mut f = line.split(',');
            if let (Some(n), Some(_), Some(ev)) = (f.next(), f.next(), f.next())
                && ev.starts_with("syscalls:sys_enter_f")
            {
                total += n.trim().parse::<u64>().ok()?;
                seen += 1;
            }
        }
        (seen == 2).then_some(total)
    }
}
