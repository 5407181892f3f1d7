//! Per-tenant quotas: enforced while streaming and atomically (uploads in flight hold a
//! reservation), 413 with the contract's body, nothing kept; per-tenant overrides; usage.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mtfu::domain::{TenantName, now_micros};
use mtfu::meta::quota::Limit;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_with};

const KIB: u64 = 1024;

fn quota_exceeded() -> Value {
    json!({"detail": "Quota exceeded", "code": "quota_exceeded"})
}

/// (files, bytes, reserved bytes) of john1.
async fn usage(app: &TestApp) -> (u64, u64, u64) {
    let (tenant, _) = app
        .state
        .files
        .meta
        .tenant_by_name("john1")
        .await
        .expect("tenant")
        .expect("john1");
    let (u, _) = app
        .state
        .files
        .meta
        .usage(tenant.id, now_micros())
        .await
        .expect("usage");
    (u.files, u.bytes, u.reserved_bytes)
}

/// A multipart upload whose file part has no declared length (chunked), sent in `chunks`
/// pieces of `chunk` bytes with a pause between them.
fn chunked_form(name: &str, chunks: usize, chunk: usize, pause: Duration) -> Form {
    let s = futures_util::stream::iter(0..chunks).then(move |i| async move {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        Ok::<_, std::io::Error>(Bytes::from(vec![b'q'; chunk]))
    });
    Form::new()
        .text("resource", "product")
        .text("resource_id", "1")
        .part(
            "file",
            Part::stream(reqwest::Body::wrap_stream(s)).file_name(name.to_owned()),
        )
}

pub async fn an_upload_over_the_byte_quota_is_refused_and_nothing_is_kept() {
    let app = spawn_with(|c| c.limits.quota_bytes = Some(100 * KIB)).await;
    let t = app.token("john1").await;
    let (s, _) = app
        .upload(&t, "product", "1", "a.bin", &vec![1; 60 * KIB as usize])
        .await;
    assert_eq!(s, 200);
    let blobs = app.blob_files().await.len();
    // Declared length over the room left: refused before anything is stored.
    let (s, body) = app
        .upload(&t, "product", "1", "b.bin", &vec![2; 50 * KIB as usize])
        .await;
    assert_eq!((s, body), (413, quota_exceeded()));
    // No declared length: refused while streaming, at the chunk that passes the quota.
    let r = app
        .send_upload(
            &t,
            chunked_form("c.bin", 10, 8 * KIB as usize, Duration::ZERO),
        )
        .await
        .expect("upload");
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.expect("json"), quota_exceeded());
    let (_, list) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(crate::helpers::names(&list), vec!["a.bin"]);
    assert!(
        crate::helpers::eventually(10, || async {
            app.intents().await == 0 && app.blob_files().await.len() == blobs
        })
        .await,
        "nothing of the refused uploads is kept"
    );
    assert_eq!(usage(&app).await, (1, 60 * KIB, 0));
    // 40 KiB fit exactly; then deleting frees the room again.
    let (s, _) = app
        .upload(&t, "product", "1", "d.bin", &vec![3; 40 * KIB as usize])
        .await;
    assert_eq!(s, 200);
    let (s, _) = app.upload(&t, "product", "1", "e.bin", b"x").await;
    assert_eq!(s, 413);
    app.delete(&t, "/api/files/product/1").await;
    let (s, _) = app.upload(&t, "product", "1", "e.bin", b"x").await;
    assert_eq!(s, 200);
    // Other tenants have their own quota.
    let t2 = app.token("john2").await;
    let (s, _) = app
        .upload(&t2, "product", "1", "a.bin", &vec![1; 90 * KIB as usize])
        .await;
    assert_eq!(s, 200);
}

pub async fn the_file_count_quota_counts_live_files() {
    let app = spawn_with(|c| c.limits.quota_files = Some(2)).await;
    let t = app.token("john1").await;
    for name in ["a", "b"] {
        assert_eq!(app.upload(&t, "product", "1", name, b"1").await.0, 200);
    }
    let (s, body) = app.upload(&t, "product", "1", "c", b"1").await;
    assert_eq!((s, body), (413, quota_exceeded()));
    app.delete(&t, "/api/files/product/1").await;
    assert_eq!(app.upload(&t, "product", "1", "c", b"1").await.0, 200);
}

pub async fn per_tenant_overrides_beat_the_default() {
    let app = spawn_with(|c| c.limits.quota_bytes = Some(10)).await;
    let meta = &app.state.files.meta;
    let name = TenantName::parse("john1").expect("name");
    assert!(
        meta.set_tenant_quota(&name, Some(Limit::Unlimited), None)
            .await
            .expect("set")
    );
    let t = app.token("john1").await;
    assert_eq!(app.upload(&t, "p", "1", "a", &[0; 100]).await.0, 200);
    let t2 = app.token("john2").await;
    assert_eq!(app.upload(&t2, "p", "1", "a", &[0; 100]).await.0, 413);
    meta.set_tenant_quota(&name, Some(Limit::Max(150)), Some(Limit::Max(5)))
        .await
        .expect("set");
    assert_eq!(app.upload(&t, "p", "1", "b", &[0; 50]).await.0, 200);
    assert_eq!(app.upload(&t, "p", "1", "c", &[0; 1]).await.0, 413);
    let q = meta.tenant_quota(&name).await.expect("q").expect("tenant");
    assert_eq!((q.bytes, q.files), (Limit::Max(150), Limit::Max(5)));
    meta.set_tenant_quota(&name, Some(Limit::Default), None)
        .await
        .expect("set");
    let q = meta.tenant_quota(&name).await.expect("q").expect("tenant");
    assert_eq!((q.bytes, q.files), (Limit::Default, Limit::Max(5)));
}

