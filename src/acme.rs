//! ACME (RFC 8555): certificates for `tls.acme.domains` from Let's Encrypt or any ACME CA,
//! obtained and renewed in the background while the server runs.
//!
//! The account key and the certificate live in `data_dir/acme/` (keys mode 0600). At start
//! [`crate::tls::load`] serves the stored certificate while it is usable, else a temporary
//! self-signed one; [`Acme::run`] then orders a certificate when there is none or it expires
//! within `renew_before_days`, and swaps it into the [`CertStore`]: no restart, open
//! connections untouched. A failure is logged and retried with a growing delay.
//!
//! Validation: TLS-ALPN-01 (RFC 8737) answers on the HTTPS listener through the certificate
//! resolver; HTTP-01 answers `/.well-known/acme-challenge/{token}` from [`Http01Tokens`].

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, watch};

use crate::config::{AcmeChallenge, AcmeConfig, Config};
use crate::tls::{CertInfo, CertStore, TlsError};

/// One request to the CA may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Waiting for the CA to validate the challenges, and then to issue, may take this long.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);
/// First retry delay after a failed order; it doubles up to [`MAX_RETRY`]. Let's Encrypt allows
/// 5 failed validations per name per hour: starting at a minute stays under that.
const FIRST_RETRY: Duration = Duration::from_secs(60);
const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("ACME: {0}")]
    Order(String),
    #[error("ACME: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// HTTP-01 key authorizations by token, served on `/.well-known/acme-challenge/{token}`.
#[derive(Clone, Default)]
pub struct Http01Tokens(Arc<RwLock<HashMap<String, String>>>);

impl Http01Tokens {
    pub fn get(&self, token: &str) -> Option<String> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(token).cloned()
    }

    fn set(&self, token: &str, key_authorization: Option<String>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        match key_authorization {
            Some(k) => map.insert(token.to_owned(), k),
            None => map.remove(token),
        };
    }
}

/// Takes the challenge responses of one order down when the order ends, however it ends.
struct Responses<'a> {
    store: &'a CertStore,
    http01: &'a Http01Tokens,
    alpn_domains: Vec<String>,
    tokens: Vec<String>,
}

impl Drop for Responses<'_> {
    fn drop(&mut self) {
        for d in &self.alpn_domains {
            self.store.set_alpn_challenge(d, None);
        }
        for t in &self.tokens {
            self.http01.set(t, None);
        }
    }
}

