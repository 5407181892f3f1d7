//! Behind a reverse proxy: a real nginx in front of mtfu's plain listener. One nginx server
//! sets `X-Forwarded-For/-Proto/-Host` (like an ALB or a TLS-terminating nginx), another writes
//! RFC 7239 `Forwarded` (on `::1` when the machine has IPv6). nginx connects to mtfu from
//! 127.0.0.2, the one trusted proxy; test clients connect to nginx from other loopback
//! addresses (127.0.0.3, 127.0.0.4, ...), so every party has its own address.
//!
//! Without nginx the build marks these tests ignored (tests/support/detect.rs), unless
//! `MTFU_TEST_REQUIRE_TOOLS=1`, where they fail.
//!
//! This module runs nginx and holds the shared helpers; the tests are in `proxy/forwarding.rs`
//! and `proxy/gateway.rs`.

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

mod forwarding;
mod gateway;

/// nginx's path. Never a silent skip: where the build found no nginx these tests are ignored
/// (tests/support/detect.rs); run anyway, they fail here.
fn nginx_binary() -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .chain(from_path)
        .find(|p| p.is_file())
        .expect("nginx is not installed: apt install nginx-light")
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
    fn start(upstream: SocketAddr) -> Nginx {
        let bin = nginx_binary();
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
        nginx
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
async fn app_behind_nginx(tweak: impl FnOnce(&mut mtfu::config::Config)) -> (TestApp, Nginx) {
    nginx_binary();
    let app = spawn_with(|c| {
        c.server.plain_listen = Some("127.0.0.1:0".into());
        c.server.trusted_proxies =
            vec![mtfu::config::TrustedProxy::parse(PROXY_ADDR).expect("net")];
        c.server.base_path = "/prod".into();
        tweak(c);
    })
    .await;
    let nginx = Nginx::start(app.plain.expect("plain listener"));
    (app, nginx)
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
