//! Files by id and in lists: a file is its owner's or public (404 otherwise), delete by id,
//! the keyset listing that pages through every visible file once, and the routes' token and
//! method checks.

use super::*;

crate::store_matrix!(
    a_file_by_id_is_its_owners_or_public_and_404_otherwise,
    delete_by_id_takes_only_own_files_and_kills_their_links_at_once,
    the_listing_pages_through_every_visible_file_once,
    v2_routes_need_a_token_and_the_right_method,
);

pub async fn a_file_by_id_is_its_owners_or_public_and_404_otherwise() {
    let app = spawn_app().await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let private = upload(&app, &t1, "private.txt", b"secret", false).await;
    let public = upload(&app, &t1, "public.txt", b"open", true).await;

    let (s, got) = app
        .get(&t1, &format!("/api/v2/files/{}", id(&private)))
        .await;
    assert_eq!(s, 200, "{got}");
    for k in [
        "id",
        "tenant_username",
        "resource",
        "resource_id",
        "name",
        "location",
        "expire_at",
        "is_public",
        "size",
        "content_type",
        "sha256",
        "created_at",
    ] {
        assert_eq!(got[k], private[k], "{k}");
    }
    assert!(got["url"].as_str().is_some_and(|u| u.starts_with("http")));
    assert_eq!(got["sha256"], sha(b"secret"));

    // Another tenant: the public file, and the private one exactly like a missing id.
    let (s, body) = app
        .get(&t2, &format!("/api/v2/files/{}", id(&private)))
        .await;
    assert_eq!(
        (s, body),
        (404, serde_json::json!({"detail": "Not found."}))
    );
    let (s, body) = app
        .get(&t2, &format!("/api/v2/files/{}", id(&public)))
        .await;
    assert_eq!((s, body["name"].as_str()), (200, Some("public.txt")));
    let missing = "0".repeat(32);
    for bad in [missing.as_str(), "nope", "..%2F..%2Fetc"] {
        let (s, body) = app.get(&t1, &format!("/api/v2/files/{bad}")).await;
        assert_eq!(
            (s, body),
            (404, serde_json::json!({"detail": "Not found."}))
        );
    }
    // No token: 401, whatever the id.
    let r = app
        .client
        .get(app.url(&format!("/api/v2/files/{}", id(&public))))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);

    // An expired file is gone.
    let (s, body) = app
        .upload_form(
            &t1,
            form("product", "1", "soon.txt", b"x", None, true).text("expires_in", "1"),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let soon = id(&body["file"]);
    assert_eq!(app.get(&t1, &format!("/api/v2/files/{soon}")).await.0, 200);
    assert!(
        eventually(5, || async {
            app.get(&t1, &format!("/api/v2/files/{soon}")).await.0 == 404
        })
        .await
    );
}

pub async fn delete_by_id_takes_only_own_files_and_kills_their_links_at_once() {
    let app = spawn_app().await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let private = upload(&app, &t1, "a.txt", b"aaa", false).await;
    let public = upload(&app, &t1, "b.txt", b"bbb", true).await;
    let (s, made) = link(&app, &t1, &id(&public), None).await;
    assert_eq!(s, 200, "{made}");
    let url = made["url"].as_str().expect("url").to_owned();
    let listed = app.get(&t1, "/api/v2/files").await.1;
    let listed_url = listed["files"][1]["url"].as_str().expect("url").to_owned();
    assert_eq!(listed["files"][1]["id"], public["id"]);
    assert_eq!(fetch(&url).await.status(), 200);
    assert_eq!(fetch(&listed_url).await.status(), 200);

    // Another tenant cannot delete them, public or not: 404, and they stay.
    for f in [&private, &public] {
        let (s, body) = app.delete(&t2, &format!("/api/v2/files/{}", id(f))).await;
        assert_eq!(
            (s, body),
            (404, serde_json::json!({"detail": "Not found."}))
        );
        assert_eq!(
            app.get(&t1, &format!("/api/v2/files/{}", id(f))).await.0,
            200
        );
    }

    let r = app
        .client
        .delete(app.url(&format!("/api/v2/files/{}", id(&public))))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.expect("b").is_empty());
    assert_eq!(
        app.delete(&t1, &format!("/api/v2/files/{}", id(&public)))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&t1, &format!("/api/v2/files/{}", id(&public)))
            .await
            .0,
        404
    );
    assert_eq!(content(&app, &t1, &id(&public), &[]).await.status(), 404);
    assert_eq!(link(&app, &t1, &id(&public), None).await.0, 404);
    let names: Vec<_> = app.get(&t1, "/api/v2/files").await.1["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(names, ["a.txt"]);
    // Its links die at once: mtfu's /dl answers 404, and on S3 the object is gone, so a
    // presigned URL fails too.
    for u in [&url, &listed_url] {
        let s = fetch(u).await.status();
        assert_eq!(s, 404, "{u}");
    }

    // The seed's delete by resource does the same to its links.
    let listed = app.get(&t1, "/api/files/product/1").await.1;
    let seed_url = listed["files"][0]["url"].as_str().expect("url").to_owned();
    assert_eq!(fetch(&seed_url).await.status(), 200);
    assert_eq!(app.delete(&t1, "/api/files/product/1").await.0, 200);
    assert_eq!(fetch(&seed_url).await.status(), 404);

    // gc still reaps the rows, finding the blobs gone or removing them, without failures.
    let r = mtfu::gc::sweep(
        &app.state.files.meta,
        &app.state.files.blob,
        std::time::Duration::ZERO,
        false,
    )
    .await
    .expect("gc");
    assert_eq!(r.failures, 0);
    assert_eq!(r.files_reaped, 2);
    assert!(app.blob_files().await.is_empty());
}

