//! Certificate reload: SIGHUP (and the reload handle it calls) swaps the certificate for new
//! handshakes while open connections keep serving; a bad new pair leaves the old one in place.
//! Also the raw TLS client the ACME tests use.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use mtfu::app::App;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::helpers::{eventually, test_config};

/// One TLS connection, kept open across requests (HTTP/1.1 keep-alive).
pub struct Conn(TlsStream<TcpStream>);

/// Connect to `addr` as `name`, verifying against `roots` only, offering HTTP/1.1. No session
/// resumption, so every connection shows the certificate the server presents now.
pub async fn connect(addr: SocketAddr, name: &str, roots: &RootCertStore) -> std::io::Result<Conn> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    open(addr, name, cfg, &[b"http/1.1"]).await
}

/// Connect accepting whatever certificate the server presents (to look at it).
pub async fn connect_unverified(
    addr: SocketAddr,
    name: &str,
    alpn: &[&[u8]],
) -> std::io::Result<Conn> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    open(addr, name, cfg, alpn).await
}

async fn open(
    addr: SocketAddr,
    name: &str,
    mut cfg: rustls::ClientConfig,
    alpn: &[&[u8]],
) -> std::io::Result<Conn> {
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let tls = TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await?;
    Ok(Conn(tls))
}

/// A verifier that checks the handshake signatures but trusts any certificate.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Conn {
    /// The end-entity certificate the server presented.
    pub fn peer_cert(&self) -> CertificateDer<'static> {
        self.0
            .get_ref()
            .1
            .peer_certificates()
            .expect("certificates")[0]
            .clone()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.0.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// `GET path` on this connection; the status.
    pub async fn get(&mut self, path: &str) -> u16 {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.0.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.0.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a whole response");
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().expect("content-length"));
            if buf.len() >= end + 4 + len {
                return head[9..12].parse().expect("status");
            }
        }
    }
}

/// A self-signed certificate for localhost: (cert PEM, key PEM, cert DER).
fn make_cert() -> (String, String, CertificateDer<'static>) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    (
        c.cert.pem(),
        c.key_pair.serialize_pem(),
        c.cert.der().clone(),
    )
}

