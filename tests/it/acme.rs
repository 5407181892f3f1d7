//! ACME against a real ACME server on loopback: Pebble (Let's Encrypt's test CA), validating
//! mtfu's TLS-ALPN-01 and HTTP-01 answers for real (never `PEBBLE_VA_ALWAYS_VALID`). Names are
//! resolved by pebble-challtestsrv's DNS, which answers 127.0.0.1 for every name.
//!
//! Without /usr/bin/pebble the build marks these tests ignored (tests/support/detect.rs),
//! unless MTFU_TEST_REQUIRE_TOOLS=1 (CI), where they fail.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mtfu::app::App;
use mtfu::config::{AcmeChallenge, Config};
use rustls::RootCertStore;

use crate::helpers::test_config;
use crate::tls::{Conn, connect, connect_unverified};

const DOMAIN: &str = "files.mtfu.test";

/// Whether Pebble is here; panics when CI requires it.
fn pebble_installed() -> bool {
    let found =
        Path::new("/usr/bin/pebble").exists() && Path::new("/usr/bin/pebble-challtestsrv").exists();
    // The build ignores these tests where it finds no pebble (tests/support/detect.rs).
    assert!(found, "pebble is not installed: apt install pebble");
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A Pebble CA and its DNS server, killed on drop.
struct Pebble {
    procs: Vec<Child>,
    dir: tempfile::TempDir,
    /// The directory URL.
    directory: String,
    /// The root of the certificates Pebble issues.
    issuing_root: RootCertStore,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Pebble {
    /// Start Pebble validating on `http_port` (HTTP-01) and `tls_port` (TLS-ALPN-01).
    async fn start(http_port: u16, tls_port: u16) -> Pebble {
        let dir = tempfile::tempdir().expect("tempdir");
        // Pebble's own HTTPS certificate.
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("cert");
        std::fs::write(dir.path().join("https.crt"), c.cert.pem()).expect("write");
        std::fs::write(dir.path().join("https.key"), c.key_pair.serialize_pem()).expect("write");
        let (wfe, mgmt, dns, chall_mgmt) = (free_port(), free_port(), free_udp_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{wfe}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.path().join("https.crt"),
            "privateKey": dir.path().join("https.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("write");
        let log = |name: &str| {
            std::fs::File::create(dir.path().join(name))
                .map(Stdio::from)
                .expect("log file")
        };
        let dns_server = Command::new("/usr/bin/pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{chall_mgmt}"),
            ])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("spawn pebble-challtestsrv");
        let pebble = Command::new("/usr/bin/pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("spawn pebble");
        let mut me = Pebble {
            procs: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{wfe}/dir"),
            issuing_root: RootCertStore::empty(),
            dir,
        };
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(c.cert.pem().as_bytes()).expect("pem"),
            )
            .build()
            .expect("client");
        let root_url = format!("https://127.0.0.1:{mgmt}/roots/0");
        let root = poll(30, || async {
            match client.get(&root_url).send().await {
                Ok(r) if r.status() == 200 => r.text().await.ok(),
                _ => None,
            }
        })
        .await;
        let pem = root.unwrap_or_else(|| panic!("pebble did not start: {}", me.log()));
        for c in mtfu::tls::parse_certs(pem.as_bytes()).expect("root pem") {
            me.issuing_root.add(c).expect("root");
        }
        me
    }

    fn https_cert(&self) -> PathBuf {
        self.dir.path().join("https.crt")
    }

    fn log(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A running mtfu; stopped on drop.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(cfg: Config) -> Server {
        let app = App::build(cfg)
            .await
            .expect("app builds without waiting for the CA");
        let addr = app.https_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Server {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server stops");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn acme_config(data: &Path, pebble: &Pebble, https_port: u16) -> Config {
    let mut cfg = test_config(data);
    cfg.server.listen = format!("127.0.0.1:{https_port}");
    cfg.tls.acme.domains = vec![DOMAIN.into()];
    cfg.tls.acme.contact = vec!["mailto:ops@mtfu.test".into()];
    cfg.tls.acme.directory_url = pebble.directory.clone();
    cfg.tls.acme.ca_cert_path = Some(pebble.https_cert());
    cfg
}

/// A connection verifying mtfu's certificate for [`DOMAIN`] against Pebble's root, once there
/// is one (until then mtfu serves its temporary self-signed certificate, which fails).
async fn wait_for_issued(addr: SocketAddr, pebble: &Pebble, secs: u64) -> Option<Conn> {
    poll(secs, || async {
        connect(addr, DOMAIN, &pebble.issuing_root).await.ok()
    })
    .await
}

/// Call `f` every 50 ms until it gives something, for up to `secs`.
async fn poll<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn serial(c: &Conn) -> String {
    mtfu::tls::cert_info(&c.peer_cert()).expect("parse").serial
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test]
#[cfg_attr(
    mtfu_no_pebble,
    ignore = "pebble is not installed (apt install pebble)"
)]
async fn tls_alpn_01_gets_a_certificate_that_is_kept_for_the_next_start() {
    if !pebble_installed() {
        return;
    }
    let https_port = free_port();
    let pebble = Pebble::start(free_port(), https_port).await;
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = acme_config(data.path(), &pebble, https_port);
    let started = Instant::now();
    let server = Server::start(cfg.clone()).await;
    let mut conn = wait_for_issued(server.addr, &pebble, 120)
        .await
        .unwrap_or_else(|| panic!("no certificate issued; pebble says:\n{}", pebble.log()));
    eprintln!(
        "ACME issuance (tls-alpn-01) took {:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(conn.get("/healthz").await, 200);
    let info = mtfu::tls::cert_info(&conn.peer_cert()).expect("parse");
    assert_eq!(info.names, [DOMAIN]);

    let acme_dir = data.path().join("acme");
    assert_eq!(mode(&acme_dir.join("key.pem")), 0o600);
    let account = std::fs::read_dir(&acme_dir)
        .expect("acme dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().contains("account-"))
        .expect("account file");
    assert_eq!(mode(&account), 0o600);

    // The next start, with the CA gone, serves the stored certificate at once.
    server.stop().await;
    let root = pebble.issuing_root.clone();
    let ca = data.path().join("pebble-https.crt");
    std::fs::copy(pebble.https_cert(), &ca).expect("copy");
    drop(pebble);
    let mut cfg = cfg;
    cfg.tls.acme.ca_cert_path = Some(ca);
    let server = Server::start(cfg).await;
    let conn = connect(server.addr, DOMAIN, &root)
        .await
        .expect("the stored certificate, verified");
    assert_eq!(serial(&conn), info.serial);
    server.stop().await;
}

#[tokio::test]
#[cfg_attr(
    mtfu_no_pebble,
    ignore = "pebble is not installed (apt install pebble)"
)]
async fn http_01_gets_a_certificate() {
    if !pebble_installed() {
        return;
    }
    let (https_port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, https_port).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut cfg = acme_config(data.path(), &pebble, https_port);
    cfg.server.plain_listen = Some(format!("127.0.0.1:{http_port}"));
    cfg.tls.acme.challenge = AcmeChallenge::Http01;
    let started = Instant::now();
    let server = Server::start(cfg).await;
    let mut conn = wait_for_issued(server.addr, &pebble, 120)
        .await
        .unwrap_or_else(|| panic!("no certificate issued; pebble says:\n{}", pebble.log()));
    eprintln!(
        "ACME issuance (http-01) took {:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(conn.get("/healthz").await, 200);
    // The challenge answer is gone once the order is done.
    let plain = reqwest::Client::new();
    let r = plain
        .get(format!(
            "http://127.0.0.1:{http_port}/.well-known/acme-challenge/x"
        ))
        .send()
        .await
        .expect("plain");
    assert_eq!(r.status(), 404);
    server.stop().await;
}

#[tokio::test]
#[cfg_attr(
    mtfu_no_pebble,
    ignore = "pebble is not installed (apt install pebble)"
)]
async fn renewal_swaps_the_certificate_while_open_connections_survive() {
    if !pebble_installed() {
        return;
    }
    let https_port = free_port();
    let pebble = Pebble::start(free_port(), https_port).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut cfg = acme_config(data.path(), &pebble, https_port);
    // Every certificate is "about to expire": a new one is ordered at every check.
    cfg.tls.acme.renew_before_days = 100_000;
    cfg.tls.acme.check_interval_secs = 1;
    let server = Server::start(cfg).await;
    let mut old = wait_for_issued(server.addr, &pebble, 120)
        .await
        .unwrap_or_else(|| panic!("no certificate issued; pebble says:\n{}", pebble.log()));
    let first = serial(&old);
    let renewed = poll(120, || async {
        let c = connect(server.addr, DOMAIN, &pebble.issuing_root)
            .await
            .ok()?;
        (serial(&c) != first).then_some(c)
    })
    .await;
    let mut renewed =
        renewed.unwrap_or_else(|| panic!("no renewed certificate; pebble says:\n{}", pebble.log()));
    assert_eq!(renewed.get("/healthz").await, 200);
    assert_eq!(
        old.get("/healthz").await,
        200,
        "the connection from before renewal"
    );
    assert_eq!(serial(&old), first);
    server.stop().await;
}

#[tokio::test]
async fn startup_does_not_wait_for_the_ca_and_acme_tls_alpn_is_never_given_to_http_clients() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(data.path());
    cfg.tls.acme.domains = vec![DOMAIN.into()];
    // Nothing listens there: every order fails and is retried later.
    cfg.tls.acme.directory_url = format!("https://127.0.0.1:{}/dir", free_port());
    let server = Server::start(cfg).await;
    // The temporary self-signed certificate for the domain is served meanwhile.
    let mut c = connect_unverified(server.addr, DOMAIN, &[b"http/1.1"])
        .await
        .expect("connect");
    let info = mtfu::tls::cert_info(&c.peer_cert()).expect("parse");
    assert_eq!(info.names, [DOMAIN]);
    assert_eq!(c.get("/healthz").await, 200);
    // A client offering acme-tls/1 besides HTTP gets HTTP.
    let c = connect_unverified(server.addr, DOMAIN, &[b"acme-tls/1", b"h2", b"http/1.1"])
        .await
        .expect("connect");
    assert_eq!(c.alpn().as_deref(), Some(&b"h2"[..]));
    // acme-tls/1 alone, with no validation pending: no handshake at all.
    assert!(
        connect_unverified(server.addr, DOMAIN, &[b"acme-tls/1"])
            .await
            .is_err()
    );
    server.stop().await;
}