pub async fn the_listing_pages_through_every_visible_file_once() {
    let app = spawn_with(|c| c.limits.max_page_size = 10).await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    for i in 0..23 {
        let (r, rid) = if i % 2 == 0 {
            ("doc", "1")
        } else {
            ("img", "2")
        };
        let (s, b) = app
            .upload_form(
                &t1,
                form(r, rid, &format!("f{i:02}"), b"x", None, i % 5 == 0),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    for i in 0..6 {
        let (s, b) = app
            .upload_form(
                &t2,
                form("doc", "1", &format!("g{i}"), b"y", None, i % 2 == 0),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    for (filter, seed_q, n) in [
        ("", "/api/list_files?page_size=10", 26),
        (
            "&resource=doc",
            "/api/list_files?page_size=10&resource=doc",
            15,
        ),
        (
            "&resource=img&resource_id=2",
            "/api/list_files?page_size=10&resource=img&resource_id=2",
            11,
        ),
        (
            "&tenant_username=john2",
            "/api/list_files?page_size=10&tenant_username=john2",
            3,
        ),
    ] {
        // What the seed listing shows, in its order, page by page (its size is capped too).
        let mut want: Vec<String> = Vec::new();
        for page in 1..=3 {
            let (_, l) = app.get(&t1, &format!("{seed_q}&page={page}")).await;
            want.extend(
                l["files"]
                    .as_array()
                    .expect("files")
                    .iter()
                    .map(|f| f["id"].as_str().expect("id").to_owned()),
            );
            if l["num_pages"] == page {
                break;
            }
        }
        assert_eq!(want.len(), n, "{filter}");
        let mut got: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let c = cursor
                .as_ref()
                .map_or(String::new(), |c| format!("&cursor={c}"));
            let (s, page) = app
                .get(&t1, &format!("/api/v2/files?limit=4{filter}{c}"))
                .await;
            assert_eq!(s, 200, "{page}");
            let files = page["files"].as_array().expect("files");
            assert!(files.len() <= 4);
            for f in files {
                assert!(f["url"].is_string());
                got.push(f["id"].as_str().expect("id").to_owned());
            }
            pages += 1;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    assert!(page["next_cursor"].is_null());
                    break;
                }
            }
        }
        assert_eq!(got, want, "{filter}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), n);
        assert_eq!(pages, n.div_ceil(4).max(1), "no empty last page");
    }
    // john2 sees its own six and john1's public five.
    let (_, page) = app.get(&t2, "/api/v2/files?limit=100").await;
    assert_eq!(page["files"].as_array().expect("files").len(), 10, "capped");
    let (_, page) = app
        .get(
            &t2,
            &format!(
                "/api/v2/files?cursor={}",
                page["next_cursor"].as_str().expect("next")
            ),
        )
        .await;
    assert_eq!(page["files"].as_array().expect("files").len(), 1);
    assert!(page["next_cursor"].is_null());

    for (q, field, msg) in [
        ("limit=x", "limit", "A valid integer is required."),
        (
            "limit=0",
            "limit",
            "Ensure this value is greater than or equal to 1.",
        ),
        ("cursor=garbage!", "cursor", "Invalid cursor."),
        ("cursor=WyJhIl0", "cursor", "Invalid cursor."),
    ] {
        let (s, body) = app.get(&t1, &format!("/api/v2/files?{q}")).await;
        assert_eq!(s, 400, "{q}");
        assert_eq!(body, serde_json::json!({field: [msg]}), "{q}");
    }
}

pub async fn v2_routes_need_a_token_and_the_right_method() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let f = upload(&app, &t, "a.txt", b"a", false).await;
    let fid = id(&f);
    let paths = [
        "/api/v2/files".to_owned(),
        format!("/api/v2/files/{fid}"),
        format!("/api/v2/files/{fid}/content"),
        format!("/api/v2/files/{fid}/url"),
        "/api/v2/urls/revoke".to_owned(),
    ];
    for p in &paths {
        let r = app.client.post(app.url(p)).send().await.expect("post");
        assert_eq!(r.status(), 401, "{p}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let r = app
        .client
        .patch(app.url(&format!("/api/v2/files/{fid}")))
        .bearer_auth(&t)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 405);
    let h: HeaderMap = r.headers().clone();
    assert_eq!(h["allow"], "GET, DELETE");
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        serde_json::json!({"detail": "Method \"PATCH\" not allowed."})
    );
}
