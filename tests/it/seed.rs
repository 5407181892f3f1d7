//! The original service's test suite, case by case, plus the contract's exact messages.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::{names, spawn_app, spawn_with};

pub async fn upload_three_files_list_them_in_name_order_delete_and_list_empty() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    for name in ["c.txt", "a.txt", "b.txt"] {
        let (s, body) = app.upload(&t, "product", "1", name, b"hello").await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["message"], "File uploaded successfully");
        assert_eq!(body["file"]["name"], name);
        assert_eq!(body["file"]["resource_id"], "1");
        assert_eq!(body["file"]["tenant_username"], "john1");
    }
    let (s, list) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(s, 200);
    assert_eq!(names(&list), ["a.txt", "b.txt", "c.txt"]);
    assert_eq!(list["count"], 3);
    assert_eq!(list["num_pages"], 1);
    assert_eq!(list["page_range"], serde_json::json!([1]));
    let f = &list["files"][0];
    for key in [
        "tenant_username",
        "resource",
        "resource_id",
        "name",
        "location",
        "expire_at",
        "is_public",
        "url",
    ] {
        assert!(f.get(key).is_some(), "missing {key} in {f}");
    }
    assert_eq!(f["is_public"], false);
    assert_eq!(f["expire_at"], Value::Null);
    assert_eq!(f["size"], 5);

    let (s, body) = app.delete(&t, "/api/files/product/1").await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        serde_json::json!({"message": "File deleted successfully"})
    );
    let (_, list) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(list["count"], 0);
    assert_eq!(list["num_pages"], 1);
    assert_eq!(list["page_range"], serde_json::json!([1]));
    // Deleting nothing is still a success.
    let (s, _) = app.delete(&t, "/api/files/product/1").await;
    assert_eq!(s, 200);
}

pub async fn every_file_route_needs_a_token() {
    let app = spawn_app().await;
    let c = &app.client;
    let reqs = [
        c.post(app.url("/api/upload")),
        c.get(app.url("/api/files/product/1")),
        c.delete(app.url("/api/files/product/1")),
        c.get(app.url("/api/list_files")),
    ];
    for req in reqs {
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"].to_str().expect("ascii"),
            "Bearer realm=\"api\""
        );
        let body: Value = r.json().await.expect("json");
        assert_eq!(
            body,
            serde_json::json!({"detail": "Authentication credentials were not provided."})
        );
    }
}

pub async fn list_files_filters_by_tenant_resource_and_resource_id_alone_and_together() {
    let app = spawn_app().await;
    let t1 = app.token("john1").await;
    let t2 = app.token("john2").await;
    let public = |r: &str, id: &str, n: &str, d: &'static [u8]| {
        Form::new()
            .text("resource", r.to_owned())
            .text("resource_id", id.to_owned())
            .text("is_public", "true")
            .part("file", Part::bytes(d).file_name(n.to_owned()))
    };
    assert_eq!(app.upload(&t1, "product", "1", "p1.txt", b"x").await.0, 200);
    assert_eq!(app.upload(&t1, "product", "2", "p2.txt", b"x").await.0, 200);
    assert_eq!(app.upload(&t1, "avatar", "1", "a1.txt", b"x").await.0, 200);
    assert_eq!(
        app.upload_form(&t2, public("product", "1", "q1.txt", b"x"))
            .await
            .0,
        200
    );
    assert_eq!(
        app.upload(&t2, "avatar", "9", "secret.txt", b"x").await.0,
        200
    );

    let cases = [
        ("", vec!["a1.txt", "p1.txt", "p2.txt", "q1.txt"]),
        ("?tenant_username=john1", vec!["a1.txt", "p1.txt", "p2.txt"]),
        ("?tenant_username=john2", vec!["q1.txt"]),
        ("?resource=product", vec!["p1.txt", "p2.txt", "q1.txt"]),
        ("?resource_id=1", vec!["a1.txt", "p1.txt", "q1.txt"]),
        ("?resource=product&resource_id=1", vec!["p1.txt", "q1.txt"]),
        (
            "?tenant_username=john1&resource=product&resource_id=1",
            vec!["p1.txt"],
        ),
        ("?resource=nothing", vec![]),
    ];
    for (q, want) in cases {
        let (s, list) = app.get(&t1, &format!("/api/list_files{q}")).await;
        assert_eq!(s, 200);
        assert_eq!(names(&list), want, "query {q}");
        assert!(
            list["files"]
                .as_array()
                .expect("files")
                .iter()
                .all(|f| f.get("url").is_none()),
            "list_files carries no url"
        );
    }
}

