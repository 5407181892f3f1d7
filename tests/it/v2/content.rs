//! A file's bytes in and out: content streamed with ranges, ETags and safe headers, the raw
//! `PUT` upload, and content types (sniffed, and refused with 415 outside the allow list).

use super::*;

crate::store_matrix!(
    content_is_streamed_with_ranges_etags_and_safe_headers,
    a_raw_put_uploads_replaces_and_validates_like_the_form_upload,
    content_types_are_sniffed_and_the_allow_list_refuses_with_415,
);

pub async fn content_is_streamed_with_ranges_etags_and_safe_headers() {
    let app = spawn_app().await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let name = "r\u{e9}sum\u{e9} \"1\".bin";
    let (s, body) = app
        .upload_form(
            &t1,
            form(
                "product",
                "1",
                name,
                &data,
                Some("application/x-thing"),
                false,
            ),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let fid = id(&body["file"]);
    let etag = format!("\"{}\"", sha(&data));

    let r = content(&app, &t1, &fid, &[]).await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/x-thing");
    assert_eq!(h["content-length"], "100000");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["etag"], etag.as_str());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["cache-control"]
            .to_str()
            .expect("cc")
            .starts_with("private")
    );
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"r_sum_ _1_.bin\"; \
         filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.bin"
    );
    assert_eq!(r.bytes().await.expect("body").to_vec(), data);

    // Ranges: the first byte, a suffix, an open end, past the end, and several (whole body).
    let range = |spec: &'static str| {
        let (app, t1, fid) = (&app, &t1, &fid);
        async move { content(app, t1, fid, &[("range", spec)]).await }
    };
    let r = range("bytes=0-0").await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-0/100000");
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[..1]);
    let r = range("bytes=-10").await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 99990-99999/100000");
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[99_990..]);
    let r = range("bytes=99000-").await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[99_000..]);
    let r = range("bytes=100000-").await;
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    let r = range("bytes=0-1,5-6").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("b").len(), data.len());

    // Conditional GETs: If-None-Match (weak comparison, lists, *) and If-Range.
    let weak = format!("W/{etag}");
    let listed = format!("\"nope\", {etag}");
    for inm in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let r = content(&app, &t1, &fid, &[("if-none-match", inm)]).await;
        assert_eq!(r.status(), 304, "{inm}");
        assert_eq!(r.headers()["etag"], etag.as_str());
        assert!(r.bytes().await.expect("b").is_empty());
    }
    let r = content(&app, &t1, &fid, &[("if-none-match", "\"nope\"")]).await;
    assert_eq!(r.status(), 200);
    let r = content(
        &app,
        &t1,
        &fid,
        &[("range", "bytes=0-0"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(r.status(), 206);
    for stale in ["\"nope\"", weak.as_str(), "Wed, 21 Oct 2015 07:28:00 GMT"] {
        let r = content(
            &app,
            &t1,
            &fid,
            &[("range", "bytes=0-0"), ("if-range", stale)],
        )
        .await;
        assert_eq!(r.status(), 200, "{stale}");
        assert_eq!(r.bytes().await.expect("b").to_vec(), data);
    }

    // HEAD: the headers, no body.
    let r = app
        .client
        .head(app.url(&format!("/api/v2/files/{fid}/content")))
        .bearer_auth(&t1)
        .header("range", "bytes=10-19")
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-length"], "10");
    assert!(r.bytes().await.expect("b").is_empty());

    // Another tenant's private file: 404 like a missing one.
    let r = content(&app, &t2, &fid, &[]).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        serde_json::json!({"detail": "Not found."})
    );
    let r = app
        .client
        .post(app.url(&format!("/api/v2/files/{fid}/content")))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

pub async fn a_raw_put_uploads_replaces_and_validates_like_the_form_upload() {
    let app = spawn_with(|c| c.limits.max_file_size = 1000).await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let r = put(
        &app,
        &t1,
        "product/1/hello.txt",
        Some("text/plain; charset=utf-8"),
        b"hi",
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().expect("loc").to_owned();
    let (_, first) = status_json(r).await;
    assert_eq!(first["name"], "hello.txt");
    assert_eq!(first["size"], 2);
    assert_eq!(first["content_type"], "text/plain; charset=utf-8");
    assert_eq!(first["sha256"], sha(b"hi"));
    assert_eq!(first["is_public"], false);
    assert!(first["url"].is_string());
    assert_eq!(location, app.url(&format!("/api/v2/files/{}", id(&first))));
    let r = content(&app, &t1, &id(&first), &[]).await;
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.bytes().await.expect("b").to_vec(), b"hi");

    // The same name again replaces it: 200, a new id, the old one gone, one blob left.
    let r = put(
        &app,
        &t1,
        "product/1/hello.txt",
        Some("text/plain"),
        b"hello again",
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, second) = status_json(r).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(
        app.get(&t1, &format!("/api/v2/files/{}", id(&first)))
            .await
            .0,
        404
    );
    let (_, list) = app.get(&t1, "/api/files/product/1").await;
    assert_eq!(list["count"], 1);
    assert!(eventually(5, || async { app.blob_files().await.len() == 1 }).await);

    // Query options, and a percent-encoded name.
    let r = put(
        &app,
        &t1,
        "product/1/r%C3%A9sum%C3%A9%20(1).txt?is_public=true&expires_in=3600",
        None,
        b"cv",
    )
    .await;
    assert_eq!(r.status(), 201);
    let (_, cv) = status_json(r).await;
    assert_eq!(cv["name"], "r\u{e9}sum\u{e9} (1).txt");
    assert_eq!(cv["is_public"], true);
    assert!(cv["expire_at"].is_string());
    assert_eq!(cv["content_type"], "text/plain", "guessed from the name");
    assert_eq!(
        app.get(&t2, &format!("/api/v2/files/{}", id(&cv))).await.0,
        200
    );

    // Validation: the domain types' messages, before any byte is kept.
    let long = "r".repeat(101);
    let bad_name = "Invalid file name: it must not be '.' or '..' nor contain '/', '\\' or control characters.";
    for (path, field, msg) in [
        // (`..` itself cannot be sent: clients resolve it, `%2E%2E` included, per the URL
        // standard; `FileName`'s unit tests cover it.)
        ("product/1/..%2F..%2Fetc%2Fpasswd", "name", bad_name),
        ("product/1/a%2Fb.txt", "name", bad_name),
        ("product/1/a%0Ab.txt", "name", bad_name),
        ("product/1/a%5Cb.txt", "name", bad_name),
        (
            &*format!("{long}/1/a.txt"),
            "resource",
            "Resource must be at most 100 characters.",
        ),
        (
            "product/1/a.txt?is_public=maybe",
            "is_public",
            "Must be a valid boolean.",
        ),
        (
            "product/1/a.txt?expires_in=soon",
            "expires_in",
            "A valid integer is required.",
        ),
    ] {
        let (s, body) = status_json(put(&app, &t1, path, None, b"data").await).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert_eq!(body[field], serde_json::json!([msg]), "{path}");
    }

    // The size limit, with a Content-Length and without one (chunked), counted while streaming.
    let (s, body) = status_json(put(&app, &t1, "product/1/big.bin", None, &[7; 1001]).await).await;
    assert_eq!(s, 413);
    assert_eq!(
        body,
        serde_json::json!({"detail": "File size exceeds the maximum allowed size of 1000 bytes",
                           "code": "file_too_large"})
    );
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![1u8; 400]))),
    );
    let r = app
        .client
        .put(app.url("/api/v2/files/product/1/chunked.bin"))
        .bearer_auth(&t1)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 413);
    assert_eq!(
        put(&app, &t1, "product/1/exact.bin", None, &[7; 1000])
            .await
            .status(),
        201
    );
    assert!(eventually(5, || async { app.blob_files().await.len() == 3 }).await);
    assert_eq!(app.intents().await, 0);

    let r = app
        .client
        .put(app.url("/api/v2/files/product/1/x.txt"))
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/api/v2/files/product/1/x.txt"))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "PUT");
}

