//! A real browser against the real server: a page on another origin (served by
//! tests/browser/run.mjs) uses tus-js-client and `fetch` + `FormData` in Debian's chromium,
//! driven by playwright-core. Skipped when node, chromium or tests/browser/node_modules are
//! missing, unless `MTFU_TEST_REQUIRE_TOOLS=1` (CI installs them in .ci/run).

use std::path::Path;

use crate::helpers::spawn_with;

const MIB: u64 = 1024 * 1024;

fn missing_tools(dir: &Path) -> Option<&'static str> {
    let runs = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !runs("node", "--version") {
        return Some("node");
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("chromium (apt-get install chromium)");
    }
    if !dir.join("node_modules/playwright-core").is_dir()
        || !dir.join("node_modules/tus-js-client").is_dir()
    {
        return Some("tests/browser/node_modules (npm ci --prefix tests/browser)");
    }
    None
}

/// Log in, multipart upload, list, a 20 MiB tus upload in 5 MiB chunks, an upload aborted after
/// its first chunk and resumed after a reload from tus-js-client's stored fingerprint, every
/// download's SHA-256 checked in the page; a page on an origin not allowed is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    mtfu_no_browser,
    ignore = "chromium, node or tests/browser/node_modules missing (npm ci --prefix tests/browser)"
)]
async fn a_page_on_another_origin_uploads_resumes_and_downloads_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    // The build ignores this test where it finds them missing (tests/support/detect.rs).
    if let Some(tool) = missing_tools(&dir) {
        panic!("{tool} is missing");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let origin = format!("http://127.0.0.1:{port}");
    let allowed = origin.clone();
    let app = spawn_with(move |c| {
        c.cors.allowed_origins = vec![allowed];
        c.limits.max_file_size = 32 * MIB;
    })
    .await;
    let out = tokio::process::Command::new("node")
        .arg(dir.join("run.mjs"))
        .arg(&app.base)
        .arg(&origin)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // What the page did is on the server too.
    assert!(stdout.contains("ok: resumed from 5 MiB"), "{stdout}");
    let token = app.token("john1").await;
    let (status, listing) = app.get(&token, "/api/files/browser/page-1").await;
    assert_eq!(status, 200);
    let mut names = crate::helpers::names(&listing);
    names.sort();
    assert_eq!(names, ["form.bin", "resumed.bin", "tus-20MiB.bin"]);
}