/// Eight uploads at once, none declaring its length, each 300 KiB, against a 1 MiB quota: the
/// reservations keep their sum within the quota, so at most three succeed, and what is stored
/// never passes it.
pub async fn concurrent_uploads_cannot_overshoot_the_quota_together() {
    let app = spawn_with(|c| c.limits.quota_bytes = Some(1024 * KIB)).await;
    let t = app.token("john1").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, url, t) = (app.client.clone(), app.url("/api/upload"), t.clone());
        tasks.push(tokio::spawn(async move {
            let form = chunked_form(
                &format!("f{i}"),
                10,
                30 * KIB as usize,
                Duration::from_millis(20),
            );
            let r = client
                .post(url)
                .bearer_auth(t)
                .multipart(form)
                .send()
                .await
                .expect("upload");
            r.status().as_u16()
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("join") {
            200 => ok += 1,
            413 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!((1..=3).contains(&ok), "{ok} uploads succeeded");
    let (files, bytes, _) = usage(&app).await;
    assert_eq!((files, bytes), (ok, ok * 300 * KIB));
    assert!(bytes <= 1024 * KIB);
    assert!(
        crate::helpers::eventually(10, || async {
            app.intents().await == 0 && usage(&app).await.2 == 0
        })
        .await,
        "every reservation was released"
    );
}

/// A tus upload reserves its whole `Upload-Length` at creation; over the quota the creation is
/// refused; the reservation becomes the file when it finishes, and goes with a termination.
pub async fn resumable_uploads_reserve_their_length_at_creation() {
    use crate::tus::{Tus, data, product};
    let app = spawn_with(|c| c.limits.quota_bytes = Some(100 * KIB)).await;
    let t = Tus::of(&app, "john1").await;
    let r = t.create(101 * KIB, &product("big.bin")).await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.expect("json"), quota_exceeded());
    let url = t.start(60 * KIB, &product("a.bin")).await;
    assert_eq!(usage(&app).await, (0, 0, 60 * KIB));
    // The other 40 KiB are free; 41 are not, while the first upload is unfinished.
    assert_eq!(t.create(41 * KIB, &product("b.bin")).await.status(), 413);
    let other = t.start(40 * KIB, &product("b.bin")).await;
    let r = t
        .req(reqwest::Method::DELETE, &other)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 204);
    assert_eq!(usage(&app).await, (0, 0, 60 * KIB));
    let d = data(60 * KIB as usize, 3);
    t.send(&url, &d, 0, &[20 * KIB as usize, 40 * KIB as usize])
        .await;
    assert_eq!(usage(&app).await, (1, 60 * KIB, 0));
    assert_eq!(t.create(41 * KIB, &product("c.bin")).await.status(), 413);
}

/// `GET /api/v2/usage` (the caller's own) and `GET /api/v2/limits` (no token).
pub async fn usage_and_limits_are_reported() {
    let app = spawn_with(|c| {
        c.limits.quota_bytes = Some(100 * KIB);
        c.server.max_request_body = Some(4 * 1024 * KIB);
    })
    .await;
    let t = app.token("john1").await;
    let meta = &app.state.files.meta;
    let name = TenantName::parse("john1").expect("name");
    meta.set_tenant_quota(&name, None, Some(Limit::Max(7)))
        .await
        .expect("set");
    app.upload(&t, "product", "1", "a.bin", &[1; 1000]).await;
    app.upload(&t, "product", "2", "b.bin", &[1; 24]).await;
    let (s, u) = app.get(&t, "/api/v2/usage").await;
    assert_eq!(s, 200);
    assert_eq!(
        u,
        json!({"files": 2, "bytes": 1024, "quota_bytes": 100 * KIB, "quota_files": 7,
               "reserved_bytes": 0, "reserved_files": 0})
    );
    let t2 = app.token("john2").await;
    let (_, u2) = app.get(&t2, "/api/v2/usage").await;
    assert_eq!(
        (u2["files"].clone(), u2["quota_files"].clone()),
        (json!(0), Value::Null)
    );
    let r = app
        .client
        .get(app.url("/api/v2/usage"))
        .send()
        .await
        .expect("usage");
    assert_eq!(r.status(), 401);
    let l: Value = app
        .client
        .get(app.url("/api/v2/limits"))
        .send()
        .await
        .expect("limits")
        .json()
        .await
        .expect("json");
    assert_eq!(
        l["max_file_size"],
        json!(app.state.cfg.limits.max_file_size)
    );
    assert_eq!(l["max_request_body"], json!(4 * 1024 * KIB));
    assert_eq!(l["tus"]["max_chunk_size"], json!(4 * 1024 * KIB));
    let rec = l["tus"]["recommended_chunk_size"]
        .as_u64()
        .expect("recommended");
    assert!(rec > 0 && rec <= 4 * 1024 * KIB, "{rec}");
    assert_eq!(l["default_quota_bytes"], json!(100 * KIB));
}

crate::store_matrix!(
    usage_and_limits_are_reported,
    resumable_uploads_reserve_their_length_at_creation,
    an_upload_over_the_byte_quota_is_refused_and_nothing_is_kept,
    the_file_count_quota_counts_live_files,
    per_tenant_overrides_beat_the_default,
    concurrent_uploads_cannot_overshoot_the_quota_together,
);
