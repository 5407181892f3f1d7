//! The tus protocol's edges: tenancy, `Tus-Resumable` on every request, discovery (`OPTIONS`),
//! the request cap, and metadata and lengths refused before anything is stored.

use super::*;

store_matrix!(
    another_tenants_upload_is_not_found,
    tus_resumable_is_required_on_every_request_but_options,
    options_tells_versions_extensions_and_limits,
    a_chunk_over_the_request_cap_is_413_and_nothing_is_kept,
    bad_metadata_and_lengths_are_refused_before_anything_is_stored,
);

pub async fn another_tenants_upload_is_not_found() {
    let app = spawn_with(|_| {}).await;
    let t1 = Tus::of(&app, "john1").await;
    let t2 = Tus::of(&app, "john2").await;
    let d = data(100, 9);
    let url = t1.start(100, &product("mine.bin")).await;
    assert_eq!(t1.patch(&url, 0, &d[..50]).await.status(), 204);
    assert_eq!(t2.head(&url).await.status(), 404);
    assert_eq!(t2.patch(&url, 50, &d[50..]).await.status(), 404);
    assert_eq!(
        t2.req(reqwest::Method::DELETE, &url)
            .send()
            .await
            .expect("DELETE")
            .status(),
        404
    );
    // Made-up ids too.
    let fake = format!("{}/api/v2/uploads/{}", t1.base, "0".repeat(32));
    assert_eq!(t1.head(&fake).await.status(), 404);
    assert_eq!(
        t1.head(&format!("{}/api/v2/uploads/../x", t1.base))
            .await
            .status(),
        404
    );
    // No token: 401.
    let r = app
        .client
        .head(&url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("HEAD");
    assert_eq!(r.status(), 401);
    assert_eq!(t1.offset(&url).await, 50);
    t1.send(&url, &d, 50, &[50]).await;
    t1.assert_file("mine.bin", &d).await;
    let (_, list) = t2.get("/api/files/product/1").await;
    assert_eq!(list["count"], 0, "private to john1");
}

pub async fn tus_resumable_is_required_on_every_request_but_options() {
    let app = spawn_with(|_| {}).await;
    let t = Tus::of(&app, "john1").await;
    let url = t.start(10, &product("v.bin")).await;
    let without = |m: reqwest::Method, u: &str| {
        app.client
            .request(m, u)
            .bearer_auth(&t.token)
            .header("Upload-Offset", "0")
            .header("Upload-Length", "10")
            .header("Upload-Metadata", product("w.bin"))
            .header("Content-Type", "application/offset+octet-stream")
    };
    let collection = format!("{}/api/v2/uploads", t.base);
    for (m, u) in [
        (reqwest::Method::HEAD, url.as_str()),
        (reqwest::Method::PATCH, url.as_str()),
        (reqwest::Method::DELETE, url.as_str()),
        (reqwest::Method::POST, collection.as_str()),
    ] {
        for version in [None, Some("0.2.2"), Some("2.0.0")] {
            let mut b = without(m.clone(), u);
            if let Some(v) = version {
                b = b.header("Tus-Resumable", v);
            }
            let r = b.body("0123456789").send().await.expect("request");
            assert_eq!(r.status(), 412, "{m} {version:?}");
            assert_eq!(header(&r, "tus-version"), Some("1.0.0"));
            assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
        }
    }
    // Nothing was processed.
    assert_eq!(t.offset(&url).await, 0);
    let (_, list) = t.get("/api/files/product/1").await;
    assert_eq!(list["count"], 0);
    // A method tus does not have on an upload.
    let r = t.req(reqwest::Method::GET, &url).send().await.expect("GET");
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
}

pub async fn options_tells_versions_extensions_and_limits() {
    let app = spawn_with(|c| {
        c.limits.max_file_size = 123_456_789;
        c.server.max_request_body = Some(5_000_000);
    })
    .await;
    for path in [
        "/api/v2/uploads",
        "/api/v2/uploads/0123456789abcdef0123456789abcdef",
    ] {
        // No token needed, Tus-Resumable ignored.
        let r = app
            .client
            .request(reqwest::Method::OPTIONS, app.url(path))
            .send()
            .await
            .expect("OPTIONS");
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(header(&r, "tus-version"), Some("1.0.0"));
        assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
        let ext: Vec<&str> = header(&r, "tus-extension")
            .expect("ext")
            .split(',')
            .collect();
        for e in [
            "creation",
            "creation-with-upload",
            "termination",
            "expiration",
            "checksum",
        ] {
            assert!(ext.contains(&e), "{e} in {ext:?}");
        }
        assert_eq!(header(&r, "tus-max-size"), Some("123456789"));
        assert_eq!(header(&r, "tus-checksum-algorithm"), Some("sha1,sha256"));
        assert_eq!(header(&r, "tus-max-chunk-size"), Some("5000000"));
    }
}

pub async fn a_chunk_over_the_request_cap_is_413_and_nothing_is_kept() {
    const CAP: usize = 256 * 1024;
    let app = spawn_with(|c| c.server.max_request_body = Some(CAP as u64)).await;
    let t = Tus::of(&app, "john1").await;
    let d = data(4 * CAP, 10);
    let url = t.start(d.len() as u64, &product("capped.bin")).await;
    assert_eq!(t.patch(&url, 0, &d[..CAP]).await.status(), 204);
    // Said by Content-Length: refused before reading.
    let r = t.patch(&url, CAP as u64, &d[CAP..2 * CAP + 1]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(header(&r, "tus-resumable"), Some("1.0.0"));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "request_too_large");
    assert_eq!(v["max_request_body"], CAP as u64);
    assert_eq!(t.offset(&url).await, CAP as u64);
    // No length: found while streaming, the chunk is dropped whole.
    let chunks: Vec<Result<Bytes, std::io::Error>> = d[CAP..2 * CAP + 100]
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = t.patch_with(&url, CAP as u64, body, None).await;
    assert_eq!(r.status(), 413);
    assert_eq!(t.offset(&url).await, CAP as u64);
    // The creation request's body is capped too.
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Length", d.len().to_string())
        .header("Upload-Metadata", product("big-first.bin"))
        .header("Content-Type", "application/offset+octet-stream")
        .body(d[..CAP + 1].to_vec())
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 413);
    t.send(&url, &d, CAP, &[CAP]).await;
    t.assert_file("capped.bin", &d).await;
}