pub async fn content_types_are_sniffed_and_the_allow_list_refuses_with_415() {
    // No allow-list: the client's type is kept; none or octet-stream is sniffed.
    let app = spawn_app().await;
    let t = app.token("john1").await;
    for (path, ct, data, want) in [
        ("p/1/a.pdf.bin", None, PDF, "application/pdf"),
        ("p/1/b", Some("application/octet-stream"), PNG, "image/png"),
        ("p/1/c.html", Some("text/html"), PNG, "text/html"),
        (
            "p/1/d.unknownext",
            None,
            b"just text" as &[u8],
            "application/octet-stream",
        ),
    ] {
        let (s, f) = status_json(put(&app, &t, path, ct, data).await).await;
        assert_eq!(s, 201, "{path}: {f}");
        assert_eq!(f["content_type"], want, "{path}");
        let r = content(&app, &t, &id(&f), &[]).await;
        assert_eq!(r.headers()["content-type"], want);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(
            r.headers()["content-disposition"]
                .to_str()
                .expect("cd")
                .starts_with("attachment;")
        );
    }
    let (s, body) = app
        .upload_form(&t, form("p", "2", "noname", PNG, None, false))
        .await;
    assert_eq!(
        (s, &body["file"]["content_type"]),
        (200, &serde_json::json!("image/png"))
    );

    let app = spawn_with(|c| {
        c.limits.allowed_content_types = vec!["image/*".into(), "text/plain".into()];
    })
    .await;
    let t = app.token("john1").await;
    let refused = |ct: &str| {
        serde_json::json!({"detail": format!("Content type {ct} is not allowed"),
                           "code": "unsupported_media_type"})
    };
    // Multipart: a PNG as image/png or untyped; a PDF passed off as image/png is refused.
    let (s, body) = app
        .upload_form(&t, form("p", "1", "a.png", PNG, Some("image/png"), false))
        .await;
    assert_eq!(
        (s, &body["file"]["content_type"]),
        (200, &serde_json::json!("image/png"))
    );
    let (s, body) = app
        .upload_form(&t, form("p", "1", "b", PNG, None, false))
        .await;
    assert_eq!(
        (s, &body["file"]["content_type"]),
        (200, &serde_json::json!("image/png"))
    );
    let (s, body) = app
        .upload_form(&t, form("p", "1", "c.png", PDF, Some("image/png"), false))
        .await;
    assert_eq!((s, body), (415, refused("application/pdf")));
    // PUT: the same rules.
    let (s, f) = status_json(
        put(
            &app,
            &t,
            "p/1/notes.txt",
            Some("application/octet-stream"),
            b"hello",
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, &f["content_type"]),
        (201, &serde_json::json!("text/plain"))
    );
    let (s, body) =
        status_json(put(&app, &t, "p/1/d.pdf", Some("application/pdf"), PDF).await).await;
    assert_eq!((s, body), (415, refused("application/pdf")));
    let (s, body) = status_json(put(&app, &t, "p/1/e.html", Some("text/html"), PNG).await).await;
    assert_eq!((s, body), (415, refused("text/html")));
    let (s, body) = status_json(put(&app, &t, "p/1/f", None, b"\x00\x01 no idea").await).await;
    assert_eq!((s, body), (415, refused("application/octet-stream")));
    // Nothing of the refused uploads was kept.
    let (_, list) = app.get(&t, "/api/v2/files").await;
    assert_eq!(list["files"].as_array().expect("files").len(), 3);
    assert!(eventually(5, || async { app.blob_files().await.len() == 3 }).await);
    assert_eq!(app.intents().await, 0);
}
