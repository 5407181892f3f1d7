//! A local blob store on a disk that fills up or turns read-only: a precise 507 or 503, nothing
//! half-visible, `/readyz` telling, and recovery without a restart. The disk is a small tmpfs
//! mounted for the test (root only: elsewhere the build marks the test ignored).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::faults::assert_consistent;
use crate::helpers::{eventually, spawn_with};

/// A tmpfs of `size`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_owned()))
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(mtfu_no_root, ignore = "mounting a tmpfs needs root")]
async fn a_full_or_read_only_disk_is_a_precise_error_and_recovers_without_a_restart() {
    let outer = tempfile::tempdir().expect("tempdir");
    let blobs = outer.path().join("blobs");
    // Ignored by the build where it does not run as root (tests/support/detect.rs).
    let disk = Tmpfs::mount(&blobs, "2m").expect("mount a tmpfs (root)");
    let app = spawn_with(|c| c.blobs.local.path = Some(blobs.clone())).await;
    let t = app.token("john1").await;
    let mib = vec![7u8; 1 << 20];
    assert_eq!(app.upload(&t, "product", "1", "one.bin", &mib).await.0, 200);

    // Full: 507, and the partial blob and its intent are gone.
    let big = vec![8u8; 3 << 20];
    let (status, body) = app.upload(&t, "product", "2", "big.bin", &big).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["code"], "insufficient_storage", "{body}");
    assert!(eventually(10, || async { mtfu::cleanup::running() == 0 }).await);
    assert!(crate::helpers::files_under(&blobs.join("tmp")).is_empty());
    assert_eq!(app.intents().await, 0);
    let (_, listing) = app.get(&t, "/api/files/product/2").await;
    assert!(crate::helpers::names(&listing).is_empty(), "{listing}");

    // Room again (a file deleted and collected): uploads work, no restart.
    assert_eq!(app.delete(&t, "/api/files/product/1").await.0, 200);
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    mtfu::gc::sweep(meta, blob, std::time::Duration::ZERO, false)
        .await
        .expect("gc");
    assert_eq!(
        app.upload(&t, "product", "3", "again.bin", &mib).await.0,
        200
    );

    // Read-only: 503 blob_store_unavailable, and /readyz says not ready.
    disk.remount("ro");
    let (status, body) = app.upload(&t, "product", "4", "ro.bin", b"x").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "blob_store_unavailable", "{body}");
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    // Downloads still work.
    let (_, listing) = app.get(&t, "/api/files/product/3").await;
    let url = listing["files"][0]["url"].as_str().expect("url").to_owned();
    assert_eq!(app.download(&url).await, mib);

    disk.remount("rw");
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    assert_eq!(app.upload(&t, "product", "4", "rw.bin", b"x").await.0, 200);
    assert_consistent(&app).await;
    drop(app);
    drop(disk);
}