pub async fn an_upload_over_the_limit_gets_the_exact_message_and_leaves_nothing() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let big = vec![b'x'; 11 * 1024 * 1024];
    let (s, body) = app.upload(&t, "product", "1", "big.bin", &big).await;
    assert_eq!(s, 400);
    assert_eq!(
        body,
        serde_json::json!({"file": ["File size exceeds the maximum allowed size of 10485760 bytes"]})
    );
    assert!(crate::helpers::eventually(5, || async { app.intents().await == 0 }).await);
    assert!(
        app.blob_files().await.is_empty(),
        "{:?}",
        app.blob_files().await
    );
    let (_, list) = app.get(&t, "/api/list_files").await;
    assert_eq!(list["count"], 0);
    // The connection stays usable for the client's next request.
    assert_eq!(app.upload(&t, "product", "1", "ok.txt", b"ok").await.0, 200);
}

pub async fn the_limit_is_the_configured_one() {
    let app = spawn_with(|c| c.limits.max_file_size = 1000).await;
    let t = app.token("john1").await;
    assert_eq!(app.upload(&t, "r", "1", "ok", &[0u8; 1000]).await.0, 200);
    let (s, body) = app.upload(&t, "r", "1", "no", &[0u8; 1001]).await;
    assert_eq!(s, 400);
    assert_eq!(
        body["file"][0],
        "File size exceeds the maximum allowed size of 1000 bytes"
    );
}

pub async fn missing_fields_get_the_seed_messages() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let file = || Part::bytes(b"x".to_vec()).file_name("a.txt");
    let cases = [
        (
            Form::new().text("resource", "p").text("resource_id", "1"),
            serde_json::json!({"file": ["No file was submitted."]}),
        ),
        (
            Form::new().text("resource_id", "1").part("file", file()),
            serde_json::json!({"resource": ["No resource found."]}),
        ),
        (
            Form::new().text("resource", "p").part("file", file()),
            serde_json::json!({"resource_id": ["No resource id found."]}),
        ),
        (
            Form::new()
                .text("resource", "p")
                .text("resource_id", "1")
                .text("file", "just text"),
            serde_json::json!({"file": [
                "The submitted data was not a file. Check the encoding type on the form."]}),
        ),
    ];
    for (form, want) in cases {
        let (s, body) = app.upload_form(&t, form).await;
        assert_eq!(s, 400);
        assert_eq!(body, want);
    }
    assert!(crate::helpers::eventually(5, || async { app.blob_files().await.is_empty() }).await);
    assert_eq!(app.intents().await, 0);
}

pub async fn partial_resource_paths_are_404_on_get_and_delete() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    for path in [
        "/api/files",
        "/api/files/product",
        "/api/files/1",
        "/api/nope",
    ] {
        let (s, body) = app.get(&t, path).await;
        assert_eq!(s, 404, "GET {path}");
        assert_eq!(body, serde_json::json!({"detail": "Not found."}));
        let (s, _) = app.delete(&t, path).await;
        assert_eq!(s, 404, "DELETE {path}");
    }
}

pub async fn the_same_file_uploaded_twice_is_replaced_not_duplicated() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    assert_eq!(
        app.upload(&t, "product", "1", "a.txt", b"first").await.0,
        200
    );
    let (s, second) = app.upload(&t, "product", "1", "a.txt", b"second!").await;
    assert_eq!(s, 200);
    let (_, list) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["files"][0]["id"], second["file"]["id"]);
    let url = list["files"][0]["url"].as_str().expect("url");
    let bytes = app.download(url).await;
    assert_eq!(&bytes[..], b"second!");
    // The first blob is removed right after the commit.
    assert!(crate::helpers::eventually(5, || async { app.blob_files().await.len() == 1 }).await);
}

pub async fn the_same_name_under_another_resource_is_another_file() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    assert_eq!(app.upload(&t, "product", "1", "a.txt", b"one").await.0, 200);
    assert_eq!(app.upload(&t, "product", "2", "a.txt", b"two").await.0, 200);
    for (id, want) in [("1", b"one"), ("2", b"two")] {
        let (_, list) = app.get(&t, &format!("/api/files/product/{id}")).await;
        let url = list["files"][0]["url"].as_str().expect("url");
        let got = app.download(url).await;
        assert_eq!(&got[..], want);
    }
}

