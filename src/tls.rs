//! TLS: the server certificate, from PEM files, from ACME (see [`crate::acme`]) or self-signed
//! (rcgen), and the rustls config.
//!
//! Without `tls.cert_path`/`tls.key_path` (and without ACME) a self-signed certificate for
//! `localhost`, `127.0.0.1`, `::1` and `tls.self_signed_names` is made on first start and kept
//! in `data_dir/tls/`, so the next start presents the same certificate (a client that pinned it
//! keeps working).
//!
//! The `ServerConfig` never changes after start: its certificate comes from a [`CertStore`], a
//! resolver holding the current certificate behind an `ArcSwap`. Replacing it ([`TlsReloader`]
//! on SIGHUP, or an ACME renewal) affects the handshakes that follow; connections already open
//! keep what they negotiated. The store also answers TLS-ALPN-01 validations (RFC 8737) with
//! their challenge certificates.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::{AcmeChallenge, Config};

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737). Such a connection only
/// proves the certificate: the server closes it after the handshake.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_err(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `data_dir/acme`: the ACME account key and the certificate obtained by [`crate::acme`].
pub fn acme_dir(cfg: &Config) -> PathBuf {
    cfg.server.data_dir.join("acme")
}

/// The certificate chain and key stored by [`crate::acme`].
pub fn acme_cert_paths(cfg: &Config) -> (PathBuf, PathBuf) {
    let d = acme_dir(cfg);
    (d.join("cert.pem"), d.join("key.pem"))
}

/// Where the certificate and key are read from (and what SIGHUP re-reads).
pub fn cert_paths(cfg: &Config) -> (PathBuf, PathBuf) {
    if cfg.tls.acme.enabled() {
        return acme_cert_paths(cfg);
    }
    match (&cfg.tls.cert_path, &cfg.tls.key_path) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = cfg.server.data_dir.join("tls");
            (dir.join("self-signed.crt"), dir.join("self-signed.key"))
        }
    }
}

/// Make the self-signed pair if it is what the config asks for and it does not exist yet.
pub fn ensure_self_signed(cfg: &Config) -> Result<(), TlsError> {
    if cfg.tls.cert_path.is_some() || cfg.tls.acme.enabled() {
        return Ok(());
    }
    let (crt, key) = cert_paths(cfg);
    if crt.exists() && key.exists() {
        return Ok(());
    }
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(cfg.tls.self_signed_names.iter().cloned());
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = crt.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    // Key first, owner-only; a leftover key from an interrupted start is replaced.
    let _ = std::fs::remove_file(&key);
    crate::auth::write_private(&key, certified.key_pair.serialize_pem().as_bytes())
        .map_err(|e| file_err(&key, e))?;
    std::fs::write(&crt, certified.cert.pem()).map_err(|e| file_err(&crt, e))?;
    tracing::info!(cert = %crt.display(), "generated a self-signed certificate");
    Ok(())
}

/// A self-signed certificate for `names`, in memory only.
pub fn self_signed_key(names: Vec<String>) -> Result<Arc<CertifiedKey>, TlsError> {
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let ck = CertifiedKey::from_der(vec![certified.cert.der().clone()], key.into(), &provider())?;
    Ok(Arc::new(ck))
}

/// The TLS-ALPN-01 challenge certificate for `domain`: self-signed, with the critical
/// acmeIdentifier extension holding the SHA-256 digest of the key authorization (RFC 8737).
pub fn alpn_challenge_key(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let generate = || -> Result<(rcgen::Certificate, rcgen::KeyPair), rcgen::Error> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
        Ok((params.self_signed(&key)?, key))
    };
    let (cert, key) = generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let key = PrivatePkcs8KeyDer::from(key.serialize_der());
    // Not `from_der`: its key check parses the certificate with webpki, which refuses the
    // critical acmeIdentifier extension. The key was made for this certificate just above.
    let signer = provider().key_provider.load_private_key(key.into())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// Every certificate in a PEM text, in order.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| file_err(path, e))?;
    parse_certs(&pem).map_err(|e| file_err(path, e))
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let f = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| file_err(path, e))?
        .ok_or_else(|| file_err(path, "no PEM private key found"))
}

