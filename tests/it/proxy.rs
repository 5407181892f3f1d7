//! Behind a reverse proxy: a real nginx in front of mtfu's plain listener. One nginx server
//! sets `X-Forwarded-For/-Proto/-Host` (like an ALB or a TLS-terminating nginx), another writes
//! RFC 7239 `Forwarded` (on `::1` when the machine has IPv6). nginx connects to mtfu from
//! 127.0.0.2, the one trusted proxy; test clients connect to nginx from other loopback
//! addresses (127.0.0.3, 127.0.0.4, ...), so every party has its own address.
//!
//! Without nginx the build marks these tests ignored (tests/support/detect.rs), unless
//! `MTFU_TEST_REQUIRE_TOOLS=1`, where they fail.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, spawn_with};

/// The address nginx connects to mtfu from.
const PROXY_ADDR: &str = "127.0.0.2";
/// API Gateway's request cap.
const GATEWAY_CAP: u64 = 10_485_760;

fn nginx_binary() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .chain(from_path)
        .find(|p| p.is_file());
    // The build ignores these tests where it finds no nginx (tests/support/detect.rs).
    assert!(
        found.is_some(),
        "nginx is not installed: apt install nginx-light"
    );
    found
}

fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// nginx as a child process, with its configuration, temp files and log in a tempdir.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// The server that sets `X-Forwarded-For/-Proto/-Host`.
    xff: SocketAddr,
    /// The server that writes `Forwarded`.
    fwd: SocketAddr,
}

