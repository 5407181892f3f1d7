//! The SQLite store's connections: a few that write, and a pool that only reads.
//!
//! SQLite lets one writer at a time hold its lock; a write waits for it (the busy timeout) on
//! its connection. When reads and writes shared one pool, writes waiting for a lock held by
//! another process took every connection and listings queued behind them. Here writes queue
//! for the writer connections (each for at most the busy timeout, then 503), and reads run on
//! connections of their own (`query_only`), which WAL lets read the last commit while a write
//! is in progress: a read never waits for a write.
//!
//! Every call runs on tokio's blocking threads, never on the async workers, and holds its
//! permit until its closure has returned, so a cancelled request never lets more calls than
//! connections run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::Sqlite;
use crate::config::SqliteConfig;
use crate::meta::{MetaError, MetaResult};

/// Connections that write (as many as the shared pool had). SQLite lets one write at a time
/// whatever their number; with one connection, writes would be served strictly first come first
/// served, which makes the quota reservations of concurrent uploads near a tenant's quota grow
/// in lockstep until all of them are refused together (tests/it/quota.rs
/// `concurrent_uploads_cannot_overshoot_the_quota_together` shows it).
const WRITE_CONNECTIONS: usize = 4;

/// Connections of one kind, and the permits that bound their use.
struct Slot {
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    size: usize,
    read_only: bool,
    /// Calls waiting for a connection of this slot or running on one.
    queued: Arc<AtomicUsize>,
}

/// One call counted in [`Slot::queued`] until it is dropped.
pub(super) struct InQueue(Arc<AtomicUsize>);

impl InQueue {
    pub(super) fn enter(n: &Arc<AtomicUsize>) -> InQueue {
        n.fetch_add(1, Ordering::SeqCst);
        InQueue(n.clone())
    }
}

impl Drop for InQueue {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) struct Pool {
    path: PathBuf,
    busy: Duration,
    writer: Slot,
    readers: Slot,
}

/// Prepared statements kept per connection (rusqlite's default is 16).
const STATEMENT_CACHE: usize = 128;

fn connect(path: &Path, busy: Duration, read_only: bool) -> Result<Connection, MetaError> {
    let conn = Connection::open(path)
        .map_err(|e| MetaError::Unavailable(format!("open {}: {e}", path.display())))?;
    conn.busy_timeout(busy)?;
    // Every shared statement (`meta::sql`) is prepared through the cache: room for all of them,
    // so the hot ones (commits, intents, sessions) are never evicted by gc's or fsck's.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if read_only {
        // A read connection that tried to write would fail, never take the write lock.
        conn.pragma_update(None, "query_only", "ON")?;
    } else {
        // WAL (kept in the file, so readers use it too): readers never block the writer nor
        // wait for it. synchronous=FULL: a commit is on disk when it returns, so a file is
        // never listed and then lost to a power cut.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
    }
    Ok(conn)
}

