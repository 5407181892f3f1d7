//! Tenant isolation, public files, expiry and signed download links.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::{eventually, names, spawn_app, spawn_with};

fn form(name: &str, public: bool, extra: &[(&str, &str)]) -> Form {
    let mut f = Form::new()
        .text("resource", "product")
        .text("resource_id", "1")
        .text("is_public", if public { "true" } else { "false" })
        .part(
            "file",
            Part::bytes(b"data".to_vec()).file_name(name.to_owned()),
        );
    for (k, v) in extra {
        f = f.text(k.to_string(), v.to_string());
    }
    f
}

pub async fn a_tenant_never_sees_or_deletes_anothers_private_files_but_sees_public_ones() {
    let app = spawn_app().await;
    let t1 = app.token("john1").await;
    let t2 = app.token("john2").await;
    assert_eq!(
        app.upload_form(&t1, form("private.txt", false, &[]))
            .await
            .0,
        200
    );
    assert_eq!(
        app.upload_form(&t1, form("public.txt", true, &[])).await.0,
        200
    );

    let (_, list) = app.get(&t2, "/api/files/product/1").await;
    assert_eq!(names(&list), ["public.txt"]);
    let (_, list) = app.get(&t2, "/api/list_files?tenant_username=john1").await;
    assert_eq!(names(&list), ["public.txt"]);

    // john2's delete touches only john2's files: john1's, public or not, survive.
    assert_eq!(app.delete(&t2, "/api/files/product/1").await.0, 200);
    let (_, list) = app.get(&t1, "/api/files/product/1").await;
    assert_eq!(names(&list), ["private.txt", "public.txt"]);

    // john2 uploading the same name makes john2's own file, not a replacement of john1's.
    assert_eq!(
        app.upload_form(&t2, form("public.txt", false, &[])).await.0,
        200
    );
    let (_, list) = app.get(&t1, "/api/files/product/1").await;
    assert_eq!(list["count"], 2);
    let (_, list) = app.get(&t2, "/api/files/product/1").await;
    let owners: Vec<_> = list["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["tenant_username"].as_str().expect("owner").to_owned())
        .collect();
    assert_eq!(owners, ["john1", "john2"]);
}

pub async fn files_expire_at_the_time_given_and_by_default_ttl() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let (s, body) = app
        .upload_form(&t, form("soon.txt", false, &[("expires_in", "1")]))
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body["file"]["expire_at"]
            .as_str()
            .expect("expire_at")
            .ends_with('Z')
    );
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(
        app.upload_form(&t, form("later.txt", false, &[("expire_at", &at)]))
            .await
            .0,
        200
    );
    let (_, list) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(names(&list), ["later.txt", "soon.txt"]);
    assert!(
        eventually(5, || async {
            names(&app.get(&t, "/api/files/product/1").await.1) == ["later.txt"]
        })
        .await
    );
    let (s, body) = app
        .upload_form(&t, form("x", false, &[("expires_in", "soon")]))
        .await;
    assert_eq!(s, 400);
    assert_eq!(body["expires_in"][0], "A valid integer is required.");
    assert_eq!(
        app.blob_files().await.len(),
        2,
        "the refused upload left nothing"
    );

    let app = spawn_with(|c| c.limits.default_ttl_secs = Some(1)).await;
    let t = app.token("john1").await;
    let (_, body) = app.upload(&t, "product", "1", "a", b"x").await;
    assert!(body["file"]["expire_at"].is_string());
    assert!(
        eventually(5, || async {
            app.get(&t, "/api/list_files").await.1["count"] == 0
        })
        .await
    );
}

pub async fn a_signed_url_returns_the_exact_bytes_and_nothing_once_tampered_or_deleted() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(app.upload(&t, "product", "1", "d.bin", &data).await.0, 200);
    let (_, list) = app.get(&t, "/api/files/product/1").await;
    let listed = list["files"][0]["url"].as_str().expect("url").to_owned();
    let url = match &app.s3 {
        None => listed,
        Some(s3) => {
            // S3: listings hand out presigned GETs straight to the bucket.
            assert!(listed.starts_with(&s3.endpoint()), "{listed}");
            let r = app.client.get(&listed).send().await.expect("presigned");
            assert_eq!(r.status(), 200);
            assert_eq!(r.bytes().await.expect("bytes").to_vec(), data);
            let mut bad = listed.clone();
            let last = bad.pop().expect("char");
            bad.push(if last == '0' { '1' } else { '0' });
            let r = app.client.get(&bad).send().await.expect("tampered");
            assert_eq!(r.status(), 403, "{bad}");
            // mtfu's own signed link works on S3 too; the rest of the test is about it.
            app.dl_url(1, list["files"][0]["id"].as_str().expect("id"))
        }
    };
    assert!(url.starts_with(&app.base), "{url}");
    // No token needed.
    let r = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
        .get(&url)
        .send()
        .await
        .expect("dl");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"d.bin\"; filename*=UTF-8''d.bin"
    );
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), data);

    let mut tampered = url.clone();
    let last = tampered.pop().expect("char");
    tampered.push(if last == '0' { '1' } else { '0' });
    let other_file = url.replace("/dl/1/", "/dl/2/");
    let later = {
        let exp: i64 = url.split("expires=").nth(1).expect("exp")[..10]
            .parse()
            .expect("n");
        url.replace(&format!("expires={exp}"), &format!("expires={}", exp + 100))
    };
    for bad in [&tampered, &other_file, &later] {
        let r = app.client.get(bad.as_str()).send().await.expect("send");
        assert_eq!(r.status(), 403, "{bad}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "invalid_signature");
    }
    assert_eq!(app.delete(&t, "/api/files/product/1").await.0, 200);
    assert_eq!(
        app.client.get(&url).send().await.expect("send").status(),
        404
    );
}