/// The chain and key as rustls serves them, checking that the key belongs to the certificate.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, rustls::Error> {
    CertifiedKey::from_der(chain, key, &provider())
}

/// What the logs say about a certificate (never anything about its key).
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject alternative names (DNS names and IP addresses).
    pub names: Vec<String>,
    pub not_after: SystemTime,
    /// The serial number, hex.
    pub serial: String,
}

impl CertInfo {
    /// `notAfter` as RFC 3339, for logs.
    pub fn not_after_text(&self) -> String {
        chrono::DateTime::<chrono::Utc>::from(self.not_after)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Whether the certificate names every one of `domains` (case-insensitively).
    pub fn covers(&self, domains: &[String]) -> bool {
        domains
            .iter()
            .all(|d| self.names.iter().any(|n| n.eq_ignore_ascii_case(d)))
    }
}

/// Names, expiry and serial of a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    let tbs = &cert.tbs_certificate;
    let mut names = Vec::new();
    if let Ok(Some((_, san))) = tbs.get::<SubjectAltName>() {
        for n in san.0 {
            match n {
                GeneralName::DnsName(d) => names.push(d.as_str().to_owned()),
                GeneralName::IpAddress(ip) => {
                    let b = ip.as_bytes();
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.push(tbs.subject.to_string());
    }
    Ok(CertInfo {
        names,
        not_after: tbs.validity.not_after.to_system_time(),
        serial: hex::encode(tbs.serial_number.as_bytes()),
    })
}

/// Read a PEM chain and key and check they belong together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    let chain = load_certs(cert)?;
    let info = cert_info(&chain[0]).map_err(|e| file_err(cert, e))?;
    let ck = certified_key(chain, load_key(key)?).map_err(|e| file_err(key, e))?;
    Ok((Arc::new(ck), info))
}

/// Log a certificate now being served.
pub fn log_cert(event: &str, source: &Path, info: &CertInfo) {
    tracing::info!(
        source = %source.display(),
        names = %info.names.join(","),
        not_after = %info.not_after_text(),
        serial = %info.serial,
        "certificate {event}"
    );
}

/// The certificate resolver: the current certificate, and the TLS-ALPN-01 challenge
/// certificates by domain while an ACME validation is pending.
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
    alpn_challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").finish_non_exhaustive()
    }
}

impl CertStore {
    pub fn new(current: Arc<CertifiedKey>) -> Arc<CertStore> {
        Arc::new(CertStore {
            current: ArcSwap::new(current),
            alpn_challenges: RwLock::new(HashMap::new()),
        })
    }

    /// Serve `ck` to the handshakes that follow.
    pub fn set(&self, ck: Arc<CertifiedKey>) {
        self.current.store(ck);
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Answer TLS-ALPN-01 validations for `domain` with `ck`, or (`None`) stop answering them.
    pub fn set_alpn_challenge(&self, domain: &str, ck: Option<Arc<CertifiedKey>>) {
        let mut map = self
            .alpn_challenges
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let domain = domain.to_ascii_lowercase();
        match ck {
            Some(ck) => map.insert(domain, ck),
            None => map.remove(&domain),
        };
    }
}

/// Whether rustls will negotiate `acme-tls/1` for a client offering `alpn`: it picks the first
/// of the server's protocols (h2, http/1.1, acme-tls/1) the client offers, so exactly when the
/// client offers acme-tls/1 and neither HTTP protocol.
fn is_acme_validation<'a>(alpn: Option<impl Iterator<Item = &'a [u8]>>) -> bool {
    let Some(protocols) = alpn else {
        return false;
    };
    let mut acme = false;
    for p in protocols {
        match p {
            ACME_TLS_ALPN => acme = true,
            b"h2" | b"http/1.1" => return false,
            _ => {}
        }
    }
    acme
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if is_acme_validation(hello.alpn()) {
            // No challenge pending for this name: fail the handshake rather than present the
            // real certificate on an acme-tls/1 connection.
            let name = hello.server_name()?.to_ascii_lowercase();
            let map = self
                .alpn_challenges
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            return map.get(&name).cloned();
        }
        Some(self.current.load_full())
    }
}

