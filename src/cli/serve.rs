//! `mtfu serve`: build the server, print where it listens, tell systemd it is ready, reload the
//! certificate on SIGHUP, and stop gracefully on SIGTERM/SIGINT.

use mtfu::app::{App, open_stores};
use mtfu::blob::Blob;
use mtfu::config::Config;
use mtfu::meta::Meta;

use super::logging::banner;
use super::tenant::init_data;

/// Run the server until SIGTERM/SIGINT; `demo`: create the demo tenants first.
pub async fn serve(cfg: Config, demo: bool) -> anyhow::Result<()> {
    if demo {
        let (meta, _) = open_stores(&cfg).await?;
        init_data(&cfg, &meta).await?;
    }
    let describe = (Meta::describe(&cfg), Blob::describe(&cfg));
    let app = App::build(cfg.clone()).await?;
    // Registered before the address is printed: from then on SIGHUP reloads, never kills.
    tokio::spawn(reload_tls_on_sighup(app.tls_reloader())?);
    banner(format!(
        "mtfu {} listening on https://{}",
        env!("CARGO_PKG_VERSION"),
        app.https_addr()
    ));
    if let Some(m) = app.metrics_addr() {
        banner(format!("metrics on http://{m}/metrics"));
    }
    if let Some(p) = app.plain_addr() {
        banner(format!(
            "plain HTTP (for a TLS-terminating proxy) on http://{p}"
        ));
    }
    banner(format!("metadata: {}; blobs: {}", describe.0, describe.1));
    if cfg.tls.acme.enabled() {
        banner(format!(
            "TLS: ACME certificate for {} from {} (kept in {})",
            cfg.tls.acme.domains.join(", "),
            cfg.tls.acme.directory_url,
            mtfu::tls::acme_dir(&cfg).display()
        ));
    } else if cfg.tls.cert_path.is_none() {
        banner(format!(
            "TLS: self-signed certificate {} (clients need -k / --cacert)",
            mtfu::tls::cert_paths(&cfg).0.display()
        ));
    }
    // systemd (Type=notify): ready now, watchdog pings, STOPPING=1 on the signal.
    mtfu::notify::ready(app.https_addr(), app.plain_addr());
    let _watchdog = mtfu::notify::spawn_watchdog();
    app.run_until_stopped(mtfu::notify::stopping_after(shutdown_signal()))
        .await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// SIGHUP reloads the TLS certificate and key from disk; open connections keep theirs, and a
/// bad new pair is logged and leaves the current one in place. The handler is installed when
/// this returns; the returned future serves it.
fn reload_tls_on_sighup(
    reloader: mtfu::tls::TlsReloader,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the TLS certificate");
            let _ = reloader.reload();
        }
    })
}