impl Nginx {
    /// Start nginx in front of `upstream`, or `None` when it did not start.
    fn start(upstream: SocketAddr) -> Option<Nginx> {
        let bin = nginx_binary()?;
        let dir = tempfile::tempdir().expect("tempdir");
        // As root, nginx's workers run as `nobody`: they must reach the temp paths.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        std::fs::create_dir(dir.path().join("tmp")).expect("tmp dir");
        let v4: IpAddr = [127, 0, 0, 1].into();
        let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
        let fwd_ip: IpAddr = if v6 { "::1".parse().expect("ip") } else { v4 };
        let xff = SocketAddr::new(v4, free_port(v4));
        let fwd = SocketAddr::new(fwd_ip, free_port(fwd_ip));
        let node = if v6 {
            r#"\"[$remote_addr]:$remote_port\""#
        } else {
            r#"\"$remote_addr:$remote_port\""#
        };
        let conf = format!(
            r#"
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 200m;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_bind {PROXY_ADDR};
    map $http_forwarded $forwarded_prefix {{
        "" "";
        default "$http_forwarded, ";
    }}
    # Like an ALB or a TLS-terminating nginx: X-Forwarded-*, Host rewritten to the upstream.
    server {{
        listen {xff};
        location /prod/ {{
            proxy_pass http://{upstream};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
        location / {{
            proxy_pass http://{upstream};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
    # RFC 7239: appends its element to the client's Forwarded; passes X-Forwarded-* untouched.
    server {{
        listen {fwd};
        location / {{
            proxy_pass http://{upstream};
            proxy_set_header Forwarded "${{forwarded_prefix}}for={node};proto=https;host=\"$http_host\"";
        }}
    }}
}}
"#,
            tmp = dir.path().join("tmp").display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log");
        let prefix = dir.path().display().to_string();
        let child = Command::new(bin)
            .args(["-e", "stderr", "-p", &prefix, "-c"])
            .arg(&conf_path)
            .arg("-g")
            .arg(format!(
                "daemon off; pid {}; error_log stderr;",
                dir.path().join("nginx.pid").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            dir,
            xff,
            fwd,
        };
        nginx.wait_ready();
        Some(nginx)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited ({status}): {}", self.log());
            }
            let up = |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok();
            if up(&self.xff) && up(&self.fwd) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A URL on the X-Forwarded-* server.
    fn xff_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.xff)
    }

    /// A URL on the Forwarded server.
    fn fwd_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.fwd)
    }

    /// Where test clients of the Forwarded server connect from: its loopback address.
    fn fwd_client_ip(&self) -> IpAddr {
        self.fwd.ip()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM to the master (our child, by its id) stops its workers too; a killed master
        // would leave them running.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client whose connections come from `local` (a loopback address of its own).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

/// mtfu with a plain listener behind nginx, `tweak` applied on top.
async fn app_behind_nginx(
    tweak: impl FnOnce(&mut mtfu::config::Config),
) -> Option<(TestApp, Nginx)> {
    nginx_binary()?;
    let app = spawn_with(|c| {
        c.server.plain_listen = Some("127.0.0.1:0".into());
        c.server.trusted_proxies =
            vec![mtfu::config::TrustedProxy::parse(PROXY_ADDR).expect("net")];
        c.server.base_path = "/prod".into();
        tweak(c);
    })
    .await;
    let nginx = Nginx::start(app.plain.expect("plain listener"))?;
    Some((app, nginx))
}

async fn login(
    client: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = client
        .post(url)
        .json(&json!({"username": user, "password": password}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("token request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn token_via(nginx: &Nginx, c: &reqwest::Client) -> String {
    let (s, body) = login(c, &nginx.xff_url("/prod/api/token/"), "john1", "test", &[]).await;
    assert_eq!(s, 200, "{body}");
    body["access"].as_str().expect("access").to_owned()
}

fn file_form(name: &str, data: Vec<u8>) -> Form {
    Form::new()
        .text("resource", "product")
        .text("resource_id", "1")
        .part("file", Part::bytes(data).file_name(name.to_owned()))
}

async fn upload(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    form: Form,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = client.post(url).bearer_auth(token).multipart(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("upload request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, url: &str, token: &str, host: &str) -> (u16, Value) {
    let r = client
        .get(url)
        .bearer_auth(token)
        .header("host", host)
        .header("x-forwarded-host", "forged.example")
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The link of the first file a listing through the proxy shows.
async fn first_link(client: &reqwest::Client, url: &str, token: &str, host: &str) -> String {
    let (s, body) = get(client, url, token, host).await;
    assert_eq!(s, 200, "{body}");
    body["files"][0]["url"].as_str().expect("url").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    mtfu_no_nginx,
    ignore = "nginx is not installed (apt install nginx-light)"
)]
async fn links_carry_the_forwarded_proto_host_and_the_base_path() {
    let Some((_app, nginx)) = app_behind_nginx(|_| {}).await else {
        return;
    };
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
    let Some((app, nginx)) = app_behind_nginx(|_| {}).await else {
        return;
    };
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
    let Some((_app, nginx)) = app_behind_nginx(|c| {
        c.auth.max_failed_logins_per_ip = 3;
        c.auth.max_failed_logins_per_user = 1000;
    })
    .await
    else {
        return;
    };
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

/// A multipart form whose file part is `len` bytes, streamed with no length (chunked), so only
/// counting can find it too large.
fn chunked_form(len: usize) -> Form {
    let chunk = 256 * 1024;
    let s = futures_util::stream::iter((0..len.div_ceil(chunk)).map(move |i| {
        let n = chunk.min(len - i * chunk);
        Ok::<_, std::io::Error>(Bytes::from(vec![7u8; n]))
    }));
    Form::new()
        .text("resource", "product")
        .text("resource_id", "1")
        .part(
            "file",
            Part::stream(reqwest::Body::wrap_stream(s)).file_name("big.bin"),
        )
}

async fn assert_nothing_kept(app: &TestApp, token: &str) {
    assert!(
        eventually(10, || async { app.intents().await == 0 }).await,
        "intent left"
    );
    assert!(
        app.blob_files().await.is_empty(),
        "{:?}",
        app.blob_files().await
    );
    assert_eq!(app.get(token, "/prod/api/list_files").await.1["count"], 0);
}

fn assert_gateway_413(s: u16, body: &Value) {
    assert_eq!(s, 413, "{body}");
    assert_eq!(body["code"], "request_too_large");
    assert_eq!(body["max_request_body"], GATEWAY_CAP);
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains("10485760"), "{detail}");
    assert!(detail.contains("/prod/api/v2/uploads"), "{detail}");
}

pub async fn the_gateway_cap_refuses_larger_bodies_with_413_and_keeps_nothing() {
    let Some((app, nginx)) = app_behind_nginx(|c| {
        c.server.max_request_body = Some(GATEWAY_CAP);
        // A regression that waited for the stalled body below would answer 408, soon.
        c.server.body_read_timeout_secs = 3;
    })
    .await
    else {
        return;
    };
    let c = client_from("127.0.0.3");
    let token = token_via(&nginx, &c).await;
    let upload_url = nginx.xff_url("/prod/api/upload");

    // 12 MB with a Content-Length: refused before it is read.
    let (s, body) = upload(
        &c,
        &upload_url,
        &token,
        file_form("big.bin", vec![1; 12_000_000]),
        &[],
    )
    .await;
    assert_gateway_413(s, &body);
    assert_nothing_kept(&app, &token).await;

    // The Content-Length alone decides: a client that declares 12 MB, sends one byte and then
    // nothing still gets the 413 (not a 408 for its silence).
    let stalled = futures_util::StreamExt::chain(
        futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"x")) }),
        futures_util::stream::pending(),
    );
    let form = Form::new().text("resource", "product").part(
        "file",
        Part::stream_with_length(reqwest::Body::wrap_stream(stalled), 12_000_000)
            .file_name("big.bin"),
    );
    let (s, body) = upload(&c, &upload_url, &token, form, &[]).await;
    assert_gateway_413(s, &body);
    assert_nothing_kept(&app, &token).await;

    // 9 MB passes.
    let (s, body) = upload(
        &c,
        &upload_url,
        &token,
        file_form("ok.bin", vec![2; 9_000_000]),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["file"]["size"], 9_000_000);
}

pub async fn a_chunked_body_over_the_cap_is_stopped_while_streaming() {
    // The file-size limit far above the cap: only the counted request body can stop this one.
    let Some((app, nginx)) = app_behind_nginx(|c| {
        c.server.max_request_body = Some(GATEWAY_CAP);
        c.limits.max_file_size = 64 * 1024 * 1024;
    })
    .await
    else {
        return;
    };
    let c = client_from("127.0.0.3");
    let token = token_via(&nginx, &c).await;
    let upload_url = nginx.xff_url("/prod/api/upload");
    let (s, body) = upload(&c, &upload_url, &token, chunked_form(12_000_000), &[]).await;
    assert_gateway_413(s, &body);
    assert_nothing_kept(&app, &token).await;
    let (s, body) = upload(&c, &upload_url, &token, chunked_form(9_000_000), &[]).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["file"]["size"], 9_000_000);
}

pub async fn a_smaller_file_limit_keeps_the_seeds_400() {
    let Some((app, nginx)) = app_behind_nginx(|c| {
        c.server.max_request_body = Some(GATEWAY_CAP);
        c.limits.max_file_size = 1024 * 1024;
    })
    .await
    else {
        return;
    };
    let c = client_from("127.0.0.3");
    let token = token_via(&nginx, &c).await;
    let upload_url = nginx.xff_url("/prod/api/upload");
    for form in [
        file_form("big.bin", vec![1; 12_000_000]),
        chunked_form(2_000_000),
    ] {
        let (s, body) = upload(&c, &upload_url, &token, form, &[]).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(
            body,
            json!({"file": ["File size exceeds the maximum allowed size of 1048576 bytes"]})
        );
    }
    assert_nothing_kept(&app, &token).await;
}

crate::store_matrix!(
    #[cfg_attr(
        mtfu_no_nginx,
        ignore = "nginx is not installed (apt install nginx-light)"
    )]
    the_gateway_cap_refuses_larger_bodies_with_413_and_keeps_nothing,
    a_chunked_body_over_the_cap_is_stopped_while_streaming,
    a_smaller_file_limit_keeps_the_seeds_400,
);
