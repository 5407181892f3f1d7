//! How a resumable upload's bytes arrive: chunks of uneven sizes (1 byte, 100 KiB, 5 MiB + 3,
//! ...: far below and across S3's part size), creation-with-upload, offset conflicts, checksums,
//! S3 tail objects, and the finished file replacing one of the same name.

use super::*;

store_matrix!(
    uneven_chunks_become_a_listed_file_with_the_right_digest,
    creation_with_upload_takes_the_first_chunk,
    a_wrong_offset_is_a_conflict_and_changes_nothing,
    chunk_checksums_are_verified_and_a_mismatch_discards_the_chunk,
    a_finished_upload_replaces_the_file_of_the_same_name,
    many_tiny_chunks_keep_few_tail_objects,
);

pub async fn uneven_chunks_become_a_listed_file_with_the_right_digest() {
    let app = spawn_with(|c| c.limits.max_file_size = 64 << 20).await;
    let t = Tus::of(&app, "john1").await;
    // 1 byte, 100 KiB, a part and 3, then small ones, then enough to fill a part again.
    let sizes = [
        1,
        100 * 1024,
        5 * MIB + 3,
        7,
        64 * 1024,
        3 * MIB,
        12_345,
        2 * MIB + 1,
    ];
    let total: usize = sizes.iter().sum();
    let d = data(total, 1);
    let meta = product("uneven.bin");
    let url = t.start(total as u64, &meta).await;

    let h = t.head(&url).await;
    assert_eq!(h.status(), 200);
    assert_eq!(header(&h, "tus-resumable"), Some("1.0.0"));
    assert_eq!(header(&h, "upload-offset"), Some("0"));
    assert_eq!(
        header(&h, "upload-length"),
        Some(total.to_string().as_str())
    );
    assert_eq!(header(&h, "upload-metadata"), Some(meta.as_str()));
    assert_eq!(header(&h, "cache-control"), Some("no-store"));
    let expires = header(&h, "upload-expires").expect("Upload-Expires");
    assert!(
        chrono::DateTime::parse_from_rfc2822(expires).is_ok() && expires.ends_with(" GMT"),
        "{expires}"
    );

    // On S3 (5 MiB parts): the tail objects after each chunk. The first two are tails; the
    // third is one part with them read back in front; the next four are tails (together still
    // short of a part); the last makes one part of them and itself, and completes the upload.
    let tails_after = [1, 2, 0, 1, 2, 3, 4, 0];
    let mut at = 0;
    for (i, n) in sizes.iter().enumerate() {
        let r = t.patch(&url, at as u64, &d[at..at + n]).await;
        assert_eq!(r.status(), 204, "chunk {i}: {:?}", r.text().await);
        at += n;
        if let Some(s3) = &app.s3 {
            // Tails a part made obsolete are removed in the background.
            let want = tails_after[i];
            let ok = eventually(10, || async { tail_objects(s3) == want }).await;
            assert!(
                ok,
                "after chunk {i}: {} tails, not {want}",
                tail_objects(s3)
            );
        }
        assert_eq!(header(&r, "upload-offset"), Some(at.to_string().as_str()));
        assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
        if at < total {
            assert!(header(&r, "upload-expires").is_some());
            assert_eq!(t.offset(&url).await, at as u64);
        }
    }
    t.assert_file("uneven.bin", &d).await;
    // The state is gone with the upload; nothing of it is left in the stores.
    assert_eq!(t.head(&url).await.status(), 404);
    assert_eq!(
        app.blob_files().await.len(),
        1,
        "{:?}",
        app.blob_files().await
    );
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
    assert_eq!(app.intents().await, 0);
    assert_eq!(app.state.files.budget.in_use(), 0);
    assert!(app.state.files.budget.high_water() <= app.state.files.budget.capacity());
}

pub async fn creation_with_upload_takes_the_first_chunk() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(300_000, 2);
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Length", d.len().to_string())
        .header("Upload-Metadata", product("first.bin"))
        .header("Content-Type", "application/offset+octet-stream")
        .body(d[..100_000].to_vec())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "upload-offset"), Some("100000"));
    assert!(header(&r, "upload-expires").is_some());
    let url = t.here(header(&r, "location").expect("Location"));
    assert_eq!(t.offset(&url).await, 100_000);
    t.send(&url, &d, 100_000, &[200_000]).await;
    t.assert_file("first.bin", &d).await;

    // The whole file in the creation request.
    let small = data(5000, 3);
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Length", small.len().to_string())
        .header("Upload-Metadata", product("whole.bin"))
        .header("Content-Type", "application/offset+octet-stream")
        .body(small.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "upload-offset"), Some("5000"));
    t.assert_file("whole.bin", &small).await;

    // An empty file is done at creation.
    let r = t.create(0, &product("empty.bin")).await;
    assert_eq!(r.status(), 201);
    t.assert_file("empty.bin", b"").await;
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
}

pub async fn a_wrong_offset_is_a_conflict_and_changes_nothing() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(1000, 4);
    let url = t.start(1000, &product("c.bin")).await;
    assert_eq!(t.patch(&url, 0, &d[..10]).await.status(), 204);
    for wrong in [0, 5, 11, 999] {
        let r = t.patch(&url, wrong, &d[10..20]).await;
        assert_eq!(r.status(), 409, "offset {wrong}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], "offset_mismatch");
        assert_eq!(v["upload_offset"], 10);
    }
    assert_eq!(t.offset(&url).await, 10);
    // A chunk past the length is refused whole.
    let r = t.patch(&url, 10, &data(991, 5)).await;
    assert_eq!(r.status(), 413);
    assert_eq!(t.offset(&url).await, 10);
    // The wrong body type, a missing offset.
    let r = t
        .req(reqwest::Method::PATCH, &url)
        .header("Upload-Offset", "10")
        .header("Content-Type", "application/octet-stream")
        .body(d[10..].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), 415);
    let r = t
        .req(reqwest::Method::PATCH, &url)
        .header("Content-Type", "application/offset+octet-stream")
        .body(d[10..].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), 400);
    t.send(&url, &d, 10, &[990]).await;
    t.assert_file("c.bin", &d).await;
}

