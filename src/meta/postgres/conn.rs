//! Connections to PostgreSQL: the pool and its time bounds, TLS, where the store points
//! (`describe`, `with_dbname`), and how the driver's and the pool's errors become `MetaError`s.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures_util::future::BoxFuture;
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

use super::Postgres;
use crate::config::PostgresConfig;
use crate::meta::{MetaError, MetaResult};

impl From<tokio_postgres::Error> for MetaError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(code) = e.code().map(|c| c.code()) {
            let text = match e.as_db_error() {
                Some(db) => format!("{} ({code})", db.message()),
                None => format!("{e} ({code})"),
            };
            return match code {
                // unique_violation
                "23505" => MetaError::Conflict(text),
                // connection_exception, admin/crash shutdown, cannot_connect_now,
                // idle_session_timeout, query_canceled (statement_timeout),
                // insufficient_resources (too many connections), serialization failure and
                // deadlock: the server is there but cannot serve this now.
                c if c.starts_with("08")
                    || c.starts_with("57P")
                    || c.starts_with("53")
                    || c == "57014"
                    || c == "40001"
                    || c == "40P01" =>
                {
                    MetaError::Unavailable(text)
                }
                _ => MetaError::Internal(text),
            };
        }
        let text = error_chain(&e);
        // tokio-postgres keeps its error kinds private; these are its wordings for a connection
        // that could not be made, broke, or timed out.
        let transient = e.is_closed()
            || io_cause(&e)
            || [
                "error connecting",
                "error communicating",
                "error performing TLS",
                "timeout",
                "connection closed",
            ]
            .iter()
            .any(|p| text.starts_with(p));
        if transient {
            MetaError::Unavailable(text)
        } else {
            MetaError::Internal(text)
        }
    }
}

/// `e` and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn io_cause(e: &tokio_postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn pool_error(e: PoolError) -> MetaError {
    match e {
        PoolError::Timeout(kind) => MetaError::Unavailable(format!(
            "no database connection in time ({kind:?} timed out)"
        )),
        // Only opening a connection reports here (a failed recycle just drops the connection).
        // Whatever the reason (refused, reset, a database not accepting connections, even bad
        // credentials), the store cannot be reached now.
        PoolError::Backend(e) => {
            let (MetaError::Unavailable(m)
            | MetaError::Conflict(m)
            | MetaError::Internal(m)
            | MetaError::Gone(m)) = MetaError::from(e);
            MetaError::Unavailable(format!("cannot connect: {m}"))
        }
        PoolError::PostCreateHook(e) => MetaError::Unavailable(e.to_string()),
        PoolError::Closed => MetaError::Unavailable("connection pool closed".into()),
        PoolError::NoRuntimeSpecified => MetaError::Internal("pool without a runtime".into()),
    }
}