/// Re-reads the certificate and key files into the [`CertStore`]: what SIGHUP does.
#[derive(Clone)]
pub struct TlsReloader {
    store: Arc<CertStore>,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsReloader {
    /// Load the files again and serve them to new handshakes. On any error (unreadable file,
    /// bad PEM, a key that does not match) the current certificate stays and the error is logged.
    pub fn reload(&self) -> Result<CertInfo, TlsError> {
        match load_pair(&self.cert, &self.key) {
            Ok((ck, info)) => {
                self.store.set(ck);
                log_cert("reloaded", &self.cert, &info);
                Ok(info)
            }
            Err(e) => {
                tracing::error!(error = %e, "certificate reload failed; still serving the previous certificate");
                Err(e)
            }
        }
    }
}

/// The server's TLS: the fixed rustls config, its certificate store and the reload handle.
pub struct Tls {
    pub config: Arc<ServerConfig>,
    pub store: Arc<CertStore>,
    pub reloader: TlsReloader,
}

/// The first certificate of an ACME setup: the stored one while it is usable, else a temporary
/// self-signed one until the CA issues the real one (startup never waits for the CA).
fn initial_acme_key(cfg: &Config, crt: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let domains = &cfg.tls.acme.domains;
    match load_pair(crt, key) {
        Ok((ck, info)) if info.covers(domains) && info.not_after > SystemTime::now() => {
            log_cert("loaded", crt, &info);
            return Ok(ck);
        }
        Ok(_) => tracing::info!("ACME: the stored certificate is expired or names other domains"),
        Err(e) if crt.exists() => tracing::warn!(error = %e, "ACME: stored certificate unusable"),
        Err(_) => {}
    }
    tracing::info!(
        domains = %domains.join(","),
        "ACME: serving a temporary self-signed certificate until the CA issues one"
    );
    self_signed_key(domains.clone())
}

/// Load the certificate as configured and build the rustls config around a [`CertStore`].
pub fn load(cfg: &Config) -> Result<Tls, TlsError> {
    ensure_self_signed(cfg)?;
    let (crt, key) = cert_paths(cfg);
    let first = if cfg.tls.acme.enabled() {
        initial_acme_key(cfg, &crt, &key)?
    } else {
        let (ck, info) = load_pair(&crt, &key)?;
        log_cert("loaded", &crt, &info);
        ck
    };
    let store = CertStore::new(first);
    let mut sc = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if cfg.tls.acme.enabled() && cfg.tls.acme.challenge == AcmeChallenge::TlsAlpn01 {
        // Last: rustls picks the first of ours the client offers, so only a client offering
        // neither HTTP protocol gets it.
        sc.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(Tls {
        config: Arc::new(sc),
        reloader: TlsReloader {
            store: store.clone(),
            cert: crt,
            key,
        },
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::default();
        cfg.server.data_dir = dir.path().to_owned();
        load(&cfg).expect("first");
        let (crt, _) = cert_paths(&cfg);
        let first = std::fs::read(&crt).expect("read");
        load(&cfg).expect("second");
        assert_eq!(first, std::fs::read(&crt).expect("read"));
    }

    #[test]
    fn cert_info_reads_names_and_expiry() {
        let c = rcgen::generate_simple_self_signed(vec!["a.example".into(), "127.0.0.1".into()])
            .expect("cert");
        let info = cert_info(c.cert.der()).expect("parse");
        assert_eq!(info.names, ["a.example", "127.0.0.1"]);
        assert!(info.covers(&["A.example".into()]));
        assert!(!info.covers(&["b.example".into()]));
        assert!(info.not_after > SystemTime::now());
    }

    #[test]
    fn only_a_client_offering_acme_tls_alone_is_a_validation() {
        let offer = |p: &[&'static [u8]]| is_acme_validation(Some(p.iter().copied()));
        assert!(offer(&[ACME_TLS_ALPN]));
        assert!(!offer(&[ACME_TLS_ALPN, b"h2"]));
        assert!(!offer(&[b"http/1.1", ACME_TLS_ALPN]));
        assert!(!offer(&[b"h2"]));
        assert!(!is_acme_validation(None::<std::iter::Empty<&[u8]>>));
    }
}