pub async fn chunk_checksums_are_verified_and_a_mismatch_discards_the_chunk() {
    let app = spawn_with(|c| c.limits.max_file_size = 32 << 20).await;
    let t = Tus::of(&app, "john1").await;
    // Big enough that the bad chunk fills an S3 part before it is found bad.
    let d = data(6 * MIB + 10, 6);
    let url = t.start(d.len() as u64, &product("sum.bin")).await;
    let sha1 = |b: &[u8]| format!("sha1 {}", b64(&<sha1::Sha1 as sha1::Digest>::digest(b)));
    let sha256 = |b: &[u8]| format!("sha256 {}", b64(&Sha256::digest(b)));

    let c1 = &d[..1000];
    let r = t
        .patch_with(&url, 0, c1.to_vec().into(), Some(sha1(c1)))
        .await;
    assert_eq!(r.status(), 204);
    let big = &d[1000..1000 + 5 * MIB + 3];
    let r = t
        .patch_with(
            &url,
            1000,
            big.to_vec().into(),
            Some(sha256(b"not these bytes")),
        )
        .await;
    assert_eq!(r.status().as_u16(), 460);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "checksum_mismatch");
    assert_eq!(t.offset(&url).await, 1000, "the chunk was discarded");
    let r = t
        .patch_with(&url, 1000, big.to_vec().into(), Some(sha1(b"nope")))
        .await;
    assert_eq!(r.status().as_u16(), 460);
    let r = t
        .patch_with(&url, 1000, big.to_vec().into(), Some("md5 AAAA".into()))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(t.offset(&url).await, 1000);

    let r = t
        .patch_with(&url, 1000, big.to_vec().into(), Some(sha256(big)))
        .await;
    assert_eq!(r.status(), 204);
    let at = 1000 + big.len();
    let rest = &d[at..];
    let r = t
        .patch_with(&url, at as u64, rest.to_vec().into(), Some(sha1(rest)))
        .await;
    assert_eq!(r.status(), 204);
    t.assert_file("sum.bin", &d).await;
}

pub async fn a_finished_upload_replaces_the_file_of_the_same_name() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let (s, _) = app
        .upload(&t.token, "product", "1", "same.bin", b"old bytes")
        .await;
    assert_eq!(s, 200);
    let d = data(70_000, 13);
    let url = t.start(d.len() as u64, &product("same.bin")).await;
    t.send(&url, &d, 0, &[1, 69_999]).await;
    let (_, list) = t.get("/api/files/product/1").await;
    assert_eq!(list["count"], 1, "{list}");
    t.assert_file("same.bin", &d).await;
    // The replaced blob went to garbage and was removed.
    assert!(
        eventually(10, || async { app.blob_files().await.len() == 1 }).await,
        "{:?}",
        app.blob_files().await
    );
}

pub async fn many_tiny_chunks_keep_few_tail_objects() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let sizes: Vec<usize> = (0..40).map(|i| 1 + (i * 37) % 1000).collect();
    let d = data(sizes.iter().sum(), 14);
    let url = t.start(d.len() as u64, &product("tiny.bin")).await;
    let mut at = 0;
    for n in sizes {
        assert_eq!(t.patch(&url, at as u64, &d[at..at + n]).await.status(), 204);
        at += n;
        if let Some(s3) = &app.s3 {
            // Merged once they pass 16 (the state names at most that many; the merged ones are
            // removed in the background).
            let ok = eventually(10, || async { tail_objects(s3) <= 16 }).await;
            assert!(ok, "{}", tail_objects(s3));
        }
    }
    t.assert_file("tiny.bin", &d).await;
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
}

/// With 8 MiB parts, chunks of S3's minimum part size (5 MiB) or more are sent as parts of
/// their own size, never through tail objects; shorter ones wait in tails until enough came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_chunks_of_a_minimum_part_or_more_skip_the_tails() {
    let app = crate::store::BLOBS
        .scope(
            crate::store::BlobStore::S3,
            spawn_with(|c| {
                c.limits.max_file_size = 64 << 20;
                c.blobs.s3.part_size = 8 << 20;
            }),
        )
        .await;
    let s3 = app.s3.as_ref().expect("S3");
    let t = Tus::of(&app, "john1").await;
    let sizes = [5 * MIB, 5 * MIB + 1, MIB, 4 * MIB, 9 * MIB, 3];
    let tails_after = [0, 0, 1, 0, 0, 0];
    let d = data(sizes.iter().sum(), 15);
    let url = t.start(d.len() as u64, &product("parts.bin")).await;
    let mut at = 0;
    for (i, n) in sizes.into_iter().enumerate() {
        assert_eq!(t.patch(&url, at as u64, &d[at..at + n]).await.status(), 204);
        at += n;
        let want = tails_after[i];
        let ok = eventually(10, || async { tail_objects(s3) == want }).await;
        assert!(
            ok,
            "after chunk {i}: {} tails, not {want}",
            tail_objects(s3)
        );
    }
    t.assert_file("parts.bin", &d).await;
}
