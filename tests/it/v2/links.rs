//! Download links: links on demand with the asked lifetime, tampering refused, revocation of a
//! tenant's links (by the API and by `mtfu tenant revoke-urls`), and presigned URLs.

use super::*;

crate::store_matrix!(
    links_on_demand_have_the_asked_lifetime_and_refuse_tampering,
    revoking_a_tenants_links_kills_those_issued_before_only,
    presigned_urls_outlive_revocation_but_not_deletion,
);

pub async fn links_on_demand_have_the_asked_lifetime_and_refuse_tampering() {
    let app = spawn_app().await;
    let (t1, t2) = (app.token("john1").await, app.token("john2").await);
    let private = upload(&app, &t1, "a.txt", b"private bytes", false).await;
    let public = upload(&app, &t1, "b.txt", b"public bytes", true).await;

    let before = chrono::Utc::now();
    let (s, body) = link(&app, &t1, &id(&private), Some("120")).await;
    assert_eq!(s, 200, "{body}");
    let at = body["expires_at"].as_str().expect("expires_at");
    assert!(
        at.ends_with('Z') && at.len() == "2026-11-24T12:00:00.123456Z".len(),
        "{at}"
    );
    let at = chrono::DateTime::parse_from_rfc3339(at).expect("rfc3339");
    let secs = (at.with_timezone(&chrono::Utc) - before).num_seconds();
    assert!((110..=130).contains(&secs), "{secs}");
    let url = body["url"].as_str().expect("url").to_owned();
    match &app.s3 {
        None => assert!(url.starts_with(&format!("{}/dl/", app.base)), "{url}"),
        Some(s3) => assert!(url.starts_with(&s3.endpoint()), "{url}"),
    }
    let r = fetch(&url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("b").to_vec(), b"private bytes");

    // Default lifetime: limits.url_ttl_secs.
    let (_, body) = link(&app, &t1, &id(&private), None).await;
    let at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().expect("at"))
        .expect("rfc3339");
    let secs = (at.with_timezone(&chrono::Utc) - before).num_seconds();
    assert!((3590..=3610).contains(&secs), "{secs}");

    // Bounds: 1..=7 days, DRF-style errors.
    for (bad, msg) in [
        ("0", "Ensure this value is greater than or equal to 1."),
        (
            "604801",
            "Ensure this value is less than or equal to 604800.",
        ),
        ("soon", "A valid integer is required."),
    ] {
        let (s, body) = link(&app, &t1, &id(&private), Some(bad)).await;
        assert_eq!(
            (s, body),
            (400, serde_json::json!({"expires_in": [msg]})),
            "{bad}"
        );
    }
    assert_eq!(link(&app, &t1, &id(&private), Some("604800")).await.0, 200);

    // Another tenant: its public files yes, private ones 404.
    assert_eq!(link(&app, &t2, &id(&private), None).await.0, 404);
    let (s, body) = link(&app, &t2, &id(&public), None).await;
    assert_eq!(s, 200);
    let r = fetch(body["url"].as_str().expect("url")).await;
    assert_eq!(r.bytes().await.expect("b").to_vec(), b"public bytes");

    // Tampered: any changed character of the signature, or a changed expiry or issue time.
    let mut bad = vec![];
    let mut flipped = url.clone();
    let last = flipped.pop().expect("char");
    flipped.push(if last == '0' { '1' } else { '0' });
    bad.push(flipped);
    if app.s3.is_none() {
        let q = |k: &str| {
            let v = url.split(&format!("{k}=")).nth(1).expect(k);
            v.split('&').next().expect("v").to_owned()
        };
        let (exp, iat) = (q("expires"), q("iat"));
        let later: i64 = exp.parse::<i64>().expect("exp") + 100;
        bad.push(url.replace(&format!("expires={exp}"), &format!("expires={later}")));
        let iat_later: i64 = iat.parse::<i64>().expect("iat") + 1;
        bad.push(url.replace(&format!("iat={iat}"), &format!("iat={iat_later}")));
        bad.push(url.replace(&format!("&iat={iat}"), ""));
    }
    for b in &bad {
        let r = fetch(b).await;
        assert_eq!(r.status(), 403, "{b}");
        if app.s3.is_none() {
            assert_eq!(
                r.json::<Value>().await.expect("json")["code"],
                "invalid_signature"
            );
        }
    }

    // Expired: 403 once its second has passed.
    let (_, body) = link(&app, &t1, &id(&private), Some("1")).await;
    let short = body["url"].as_str().expect("url").to_owned();
    assert!(eventually(5, || async { fetch(&short).await.status() == 403 }).await);

    let r = app
        .client
        .get(app.url(&format!("/api/v2/files/{}/url", id(&private))))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 405);
}

