//! Who the client is and which scheme, host and path prefix it used: links carry the forwarded
//! proto, host and base path, paths outside the base path are 404, the login limiter counts the
//! forwarded client, and an untrusted peer's forwarding headers are ignored.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    mtfu_no_nginx,
    ignore = "nginx is not installed (apt install nginx-light)"
)]
async fn links_carry_the_forwarded_proto_host_and_the_base_path() {
    let (_app, nginx) = app_behind_nginx(|_| {}).await;
    let c = client_from("127.0.0.3");
    let host = [("host", "files.example.com")];
    let (s, body) = login(
        &c,
        &nginx.xff_url("/prod/api/token/"),
        "john1",
        "test",
        &host,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let token = body["access"].as_str().expect("access").to_owned();

    let data = b"behind the proxy".to_vec();
    let (s, body) = upload(
        &c,
        &nginx.xff_url("/prod/api/upload"),
        &token,
        file_form("a.txt", data.clone()),
        &host,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let url = body["file"]["url"].as_str().expect("url");
    assert!(
        url.starts_with("https://files.example.com/prod/dl/"),
        "{url}"
    );

    // The link works through the proxy: /prod/dl/... is routed after the base path is stripped.
    let through = url.replace("https://files.example.com", &nginx.xff_url(""));
    let r = c.get(&through).send().await.expect("download");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("body").to_vec(), data);

    // The listing's links, X-Forwarded-* style...
    let url = first_link(
        &c,
        &nginx.xff_url("/prod/api/files/product/1"),
        &token,
        "files.example.com",
    )
    .await;
    assert!(
        url.starts_with("https://files.example.com/prod/dl/"),
        "{url}"
    );

    // ...and Forwarded style: its host= wins over the X-Forwarded-Host nginx passes through.
    let c6 = reqwest::Client::builder()
        .local_address(nginx.fwd_client_ip())
        .build()
        .expect("client");
    let url = first_link(
        &c6,
        &nginx.fwd_url("/prod/api/files/product/1"),
        &token,
        "cdn.example.org:8443",
    )
    .await;
    assert!(
        url.starts_with("https://cdn.example.org:8443/prod/dl/"),
        "{url}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    mtfu_no_nginx,
    ignore = "nginx is not installed (apt install nginx-light)"
)]
async fn the_base_path_is_stripped_and_paths_outside_it_are_404() {
    let (app, nginx) = app_behind_nginx(|_| {}).await;
    let c = client_from("127.0.0.3");
    let (s, _) = login(&c, &nginx.xff_url("/prod/api/token/"), "john1", "test", &[]).await;
    assert_eq!(s, 200);
    for path in [
        "/api/token/",
        "/production/api/token/",
        "/prod",
        "/prodapi/token/",
    ] {
        let r = c
            .post(nginx.xff_url(path))
            .json(&json!({"username": "john1", "password": "test"}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "{path}: mtfu's own 404, not nginx's"
        );
        let body: Value = r.json().await.expect("json");
        assert_eq!(body, json!({"detail": "Not found."}), "{path}");
    }
    // The query survives the rewrite, and the base path applies to every listener.
    let r = c
        .get(nginx.xff_url("/prod/healthz?probe=1"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let plain = app.plain.expect("plain");
    let r = reqwest::get(format!("http://{plain}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(r.status(), 404);
    let r = app
        .client
        .get(app.url("/prod/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    mtfu_no_nginx,
    ignore = "nginx is not installed (apt install nginx-light)"
)]
async fn the_login_limiter_counts_the_forwarded_client_not_the_proxy() {
    let (_app, nginx) = app_behind_nginx(|c| {
        c.auth.max_failed_logins_per_ip = 3;
        c.auth.max_failed_logins_per_user = 1000;
    })
    .await;
    let token_url = nginx.xff_url("/prod/api/token/");
    let attacker = client_from("127.0.0.3");
    for i in 0..3 {
        // Forging X-Forwarded-For does not help: nginx appends the real address.
        let forged = format!("198.51.100.{i}");
        let (s, _) = login(
            &attacker,
            &token_url,
            "john1",
            "wrong",
            &[("x-forwarded-for", &forged)],
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, _) = login(
        &attacker,
        &token_url,
        "john1",
        "test",
        &[("x-forwarded-for", "198.51.100.99")],
    )
    .await;
    assert_eq!(s, 429, "127.0.0.3 is over its limit");

    // Another client behind the same proxy is not blocked: the limiter keys on the forwarded
    // client, not on the proxy's 127.0.0.2.
    let (s, _) = login(&client_from("127.0.0.4"), &token_url, "john1", "test", &[]).await;
    assert_eq!(s, 200);

    // Through the Forwarded proxy, a client claiming to be 127.0.0.3 in X-Forwarded-For and
    // Forwarded is still itself: nginx's own Forwarded element, nearest, names it.
    let other = reqwest::Client::builder()
        .local_address(nginx.fwd_client_ip())
        .build()
        .expect("client");
    let (s, body) = login(
        &other,
        &nginx.fwd_url("/prod/api/token/"),
        "john1",
        "test",
        &[
            ("x-forwarded-for", "127.0.0.3"),
            ("forwarded", "for=127.0.0.3"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

/// Straight to the plain listener from 127.0.0.1, which is not a trusted proxy: every
/// forwarding header is ignored. (No nginx needed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    mtfu_no_nginx,
    ignore = "nginx is not installed (apt install nginx-light)"
)]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let forged = [
        ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
        (
            "forwarded",
            "for=198.51.100.1;proto=https;host=evil.example",
        ),
    ];
    for (trusted, want_prefix) in [
        (PROXY_ADDR, None),
        // Control: trusting 127.0.0.1 makes the same headers count.
        ("127.0.0.1", Some("https://evil.example/dl/")),
    ] {
        let app = spawn_with(|c| {
            c.server.plain_listen = Some("127.0.0.1:0".into());
            c.server.trusted_proxies =
                vec![mtfu::config::TrustedProxy::parse(trusted).expect("net")];
            c.auth.max_failed_logins_per_ip = 2;
            c.auth.max_failed_logins_per_user = 1000;
        })
        .await;
        let plain = app.plain.expect("plain");
        let base = format!("http://{plain}");
        let c = reqwest::Client::new();
        let (s, body) = login(&c, &format!("{base}/api/token/"), "john1", "test", &forged).await;
        assert_eq!(s, 200, "{body}");
        let token = body["access"].as_str().expect("access").to_owned();
        let (s, body) = upload(
            &c,
            &format!("{base}/api/upload"),
            &token,
            file_form("a.txt", b"x".to_vec()),
            &forged,
        )
        .await;
        assert_eq!(s, 200, "{body}");
        let url = body["file"]["url"].as_str().expect("url");
        let want = want_prefix.map_or(format!("http://{plain}/dl/"), str::to_owned);
        assert!(url.starts_with(&want), "trusting {trusted}: {url}");

        // Two failures claimed from two forged addresses...
        for forged_ip in ["198.51.100.1", "198.51.100.2"] {
            let (s, _) = login(
                &c,
                &format!("{base}/api/token/"),
                "john1",
                "wrong",
                &[
                    ("x-forwarded-for", forged_ip),
                    ("forwarded", &format!("for={forged_ip}")),
                ],
            )
            .await;
            assert_eq!(s, 401);
        }
        // ...block the real peer when it is untrusted; when trusted, each forged address
        // counts on its own.
        let (s, _) = login(
            &c,
            &format!("{base}/api/token/"),
            "john1",
            "test",
            &[
                ("x-forwarded-for", "198.51.100.3"),
                ("forwarded", "for=198.51.100.3"),
            ],
        )
        .await;
        let want = if want_prefix.is_none() { 429 } else { 200 };
        assert_eq!(s, want, "trusting {trusted}");
    }
}