pub async fn a_signed_url_stops_working_when_it_expires() {
    let app = spawn_with(|c| c.limits.url_ttl_secs = 1).await;
    let t = app.token("john1").await;
    assert_eq!(app.upload(&t, "product", "1", "a", b"x").await.0, 200);
    let (_, list) = app.get(&t, "/api/files/product/1").await;
    let url = list["files"][0]["url"].as_str().expect("url").to_owned();
    assert!(
        eventually(5, || async {
            app.client.get(&url).send().await.expect("send").status() == 403
        })
        .await
    );
}

pub async fn public_url_from_config_is_used_for_links() {
    let app = spawn_with(|c| c.server.public_url = Some("https://files.example.com/".into())).await;
    let t = app.token("john1").await;
    let (_, body) = app.upload(&t, "product", "1", "a", b"x").await;
    let url = body["file"]["url"].as_str().expect("url");
    match &app.s3 {
        None => assert!(url.starts_with("https://files.example.com/dl/"), "{url}"),
        // S3 links are presigned URLs of the bucket, not mtfu's.
        Some(s3) => assert!(url.starts_with(&s3.endpoint()), "{url}"),
    }
}

pub async fn traversal_and_control_character_names_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    for bad in [
        "../../etc/passwd",
        "..",
        "a/b.txt",
        "a\\b.txt",
        "bad\u{1}name",
        "x\u{7f}",
    ] {
        let (s, body) = app.upload(&t, "product", "1", bad, b"evil").await;
        assert_eq!(s, 400, "{bad:?}: {body}");
        // Raw control characters in a part header already fail multipart parsing.
        let named = body["file"][0]
            .as_str()
            .is_some_and(|m| m.contains("Invalid file name"));
        let unparsable = body["detail"]
            .as_str()
            .is_some_and(|m| m.starts_with("Multipart form parse error"));
        assert!(
            named || (unparsable && bad.chars().any(char::is_control)),
            "{bad:?}: {body}"
        );
    }
    for (r, id) in [("a\u{1}b", "1"), ("ok", &*"9".repeat(101))] {
        let (s, _) = app.upload(&t, r, id, "fine.txt", b"x").await;
        assert_eq!(s, 400);
    }
    assert!(eventually(5, || async { app.blob_files().await.is_empty() }).await);
    assert_eq!(app.intents().await, 0);
    // Percent-encoded traversal in the path is data, never a path.
    let (s, list) = app.get(&t, "/api/files/..%2F..%2Fetc/1").await;
    assert_eq!(s, 400, "{list}");
}

pub async fn downloads_serve_byte_ranges() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let (s, body) = app.upload(&t, "product", "1", "r.bin", &data).await;
    assert_eq!(s, 200, "{body}");
    let url = app.dl_url(1, body["file"]["id"].as_str().expect("id"));
    let get = |range: &'static str| app.client.get(&url).header("range", range).send();
    let r = get("bytes=0-0").await.expect("first byte");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-0/100000");
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[..1]);
    let r = get("bytes=-10").await.expect("suffix");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[99_990..]);
    let r = get("bytes=50000-59999").await.expect("middle");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.expect("b").to_vec(), &data[50_000..60_000]);
    let r = get("bytes=100000-").await.expect("past the end");
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    let r = app.client.get(&url).send().await.expect("whole");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.expect("b").to_vec(), data);
}

crate::store_matrix!(
    downloads_serve_byte_ranges,
    a_tenant_never_sees_or_deletes_anothers_private_files_but_sees_public_ones,
    files_expire_at_the_time_given_and_by_default_ttl,
    a_signed_url_returns_the_exact_bytes_and_nothing_once_tampered_or_deleted,
    a_signed_url_stops_working_when_it_expires,
    public_url_from_config_is_used_for_links,
    traversal_and_control_character_names_are_refused_and_nothing_is_stored,
);