/// Upload one file as `user` and return (its id, a fresh link to it).
async fn file_and_link(app: &TestApp, user: &str) -> (String, String) {
    let t = app.token(user).await;
    let f = upload(app, &t, &format!("{user}.txt"), user.as_bytes(), false).await;
    let (s, body) = link(app, &t, &id(&f), None).await;
    assert_eq!(s, 200, "{body}");
    (id(&f), body["url"].as_str().expect("url").to_owned())
}

async fn revoke(app: &TestApp, user: &str) -> (u16, Value) {
    let t = app.token(user).await;
    let r = app
        .client
        .post(app.url("/api/v2/urls/revoke"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("revoke");
    status_json(r).await
}

/// Revocation of mtfu's `/dl/...` links: local disk, and S3 with `presigned_urls = false`
/// (S3 objects streamed through mtfu). Earlier links of the tenant answer 403 `url_revoked`;
/// other tenants' and later links work.
pub async fn revoking_a_tenants_links_kills_those_issued_before_only() {
    let app = spawn_with(|c| c.blobs.s3.presigned_urls = false).await;
    let (fid, url) = file_and_link(&app, "john1").await;
    let (_, other) = file_and_link(&app, "john2").await;
    assert!(url.starts_with(&format!("{}/dl/", app.base)), "{url}");
    let r = fetch(&url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("b").to_vec(), b"john1");
    // A link of the first version (no issue time) is valid until the first revocation.
    let tenant = url
        .split("/dl/")
        .nth(1)
        .expect("dl")
        .split('/')
        .next()
        .expect("t");
    let legacy = app.dl_url(tenant.parse().expect("tenant id"), &fid);
    assert_eq!(fetch(&legacy).await.status(), 200);

    let (s, body) = revoke(&app, "john1").await;
    assert_eq!(s, 200, "{body}");
    let at = body["revoked_before"].as_str().expect("revoked_before");
    assert!(
        chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with('Z'),
        "{at}"
    );

    for dead in [&url, &legacy] {
        let r = fetch(dead).await;
        assert_eq!(r.status(), 403, "{dead}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "url_revoked");
    }
    assert_eq!(
        fetch(&other).await.status(),
        200,
        "john2's links are not touched"
    );
    let t1 = app.token("john1").await;
    let (_, body) = link(&app, &t1, &fid, None).await;
    let fresh = body["url"].as_str().expect("url");
    assert_eq!(
        fetch(fresh).await.status(),
        200,
        "a link issued afterwards works"
    );
    let (_, meta) = app.get(&t1, &format!("/api/v2/files/{fid}")).await;
    assert_eq!(
        fetch(meta["url"].as_str().expect("url")).await.status(),
        200
    );
    let r = app
        .client
        .get(app.url("/api/v2/urls/revoke"))
        .bearer_auth(&t1)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 405);
}

/// With S3 presigned URLs (the default), revocation cannot reach URLs already handed out: they
/// live until their TTL (documented), while deleting the file kills them (the object goes).
pub async fn presigned_urls_outlive_revocation_but_not_deletion() {
    let app = spawn_app().await;
    let Some(s3) = &app.s3 else {
        return; // Local disk has no presigned URLs: the test above covers it.
    };
    let (fid, url) = file_and_link(&app, "john1").await;
    assert!(url.starts_with(&s3.endpoint()), "{url}");
    assert_eq!(revoke(&app, "john1").await.0, 200);
    assert_eq!(fetch(&url).await.status(), 200);
    let t1 = app.token("john1").await;
    assert_eq!(
        app.delete(&t1, &format!("/api/v2/files/{fid}")).await.0,
        204
    );
    assert_eq!(fetch(&url).await.status(), 404);
}

/// `mtfu tenant revoke-urls NAME` against the store of a running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revoke_urls_command_kills_the_tenants_links() {
    let app = spawn_app().await;
    let (_, url) = file_and_link(&app, "john1").await;
    let (_, other) = file_and_link(&app, "john2").await;
    assert_eq!(fetch(&url).await.status(), 200);
    let out = crate::cli::mtfu(app.dir.path(), &["tenant", "revoke-urls", "john1"], None);
    assert!(out.contains("john1") && out.contains("revoked"), "{out}");
    let r = fetch(&url).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "url_revoked"
    );
    assert_eq!(fetch(&other).await.status(), 200);
}