pub async fn a_file_uploaded_again_after_its_resource_was_deleted_is_visible() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    assert_eq!(app.upload(&t, "product", "1", "a.txt", b"one").await.0, 200);
    assert_eq!(app.delete(&t, "/api/files/product/1").await.0, 200);
    assert_eq!(app.upload(&t, "product", "1", "a.txt", b"two").await.0, 200);
    let (_, list) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(names(&list), ["a.txt"]);
}

pub async fn pagination_follows_the_seed_with_page_size_3_and_5() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    for i in 0..11 {
        let name = format!("f{i:02}.txt");
        assert_eq!(app.upload(&t, "product", "1", &name, b"x").await.0, 200);
    }
    for base in ["/api/files/product/1", "/api/list_files"] {
        for (size, pages) in [(3u64, 4u64), (5, 3)] {
            let mut seen = Vec::new();
            for page in 1..=pages {
                let (s, body) = app
                    .get(&t, &format!("{base}?page={page}&page_size={size}"))
                    .await;
                assert_eq!(s, 200);
                assert_eq!(body["count"], 11);
                assert_eq!(body["num_pages"], pages);
                assert_eq!(
                    body["page_range"],
                    serde_json::json!((1..=pages).collect::<Vec<_>>())
                );
                seen.extend(names(&body));
            }
            let want: Vec<_> = (0..11).map(|i| format!("f{i:02}.txt")).collect();
            assert_eq!(seen, want, "{base} page_size {size}");
            // Past the end: the last page. Not an integer: page 1.
            let (_, last) = app
                .get(&t, &format!("{base}?page=99&page_size={size}"))
                .await;
            assert_eq!(names(&last).last().map(String::as_str), Some("f10.txt"));
            let (_, first) = app
                .get(&t, &format!("{base}?page=abc&page_size={size}"))
                .await;
            assert_eq!(names(&first)[0], "f00.txt");
        }
        // Default page size is 10.
        let (_, body) = app.get(&t, base).await;
        assert_eq!(names(&body).len(), 10);
        assert_eq!(body["num_pages"], 2);
        for bad in ["0", "-1", "x"] {
            let (s, body) = app.get(&t, &format!("{base}?page_size={bad}")).await;
            assert_eq!(s, 400, "page_size={bad}");
            assert!(body["page_size"].is_array());
        }
    }
}

pub async fn wrong_methods_get_405_after_authentication() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let r = app
        .client
        .put(app.url("/api/list_files"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .put(app.url("/api/list_files"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"detail": "Method \"PUT\" not allowed."})
    );
    let r = app
        .client
        .get(app.url("/api/token/"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 405);
    // Like Django, HEAD is answered as GET, without a body.
    app.upload(&t, "product", "1", "a.txt", b"abc").await;
    for path in ["/api/files/product/1", "/api/list_files"] {
        let r = app
            .client
            .head(app.url(path))
            .bearer_auth(&t)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.bytes().await.expect("body").is_empty(), "{path}");
    }
}

pub async fn every_response_carries_a_request_id_and_echoes_the_clients() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = app
        .client
        .get(app.url("/nowhere"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert!(!r.headers()["x-request-id"].is_empty());
    assert_eq!(r.headers()["content-type"], "application/json");
}

crate::store_matrix!(
    upload_three_files_list_them_in_name_order_delete_and_list_empty,
    every_file_route_needs_a_token,
    list_files_filters_by_tenant_resource_and_resource_id_alone_and_together,
    an_upload_over_the_limit_gets_the_exact_message_and_leaves_nothing,
    the_limit_is_the_configured_one,
    missing_fields_get_the_seed_messages,
    partial_resource_paths_are_404_on_get_and_delete,
    the_same_file_uploaded_twice_is_replaced_not_duplicated,
    the_same_name_under_another_resource_is_another_file,
    a_file_uploaded_again_after_its_resource_was_deleted_is_visible,
    pagination_follows_the_seed_with_page_size_3_and_5,
    wrong_methods_get_405_after_authentication,
    every_response_carries_a_request_id_and_echoes_the_clients,
);
