//! Build script: which of the test suite's outside peers this machine has, so that a test
//! whose peer is missing is reported as *ignored* (with the reason) in `cargo test`'s summary
//! instead of passing without testing anything. Each missing peer sets a cfg that tests name in
//! `#[cfg_attr(mtfu_no_X, ignore = "...")]`:
//!
//! - `mtfu_no_pg`: no `MTFU_TEST_POSTGRES_URL` and no PostgreSQL answering on 127.0.0.1:5432
//!   (the suite then uses `postgres://postgres@127.0.0.1:5432/postgres`);
//! - `mtfu_no_nginx`, `mtfu_no_pebble`: the Debian binaries are missing;
//! - `mtfu_no_tuspy`: `python3 -c 'import tusclient'` fails;
//! - `mtfu_no_moto`: `python3 -c 'import moto.server'` fails (moto's S3 server, from PyPI);
//! - `mtfu_no_root`: not root (mounting a tmpfs for the disk-fault test);
//! - `mtfu_no_browser`: no `node`, `/usr/bin/chromium` or `tests/browser/node_modules`;
//! - `mtfu_no_delalloc`: the temporary directory's file system does not show written data as
//!   not yet allocated (ext4's and XFS's delayed allocation), or `filefrag` is missing: the
//!   local writer's writeback test reads that state.
//!
//! With `MTFU_TEST_REQUIRE_TOOLS=1` (CI) nothing is ignored: a missing peer fails its tests.
//! Detection reruns when these variables, PATH or the system's binary directories change.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Whether a peer is here.
type Probe = fn() -> bool;

fn main() {
    for var in ["MTFU_TEST_POSTGRES_URL", "MTFU_TEST_REQUIRE_TOOLS", "PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        if Path::new(dir).exists() {
            println!("cargo:rerun-if-changed={dir}");
        }
    }
    println!("cargo:rerun-if-changed=tests/support/detect.rs");
    println!("cargo:rerun-if-changed=tests/browser");
    let missing: [(&str, Probe); 8] = [
        ("mtfu_no_pg", postgres),
        ("mtfu_no_nginx", || {
            has("nginx") || Path::new("/usr/sbin/nginx").exists()
        }),
        ("mtfu_no_pebble", || has("pebble")),
        ("mtfu_no_tuspy", || {
            Command::new("python3")
                .args(["-c", "import tusclient"])
                .output()
                .is_ok_and(|o| o.status.success())
        }),
        ("mtfu_no_moto", || {
            Command::new("python3")
                .args(["-c", "import moto.server"])
                .output()
                .is_ok_and(|o| o.status.success())
        }),
        ("mtfu_no_browser", || {
            has("node")
                && Path::new("/usr/bin/chromium").exists()
                && Path::new("tests/browser/node_modules").is_dir()
        }),
        ("mtfu_no_delalloc", delalloc),
        ("mtfu_no_root", || {
            Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
        }),
    ];
    let require = std::env::var("MTFU_TEST_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    for (cfg, present) in missing {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if !require && !present() {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn postgres() -> bool {
    if std::env::var("MTFU_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty()) {
        return true;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], 5432));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Whether a file just written to the temporary directory shows in `filefrag -v` as delayed
/// allocation (its blocks are allocated only when its writeback starts).
fn delalloc() -> bool {
    let path = std::env::temp_dir().join(format!("mtfu-detect-{}", std::process::id()));
    if std::fs::write(&path, vec![7u8; 256 * 1024]).is_err() {
        return false;
    }
    let sbin = Path::new("/usr/sbin/filefrag");
    let tool = if sbin.exists() {
        sbin
    } else {
        Path::new("filefrag")
    };
    let shown = Command::new(tool)
        .arg("-v")
        .arg(&path)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("delalloc"));
    let _ = std::fs::remove_file(&path);
    shown
}
