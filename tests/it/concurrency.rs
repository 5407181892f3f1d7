//! Races decided by the metadata store, not by luck.

use std::time::Duration;

use crate::helpers::{eventually, names, spawn_app};

/// Clients uploading the same (tenant, resource, resource_id, name) at once.
const RACERS: usize = 16;

pub async fn concurrent_uploads_of_one_name_leave_one_file_and_no_lost_blob() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let bodies: Vec<Vec<u8>> = (0..RACERS)
        .map(|i| format!("version {i}").into_bytes())
        .collect();
    let uploads = bodies
        .iter()
        .map(|b| app.upload(&t, "product", "1", "same.txt", b));
    let results = futures_util::future::join_all(uploads).await;
    for (s, body) in &results {
        assert_eq!(*s, 200, "{body}");
    }
    let (_, list) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(names(&list), ["same.txt"], "exactly one visible file");
    let url = list["files"][0]["url"].as_str().expect("url");
    let got = app.download(url).await;
    assert!(
        bodies.iter().any(|b| b[..] == got[..]),
        "the bytes of one whole upload"
    );
    assert_eq!(app.intents().await, 0);
    // Every replaced blob is found: after a sweep only the live one is left.
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    mtfu::gc::sweep(meta, blob, Duration::ZERO, false)
        .await
        .expect("gc");
    assert!(
        eventually(5, || async { app.blob_files().await.len() == 1 }).await,
        "{:?}",
        app.blob_files().await
    );
}

crate::store_matrix!(concurrent_uploads_of_one_name_leave_one_file_and_no_lost_blob);