pub async fn bad_metadata_and_lengths_are_refused_before_anything_is_stored() {
    let app = spawn_with(|c| c.limits.max_file_size = 1000).await;
    let t = Tus::of(&app, "john1").await;
    let cases = [
        (
            metadata(&[("resource", "product"), ("resource_id", "1")]),
            "filename",
        ),
        (
            metadata(&[("filename", "a"), ("resource_id", "1")]),
            "resource",
        ),
        (
            metadata(&[("filename", "a"), ("resource", "p")]),
            "resource_id",
        ),
        (
            metadata(&[
                ("filename", "../x"),
                ("resource", "p"),
                ("resource_id", "1"),
            ]),
            "filename",
        ),
        (
            metadata(&[("filename", "a"), ("resource", "a/b"), ("resource_id", "1")]),
            "resource",
        ),
        (
            metadata(&[
                ("filename", "a"),
                ("resource", "p"),
                ("resource_id", "1"),
                ("is_public", "maybe"),
            ]),
            "is_public",
        ),
        ("filename !!!,resource cA==".to_owned(), "Upload-Metadata"),
    ];
    for (meta, field) in cases {
        let r = t.create(10, &meta).await;
        assert_eq!(r.status(), 400, "{meta}");
        let v: Value = r.json().await.expect("json");
        assert!(v[field].is_array(), "{field}: {v}");
    }
    let r = t.create(1001, &product("big.bin")).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["max_file_size"], 1000);
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Metadata", product("x.bin"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400, "no Upload-Length");
    let r = t
        .req(reqwest::Method::POST, &format!("{}/api/v2/uploads", t.base))
        .header("Upload-Defer-Length", "1")
        .header("Upload-Metadata", product("x.bin"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400, "deferred length");
    assert_eq!(app.blob_files().await, Vec::<String>::new());
    assert_eq!(
        leftovers(app.dir.path(), app.s3.as_ref()),
        Vec::<String>::new()
    );
    // The metadata's labels and flags reach the file, under tus-js-client's names too.
    let meta = metadata(&[
        ("name", "pub.txt"),
        ("resource", "product"),
        ("resource_id", "1"),
        ("is_public", "true"),
        ("filetype", "text/plain"),
    ]);
    let url = t.start(5, &meta).await;
    t.send(&url, b"hello", 0, &[5]).await;
    let other = Tus::of(&app, "john2").await;
    let (_, list) = other.get("/api/files/product/1").await;
    assert_eq!(list["files"][0]["name"], "pub.txt", "{list}");
    assert_eq!(list["files"][0]["is_public"], true);
    assert_eq!(list["files"][0]["content_type"], "text/plain");
    assert_eq!(list["files"][0]["tenant_username"], "john1");
}