/// A TLS connector verifying the server against the system's roots and Mozilla's, with the
/// ring provider named here (never a process-wide default).
fn tls_connector() -> MetaResult<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MetaError::Internal(format!("TLS to PostgreSQL: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Where `cfg` points, without the password: `user@host:port/dbname`.
pub fn describe(cfg: &PostgresConfig) -> String {
    let Some(Ok(pg)) = cfg.url.as_deref().map(str::parse::<tokio_postgres::Config>) else {
        return "no valid url".into();
    };
    let ports = pg.get_ports();
    let hosts = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let user = pg.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = pg.get_dbname().unwrap_or_default();
    let tls = if cfg.tls { ", tls" } else { "" };
    format!("{user}{hosts}/{db}{tls}")
}

impl Postgres {
    /// Build the pool; no connection is made until the first call.
    pub fn open(cfg: &PostgresConfig) -> MetaResult<Postgres> {
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| MetaError::Internal("metadata.postgres.url is not set".into()))?;
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| MetaError::Internal(format!("metadata.postgres.url: {e}")))?;
        let connect_timeout = Duration::from_secs(cfg.connect_timeout_secs.max(1));
        let statement_timeout = Duration::from_secs(cfg.statement_timeout_secs.max(1));
        pg.connect_timeout(connect_timeout);
        // Set at connection start-up, so every connection of the pool has it, and appended so
        // it wins over an `options` of the URL.
        let timeout = format!("-c statement_timeout={}", statement_timeout.as_millis());
        let options = match pg.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} {timeout}"),
            _ => timeout,
        };
        pg.options(options);
        if pg.get_application_name().is_none() {
            pg.application_name("mtfu");
        }
        // `tls` decides, not the URL's `sslmode`: `prefer` would fall back to plain text.
        pg.ssl_mode(if cfg.tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        // Verified: a pooled connection answers a round trip before it is handed out; one the
        // server closed (restart, pg_terminate_backend) is dropped and replaced instead. With
        // `verify_after_idle_ms`, only a connection not handed out for that long is (the hook
        // below); the others are only checked for a connection the driver saw closed.
        let verify_after = Duration::from_millis(cfg.verify_after_idle_ms);
        let manager_config = ManagerConfig {
            recycling_method: if verify_after.is_zero() {
                RecyclingMethod::Verified
            } else {
                RecyclingMethod::Fast
            },
        };
        let manager = if cfg.tls {
            Manager::from_config(pg, tls_connector()?, manager_config)
        } else {
            Manager::from_config(pg, NoTls, manager_config)
        };
        let mut pool = Pool::builder(manager);
        if !verify_after.is_zero() {
            pool = pool.pre_recycle(verify_if_idle(verify_after, connect_timeout));
        }
        let pool = pool
            .max_size(cfg.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(connect_timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| MetaError::Internal(format!("PostgreSQL pool: {e}")))?;
        Ok(Postgres {
            pool,
            get_timeout: connect_timeout * 2,
            call_timeout: statement_timeout + connect_timeout,
        })
    }

    /// A pooled connection, within `get_timeout` whatever the pool meets on the way (several
    /// dead connections to recycle, then a slow connect).
    pub(super) async fn client(&self) -> MetaResult<Object> {
        get_client(&self.pool, self.get_timeout).await
    }

    /// Run `f` on a pooled connection, within `call_timeout`, in a task of its own: like the
    /// SQLite store's blocking threads, a call runs to its end even when the request that made
    /// it is dropped (a client hanging up must not leave an intent its cleanup meant to drop).
    /// A connection whose call timed out is in an unknown state (a statement may still be
    /// running): it is closed, not pooled.
    pub(super) async fn with<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Object) -> BoxFuture<'c, MetaResult<T>> + Send + 'static,
    {
        let (pool, get_timeout, call_timeout) =
            (self.pool.clone(), self.get_timeout, self.call_timeout);
        tokio::spawn(async move {
            let mut client = get_client(&pool, get_timeout).await?;
            let out = tokio::time::timeout(call_timeout, f(&mut client)).await;
            match out {
                Ok(r) => r,
                Err(_) => {
                    drop(Object::take(client));
                    Err(MetaError::Unavailable(
                        "the database did not answer in time".into(),
                    ))
                }
            }
        })
        .await
        .map_err(|e| MetaError::Internal(format!("metadata task failed: {e}")))?
    }
}

/// A pool hook: a connection last handed out `after` ago or longer answers an empty query
/// (within `timeout`) or is dropped, and the pool takes or opens another.
fn verify_if_idle(after: Duration, timeout: Duration) -> Hook {
    Hook::async_fn(move |client, metrics| {
        Box::pin(async move {
            if metrics.last_used() < after {
                return Ok(());
            }
            match tokio::time::timeout(timeout, client.simple_query("")).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(HookError::Backend(e)),
                Err(_) => Err(HookError::message("the connection check timed out")),
            }
        })
    })
}

async fn get_client(pool: &Pool, timeout: Duration) -> MetaResult<Object> {
    match tokio::time::timeout(timeout, pool.get()).await {
        Ok(r) => r.map_err(pool_error),
        Err(_) => Err(MetaError::Unavailable(
            "no database connection in time".into(),
        )),
    }
}

/// `url` with its database replaced by `dbname`, for both URL and `key=value` forms (tests and
/// benchmarks create a database per run).
pub fn with_dbname(url: &str, dbname: &str) -> String {
    let Some((scheme, rest)) = url
        .split_once("://")
        .filter(|(s, _)| *s == "postgres" || *s == "postgresql")
    else {
        return format!("{url} dbname={dbname}");
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(a, _)| a);
    match query {
        Some(q) => format!("{scheme}://{authority}/{dbname}?{q}"),
        None => format!("{scheme}://{authority}/{dbname}"),
    }
}
