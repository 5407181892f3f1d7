//! TLS: the server certificate, from PEM files or self-signed (rcgen), and the rustls config.
//!
//! Without `tls.cert_path`/`tls.key_path` a self-signed certificate for `localhost`, `127.0.0.1`,
//! `::1` and `tls.self_signed_names` is made on first start and kept in `data_dir/tls/`, so the
//! next start presents the same certificate (a client that pinned it keeps working).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

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

/// Where the certificate and key come from.
pub fn cert_paths(cfg: &Config) -> (PathBuf, PathBuf) {
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
    if cfg.tls.cert_path.is_some() {
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

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let f = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let f = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| file_err(path, e))?
        .ok_or_else(|| file_err(path, "no PEM private key found"))
}

/// The rustls server configuration: the certificate, and ALPN for HTTP/2 and HTTP/1.1.
pub fn server_config(cfg: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    ensure_self_signed(cfg)?;
    let (crt, key) = cert_paths(cfg);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut sc = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(load_certs(&crt)?, load_key(&key)?)?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(sc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::default();
        cfg.server.data_dir = dir.path().to_owned();
        server_config(&cfg).expect("first");
        let (crt, _) = cert_paths(&cfg);
        let first = std::fs::read(&crt).expect("read");
        server_config(&cfg).expect("second");
        assert_eq!(first, std::fs::read(&crt).expect("read"));
    }
}
