//! Wiring: [`App::build`] opens the stores, migrates, loads TLS and binds the listeners;
//! [`App::run_until_stopped`] serves until a shutdown signal. Tests start the real server
//! through the same two calls.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::auth::{Auth, load_or_create_secret};
use crate::blob::{Blob, BlobError};
use crate::budget::Budget;
use crate::config::{Config, parse_addr};
use crate::http::{AppState, server};
use crate::meta::{Meta, MetaError};
use crate::service::Files;

/// How long shutdown waits for the clean-up of cancelled uploads.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// The process-wide Prometheus recorder (the `metrics` facade has one global recorder).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Durations as histograms (buckets from 1 ms to 5 min: small requests and long
            // uploads), so that they can be aggregated across nodes; not summaries.
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0, 60.0, 300.0,
                    ],
                )
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just stays empty.
            let _ = metrics::set_global_recorder(recorder);
            crate::telemetry::describe();
            handle
        })
        .clone()
}

/// Open both stores as configured and apply pending migrations.
pub async fn open_stores(cfg: &Config) -> Result<(Meta, Blob), StartError> {
    open_stores_with(cfg, Budget::new(cfg.limits.buffer_budget)).await
}

/// [`open_stores`], with the blob store's writers holding `budget`.
pub async fn open_stores_with(
    cfg: &Config,
    budget: Arc<Budget>,
) -> Result<(Meta, Blob), StartError> {
    std::fs::create_dir_all(&cfg.server.data_dir).map_err(|source| StartError::Io {
        what: format!("create data_dir {}", cfg.server.data_dir.display()),
        source,
    })?;
    let meta = Meta::open(cfg).await?;
    meta.migrate().await?;
    let blob = Blob::open(cfg, budget).await?;
    Ok((meta, blob))
}

/// Build the authenticator (loading or creating the JWT secret).
pub fn build_auth(cfg: &Config) -> Result<Auth, StartError> {
    let secret = load_or_create_secret(&cfg.auth, &cfg.server.data_dir).map_err(|source| {
        StartError::Io {
            what: "JWT secret".into(),
            source,
        }
    })?;
    Ok(Auth::new(&cfg.auth, &secret))
}

/// A built server: stores open, listeners bound, not yet serving.
pub struct App {
    state: Arc<AppState>,
    https: TcpListener,
    plain: Option<TcpListener>,
    /// `server.metrics_listen`, unless off.
    metrics: Option<TcpListener>,
    tls: TlsAcceptor,
    tls_reloader: crate::tls::TlsReloader,
    acme: Option<crate::acme::Acme>,
}

async fn bind(addr: &str, key: &str) -> Result<TcpListener, StartError> {
    let addr = parse_addr(addr).map_err(|m| crate::config::ConfigError::Invalid {
        key: match key {
            "listen" => "server.listen",
            "metrics_listen" => "server.metrics_listen",
            _ => "server.plain_listen",
        },
        message: m,
    })?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Io {
            what: format!("bind server.{key} {addr}"),
            source,
        })
}

impl App {
    pub async fn build(cfg: Config) -> Result<App, StartError> {
        cfg.validate()?;
        let budget = Budget::new(cfg.limits.buffer_budget);
        let (meta, blob) = open_stores_with(&cfg, budget.clone()).await?;
        let tls = crate::tls::load(&cfg)?;
        let acme_http01 = crate::acme::Http01Tokens::default();
        let acme = if cfg.tls.acme.enabled() {
            let store = tls.store.clone();
            Some(crate::acme::Acme::new(&cfg, store, acme_http01.clone())?)
        } else {
            None
        };
        let tls_reloader = tls.reloader;
        let tls = TlsAcceptor::from(tls.config);
        let auth = build_auth(&cfg)?;
        let https = bind(&cfg.server.listen, "listen").await?;
        let plain = match &cfg.server.plain_listen {
            Some(a) => Some(bind(a, "plain_listen").await?),
            None => None,
        };
        let metrics = match &cfg.server.metrics_listen {
            m if crate::config::metrics_off(m) => None,
            m => Some(bind(m, "metrics_listen").await?),
        };
        let quota = crate::meta::quota::Defaults {
            bytes: cfg.limits.quota_bytes,
            files: cfg.limits.quota_files,
        };
        let files = Files {
            meta,
            blob,
            budget,
            quota,
            lease: Duration::from_secs(cfg.gc.upload_lease_secs),
            hooks: crate::hooks::Hooks::default(),
        };
        let state = Arc::new(AppState {
            windows: crate::http::windows::WindowGrants::new(&cfg.http2),
            cfg: Arc::new(cfg),
            auth,
            files,
            metrics: prometheus(),
            acme_http01,
        });
        Ok(App {
            state,
            https,
            plain,
            metrics,
            tls,
            tls_reloader,
            acme,
        })
    }

    /// Re-reads the certificate and key files (what SIGHUP does); open connections keep theirs.
    pub fn tls_reloader(&self) -> crate::tls::TlsReloader {
        self.tls_reloader.clone()
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.https
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The metrics listener's address (`server.metrics_listen`), unless it is off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serve until `shutdown` resolves; then stop accepting and give in-flight requests
    /// `server.shutdown_grace_secs` to finish. Runs the garbage collector periodically.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let grace = Duration::from_secs(self.state.cfg.server.shutdown_grace_secs);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(server::serve(
            self.https,
            Some(self.tls),
            self.state.clone(),
            stop_rx.clone(),
            grace,
        ));
        if let Some(plain) = self.plain {
            tasks.spawn(server::serve(
                plain,
                None,
                self.state.clone(),
                stop_rx.clone(),
                grace,
            ));
        }
        if let Some(metrics) = self.metrics {
            tasks.spawn(crate::http::metrics_listener::serve(
                metrics,
                self.state.clone(),
                stop_rx.clone(),
            ));
        }
        if let Some(acme) = self.acme {
            tasks.spawn(acme.run(stop_rx.clone()));
        }
        let gc = tokio::spawn(periodic_gc(self.state.clone(), stop_rx));
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        gc.abort();
        // Requests cancelled at the end of the grace period left clean-up behind (aborting
        // multipart uploads, removing blobs and intents): let it finish before exiting.
        if !crate::cleanup::wait(CLEANUP_WAIT).await {
            tracing::warn!(
                tasks = crate::cleanup::running(),
                "clean-up not finished at exit; gc will find what is left through its intents"
            );
        }
        tracing::info!("stopped");
    }
}

async fn periodic_gc(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let every = state.cfg.gc.interval_secs;
    if every == 0 {
        return;
    }
    let settings = crate::gc::Settings::from_config(&state.cfg.gc, None, false);
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.tick().await; // The first tick is immediate; start one interval after boot.
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::shutdown::stopped(&mut stop) => return,
        }
        match crate::gc::sweep_with(&state.files.meta, &state.files.blob, &settings).await {
            Ok(r) => tracing::info!(
                files = r.files_reaped,
                blobs = r.blobs_removed(),
                failures = r.failures,
                "gc sweep done"
            ),
            Err(e) => tracing::warn!(error = %e, "gc sweep failed"),
        }
    }
}