fn roots(certs: &[&CertificateDer<'static>]) -> RootCertStore {
    let mut r = RootCertStore::empty();
    for c in certs {
        r.add((*c).clone()).expect("root");
    }
    r
}

fn write_pair(dir: &Path, cert: &str, key: &str) {
    std::fs::write(dir.join("cert.pem"), cert).expect("write cert");
    std::fs::write(dir.join("key.pem"), key).expect("write key");
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_and_keeps_open_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    let (a_pem, a_key, a_der) = make_cert();
    let (b_pem, b_key, b_der) = make_cert();
    write_pair(files.path(), &a_pem, &a_key);
    let mut cfg = test_config(dir.path());
    cfg.tls.cert_path = Some(files.path().join("cert.pem"));
    cfg.tls.key_path = Some(files.path().join("key.pem"));
    let app = App::build(cfg).await.expect("app");
    let reloader = app.tls_reloader();
    let addr = app.https_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let trust = roots(&[&a_der, &b_der]);

    let mut old = connect(addr, "localhost", &trust).await.expect("connect");
    assert_eq!(old.peer_cert(), a_der);
    assert_eq!(old.get("/healthz").await, 200);

    // Bad PEM, then a certificate with another certificate's key: refused, A stays.
    write_pair(files.path(), "not a certificate", "not a key");
    assert!(reloader.reload().is_err());
    write_pair(files.path(), &b_pem, &a_key);
    let err = reloader.reload().expect_err("mismatched key").to_string();
    assert!(err.contains("key.pem"), "{err}");
    let c = connect(addr, "localhost", &trust).await.expect("connect");
    assert_eq!(
        c.peer_cert(),
        a_der,
        "a failed reload keeps the old certificate"
    );

    write_pair(files.path(), &b_pem, &b_key);
    let info = reloader.reload().expect("reload");
    assert_eq!(info.names, ["localhost"]);
    let mut new = connect(addr, "localhost", &trust).await.expect("connect");
    assert_eq!(new.peer_cert(), b_der);
    assert_eq!(new.get("/healthz").await, 200);
    // The connection opened before the reload still works, and still has A.
    assert_eq!(old.get("/healthz").await, 200);
    assert_eq!(old.peer_cert(), a_der);

    let _ = stop.send(());
    server.await.expect("server stops");
}

/// `mtfu serve` with the certificate files of `files`; killed on drop.
struct Child {
    proc: std::process::Child,
    addr: SocketAddr,
    /// Its log (stdout after the address, and stderr) so far.
    log: Arc<std::sync::Mutex<String>>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

fn serve_with_files(data: &Path, files: &Path) -> Child {
    let mut proc = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .arg("serve")
        .env("MTFU_SERVER__DATA_DIR", data)
        .env("MTFU_SERVER__LISTEN", "127.0.0.1:0")
        .env("MTFU_TLS__CERT_PATH", files.join("cert.pem"))
        .env("MTFU_TLS__KEY_PATH", files.join("key.pem"))
        .env("MTFU_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mtfu serve");
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = BufReader::new(proc.stderr.take().expect("stderr"));
    let sink = log.clone();
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            let mut s = sink.lock().expect("log");
            s.push_str(&l);
            s.push('\n');
        }
    });
    let mut lines = BufReader::new(proc.stdout.take().expect("stdout")).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split("listening on https://")
                .nth(1)
                .map(|a| a.trim().parse::<SocketAddr>().expect("address"))
        })
        .expect("mtfu serve reports its address");
    // `serve` logs to stdout (other versions to stderr): keep both.
    let sink = log.clone();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let mut s = sink.lock().expect("log");
            s.push_str(&l);
            s.push('\n');
        }
    });
    Child { proc, addr, log }
}

#[tokio::test]
async fn sighup_makes_the_mtfu_process_reload_its_certificate() {
    let data = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    let (a_pem, a_key, a_der) = make_cert();
    let (b_pem, b_key, b_der) = make_cert();
    write_pair(files.path(), &a_pem, &a_key);
    let mut child = serve_with_files(data.path(), files.path());
    let trust = roots(&[&a_der, &b_der]);
    let addr = child.addr;

    let mut old = connect(addr, "localhost", &trust).await.expect("connect");
    assert_eq!(old.peer_cert(), a_der);
    assert_eq!(old.get("/healthz").await, 200);

    write_pair(files.path(), &b_pem, &b_key);
    let pid = child.proc.id().to_string();
    let ok = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(ok.success());
    let swapped = eventually(30, || async {
        let c = connect(addr, "localhost", &trust).await.expect("connect");
        c.peer_cert() == b_der
    })
    .await;
    assert!(swapped, "after SIGHUP new connections get certificate B");
    assert_eq!(
        old.get("/healthz").await,
        200,
        "the open connection survives"
    );
    assert!(
        child.proc.try_wait().expect("wait").is_none(),
        "still running"
    );

    // A bad pair on the next SIGHUP: B stays.
    write_pair(files.path(), "garbage", "garbage");
    let ok = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(ok.success());
    let logged = eventually(30, || async {
        child
            .log
            .lock()
            .expect("log")
            .contains("certificate reload failed")
    })
    .await;
    assert!(
        logged,
        "the failed reload is logged: {}",
        child.log.lock().expect("log")
    );
    let c = connect(addr, "localhost", &trust).await.expect("connect");
    assert_eq!(c.peer_cert(), b_der);
    assert!(
        child.proc.try_wait().expect("wait").is_none(),
        "still running"
    );
    let log = child.log.lock().expect("log").clone();
    let key_line = b_key.lines().nth(1).expect("key body");
    assert!(!log.contains(key_line), "a private key reached the log");
}