/// The HTTPS client to the CA: rustls with ring, the system's and Mozilla's roots, plus
/// `ca_cert_path` when set.
struct CaClient(HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl CaClient {
    fn new(cfg: &AcmeConfig) -> Result<CaClient, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &cfg.ca_cert_path {
            let err = |m: String| TlsError::File {
                path: path.clone(),
                message: m,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            for c in crate::tls::parse_certs(&pem).map_err(err)? {
                roots.add(c)?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(CaClient(
            HyperClient::builder(TokioExecutor::new()).build(connector),
        ))
    }
}

impl HttpClient for CaClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = tokio::time::timeout(REQUEST_TIMEOUT, self.0.request(req));
        Box::pin(async move {
            match fut.await {
                Ok(Ok(resp)) => Ok(BytesResponse::from(resp)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Str("request to the CA timed out")),
            }
        })
    }
}

impl Clone for CaClient {
    fn clone(&self) -> Self {
        CaClient(self.0.clone())
    }
}

/// The background certificate manager.
pub struct Acme {
    cfg: AcmeConfig,
    dir: PathBuf,
    cert_path: PathBuf,
    key_path: PathBuf,
    store: Arc<CertStore>,
    http01: Http01Tokens,
    client: CaClient,
    account: Mutex<Option<Account>>,
}

/// Write `data` to `path` through a temporary file and a rename, so a reader sees the old file
/// or the new one. `private`: mode 0600.
fn replace_file(path: &Path, data: &[u8], private: bool) -> Result<(), AcmeError> {
    let io = |source| AcmeError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    if private {
        crate::auth::write_private(&tmp, data).map_err(io)?;
    } else {
        std::fs::write(&tmp, data).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

impl Acme {
    /// `store` is the server's certificate resolver; `http01` the tokens the plain listener
    /// serves. Fails if `ca_cert_path` cannot be read.
    pub fn new(
        cfg: &Config,
        store: Arc<CertStore>,
        http01: Http01Tokens,
    ) -> Result<Acme, TlsError> {
        let (cert_path, key_path) = crate::tls::acme_cert_paths(cfg);
        Ok(Acme {
            cfg: cfg.tls.acme.clone(),
            dir: crate::tls::acme_dir(cfg),
            cert_path,
            key_path,
            store,
            http01,
            client: CaClient::new(&cfg.tls.acme)?,
            account: Mutex::new(None),
        })
    }

    /// Obtain and renew until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let check = Duration::from_secs(self.cfg.check_interval_secs);
        let mut failures = 0u32;
        loop {
            let wait = if self.due() {
                let result = tokio::select! {
                    r = self.issue() => r,
                    _ = crate::shutdown::stopped(&mut stop) => return,
                };
                match result {
                    Ok(_) => {
                        failures = 0;
                        check
                    }
                    Err(e) => {
                        failures += 1;
                        let delay = FIRST_RETRY
                            .saturating_mul(1 << (failures - 1).min(16))
                            .min(MAX_RETRY)
                            .min(check);
                        tracing::error!(
                            error = %e,
                            failures,
                            retry_in_secs = delay.as_secs(),
                            "ACME: no certificate obtained"
                        );
                        delay
                    }
                }
            } else {
                check
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = crate::shutdown::stopped(&mut stop) => return,
            }
        }
    }

    /// The stored certificate, if it and its key can be read and belong together.
    fn stored(&self) -> Option<CertInfo> {
        crate::tls::load_pair(&self.cert_path, &self.key_path)
            .ok()
            .map(|(_, info)| info)
    }

    /// Whether a certificate must be ordered: none stored (or not with its key), other names,
    /// or expiring within `renew_before_days`.
    fn due(&self) -> bool {
        let Some(info) = self.stored() else {
            return true;
        };
        let margin = Duration::from_secs(self.cfg.renew_before_days.saturating_mul(86_400));
        !info.covers(&self.cfg.domains) || info.not_after <= SystemTime::now() + margin
    }

    /// The account for `directory_url`: from `data_dir/acme/account-<hash>.json`, else created
    /// (agreeing to the CA's terms of service) and stored there.
    async fn account(&self) -> Result<Account, AcmeError> {
        let mut cached = self.account.lock().await;
        if let Some(a) = cached.as_ref() {
            return Ok(a.clone());
        }
        let hash = hex::encode(Sha256::digest(self.cfg.directory_url.as_bytes()));
        let path = self.dir.join(format!("account-{}.json", &hash[..16]));
        let io = |source| AcmeError::Io {
            path: path.clone(),
            source,
        };
        let builder = Account::builder_with_http(Box::new(self.client.clone()));
        let account = match std::fs::read(&path) {
            Ok(bytes) => {
                let creds: AccountCredentials =
                    serde_json::from_slice(&bytes).map_err(|e| io(std::io::Error::other(e)))?;
                builder.from_credentials(creds).await?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let contact: Vec<&str> = self.cfg.contact.iter().map(String::as_str).collect();
                let (account, creds) = builder
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.cfg.directory_url.clone(),
                        None,
                    )
                    .await?;
                std::fs::create_dir_all(&self.dir).map_err(io)?;
                let json = serde_json::to_vec(&creds).map_err(|e| io(std::io::Error::other(e)))?;
                replace_file(&path, &json, true)?;
                tracing::info!(id = account.id(), "ACME: account created");
                account
            }
            Err(e) => return Err(io(e)),
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    /// Order a certificate for the domains, answer the challenges, store it and serve it.
    async fn issue(&self) -> Result<CertInfo, AcmeError> {
        let started = Instant::now();
        let domains = &self.cfg.domains;
        tracing::info!(domains = %domains.join(","), "ACME: ordering a certificate");
        let account = self.account().await?;
        let ids: Vec<Identifier> = domains.iter().cloned().map(Identifier::Dns).collect();
        let mut order = account.new_order(&NewOrder::new(&ids)).await?;
        let mut responses = Responses {
            store: &self.store,
            http01: &self.http01,
            alpn_domains: Vec::new(),
            tokens: Vec::new(),
        };
        let kind = match self.cfg.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Order(format!(
                        "authorization for {} is {other:?}",
                        authz.identifier()
                    )));
                }
            }
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or_else(|| AcmeError::Order(format!("the CA offers no {kind:?} challenge")))?;
            let domain = challenge.identifier().to_string();
            let key_auth = challenge.key_authorization();
            match self.cfg.challenge {
                AcmeChallenge::TlsAlpn01 => {
                    let ck = crate::tls::alpn_challenge_key(&domain, key_auth.digest().as_ref())?;
                    self.store.set_alpn_challenge(&domain, Some(ck));
                    responses.alpn_domains.push(domain.clone());
                }
                AcmeChallenge::Http01 => {
                    self.http01
                        .set(&challenge.token, Some(key_auth.as_str().to_owned()));
                    responses.tokens.push(challenge.token.clone());
                }
            }
            tracing::info!(domain, challenge = ?kind, "ACME: challenge ready");
            challenge.set_ready().await?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(ORDER_TIMEOUT);
        let status = order.poll_ready(&retry).await?;
        if status != OrderStatus::Ready {
            let why = order
                .state()
                .error
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "validation failed".into());
            return Err(AcmeError::Order(format!("order is {status:?}: {why}")));
        }
        drop(responses);

        let (csr, key_der, key_pem) =
            csr(domains).map_err(|e| AcmeError::Order(format!("CSR: {e}")))?;
        order.finalize_csr(&csr).await?;
        let chain_pem = order.poll_certificate(&retry).await?;
        let chain = crate::tls::parse_certs(chain_pem.as_bytes())
            .map_err(|e| AcmeError::Order(format!("certificate from the CA: {e}")))?;
        let info = crate::tls::cert_info(&chain[0])
            .map_err(|e| AcmeError::Order(format!("certificate from the CA: {e}")))?;
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key_der));
        let ck = crate::tls::certified_key(chain, key).map_err(TlsError::from)?;

        std::fs::create_dir_all(&self.dir).map_err(|source| AcmeError::Io {
            path: self.dir.clone(),
            source,
        })?;
        replace_file(&self.key_path, key_pem.as_bytes(), true)?;
        replace_file(&self.cert_path, chain_pem.as_bytes(), false)?;
        self.store.set(Arc::new(ck));
        tracing::info!(
            names = %info.names.join(","),
            not_after = %info.not_after_text(),
            serial = %info.serial,
            seconds = started.elapsed().as_secs_f64(),
            "ACME: certificate obtained and now served"
        );
        Ok(info)
    }
}

/// A new P-256 key and a CSR for `domains` signed with it: (CSR DER, key PKCS#8 DER, key PEM).
fn csr(domains: &[String]) -> Result<(Vec<u8>, Vec<u8>, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(domains.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok((csr.der().to_vec(), key.serialize_der(), key.serialize_pem()))
}