impl Slot {
    fn new(conns: Vec<Connection>, read_only: bool) -> Slot {
        let size = conns.len();
        Slot {
            conns: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(size)),
            size,
            read_only,
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Pool {
    /// Run `f` on a writer connection.
    pub(super) async fn write<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> MetaResult<T> + Send + 'static,
    {
        self.run(&self.writer, f).await
    }

    /// Count one more write waiting for the store (a batched one, see `batch`).
    pub(super) fn enter_write_queue(&self) -> InQueue {
        InQueue::enter(&self.writer.queued)
    }

    async fn run<T, F>(&self, slot: &Slot, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> MetaResult<T> + Send + 'static,
    {
        let in_queue = InQueue::enter(&slot.queued);
        let permit = tokio::time::timeout(self.busy, slot.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                MetaError::Unavailable(
                    "the database is busy: no connection within the busy timeout".into(),
                )
            })?
            .map_err(|e| MetaError::Internal(e.to_string()))?;
        let (conns, path, busy, size, read_only) = (
            slot.conns.clone(),
            self.path.clone(),
            self.busy,
            slot.size,
            slot.read_only,
        );
        tokio::task::spawn_blocking(move || {
            let _held = (permit, in_queue);
            let taken = conns.lock().map(|mut v| v.pop()).unwrap_or(None);
            let mut conn = match taken {
                Some(c) => c,
                // A connection is lost only if a closure panicked; open a fresh one.
                None => connect(&path, busy, read_only)?,
            };
            let out = f(&mut conn);
            if let Ok(mut v) = conns.lock()
                && v.len() < size
            {
                v.push(conn);
            }
            out
        })
        .await
        .map_err(|e| MetaError::Internal(format!("metadata task failed: {e}")))?
    }
}

impl Sqlite {
    /// Open with the default settings.
    pub async fn open(path: &Path) -> MetaResult<Sqlite> {
        Self::open_with(path, &SqliteConfig::default()).await
    }

    /// Open (creating the file and its directory if needed) with `cfg`'s connections and busy
    /// timeout; `cfg.path` is not looked at.
    pub async fn open_with(path: &Path, cfg: &SqliteConfig) -> MetaResult<Sqlite> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| MetaError::Unavailable(format!("create {}: {e}", dir.display())))?;
        }
        let (p, busy, readers) = (
            path.to_owned(),
            Duration::from_secs(cfg.busy_timeout_secs),
            cfg.read_connections.max(1),
        );
        let (writer, readers) = tokio::task::spawn_blocking(move || {
            // The writers first: they put the file in WAL mode.
            let writer = (0..WRITE_CONNECTIONS)
                .map(|_| connect(&p, busy, false))
                .collect::<Result<Vec<_>, _>>()?;
            let readers = (0..readers)
                .map(|_| connect(&p, busy, true))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, MetaError>((writer, readers))
        })
        .await
        .map_err(|e| MetaError::Internal(e.to_string()))??;
        let pool = Arc::new(Pool {
            path: path.to_owned(),
            busy,
            writer: Slot::new(writer, false),
            readers: Slot::new(readers, true),
        });
        Ok(Sqlite {
            batch: super::batch::Batcher::start(pool.clone()),
            pool,
        })
    }

    /// Run `f` on a writer connection: for every call that writes (or must read what it is
    /// about to write in one transaction).
    pub(super) async fn with<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> MetaResult<T> + Send + 'static,
    {
        self.pool.run(&self.pool.writer, f).await
    }

    /// Run `f` in the next group commit ([`super::batch`]): in a transaction shared with the
    /// writes ready at the same moment, under a savepoint of its own (so `f` opens no
    /// transaction). Answered once that transaction committed.
    pub(super) async fn batched<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> MetaResult<T> + Send + 'static,
    {
        self.batch.write(f).await
    }

    /// Writes waiting for a writer connection or running on one.
    pub(super) fn writes_queued(&self) -> usize {
        self.pool.writer.queued.load(Ordering::SeqCst)
    }

    /// Run `f` on a read connection, which cannot write and never waits for a write.
    pub(super) async fn read<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> MetaResult<T> + Send + 'static,
    {
        self.pool.run(&self.pool.readers, f).await
    }
}

#[cfg(test)]
mod tests {
    use crate::meta::MetaBackend;

    #[tokio::test]
    async fn reads_answer_while_another_process_holds_the_write_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let cfg = crate::config::SqliteConfig {
            busy_timeout_secs: 1,
            ..Default::default()
        };
        let db = super::Sqlite::open_with(&path, &cfg).await.expect("open");
        db.migrate().await.expect("migrate");
        let other = rusqlite::Connection::open(&path).expect("other");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        // Reads answer at once, writes give up with Unavailable (503), never Internal.
        assert!(db.list_tenants().await.expect("read").is_empty());
        db.ping().await.expect("ping");
        let name = crate::domain::TenantName::parse("john1").expect("name");
        let err = db.create_tenant(&name, "x").await.expect_err("locked");
        assert!(
            matches!(err, crate::meta::MetaError::Unavailable(_)),
            "{err:?}"
        );
        other.execute_batch("COMMIT").expect("unlock");
        db.create_tenant(&name, "x").await.expect("unlocked");
        assert_eq!(db.list_tenants().await.expect("read").len(), 1);
    }

    #[tokio::test]
    async fn read_connections_cannot_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = super::Sqlite::open(&dir.path().join("m.db"))
            .await
            .expect("open");
        db.migrate().await.expect("migrate");
        let r = db
            .read(|c| Ok(c.execute_batch("CREATE TABLE x (y INTEGER)")?))
            .await;
        assert!(r.is_err());
    }
}
