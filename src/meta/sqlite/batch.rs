//! Group commit: the SQLite writes of an upload's life (its intent, its commit, its clean-up)
//! that are ready at the same moment share one transaction, and so one WAL sync.
//!
//! With `synchronous=FULL` every transaction waits for its own fsync of the WAL; concurrent
//! uploads queued for SQLite's single writer one sync each. Here a committer task takes every
//! write waiting in its queue (up to [`MAX_BATCH`]) and runs them on one writer connection in
//! one `BEGIN IMMEDIATE` transaction, each under a savepoint of its own: a write that fails (an
//! upload whose intent is gone, a constraint) is rolled back alone and reports its own error,
//! the others go on. Every caller is answered only after the batch's `COMMIT` returned, so an
//! answer still means "durable". Writes that arrive while a batch commits wait for the next
//! batch: the busier the server, the more writes share a sync, and an idle server commits a lone
//! write at once (nothing waits for company).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::pool::{InQueue, Pool};
use crate::meta::{MetaError, MetaResult};

/// Most writes committed in one transaction: more than the uploads a busy server has ready at
/// once (one per connection), few enough that one batch holds SQLite's write lock for
/// milliseconds, not seconds.
pub(super) const MAX_BATCH: usize = 256;

/// One write waiting for, or running in, a batch.
trait Job: Send {
    /// Run the write on `c`, inside the batch's transaction, under a savepoint of its own:
    /// released when it succeeds, rolled back when it fails. Returns its error, if it failed.
    fn run(&mut self, c: &Connection) -> Option<MetaError>;
    /// Answer the caller, given the batch's outcome (its `COMMIT`).
    fn answer(self: Box<Self>, batch: &MetaResult<()>);
}

struct Write<T, F> {
    f: Option<F>,
    out: Option<MetaResult<T>>,
    tx: oneshot::Sender<MetaResult<T>>,
    /// Counted as a write waiting for the store until answered.
    _queued: InQueue,
}

impl<T, F> Job for Write<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> MetaResult<T> + Send + 'static,
{
    fn run(&mut self, c: &Connection) -> Option<MetaError> {
        let f = self.f.take()?;
        let out = match c.execute_batch("SAVEPOINT w") {
            Err(e) => Err(MetaError::from(e)),
            Ok(()) => match f(c) {
                Ok(v) => c.execute_batch("RELEASE w").map(|()| v).map_err(Into::into),
                Err(e) => {
                    // An error that rolled the whole transaction back (SQLite does that on a
                    // full disk, say) leaves no savepoint: the batch sees it and stops.
                    if !c.is_autocommit() {
                        let _ = c.execute_batch("ROLLBACK TO w; RELEASE w");
                    }
                    Err(e)
                }
            },
        };
        let failed = out.as_ref().err().cloned();
        self.out = Some(out);
        failed
    }

    fn answer(self: Box<Self>, batch: &MetaResult<()>) {
        let Write { out, tx, .. } = *self;
        let out = match (out, batch) {
            // Its own failure: nothing of it was kept, whatever became of the others.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            // Done, but the batch did not commit; or never run.
            (_, Err(e)) => Err(e.clone()),
            (None, Ok(())) => Err(MetaError::Internal("a batched write was not run".into())),
        };
        let _ = tx.send(out);
    }
}

/// The queue of the committer task; cloned by nothing, dropped with the store (which ends the
/// task).
pub(super) struct Batcher {
    queue: mpsc::UnboundedSender<Box<dyn Job>>,
    pool: Arc<Pool>,
    stats: Arc<Stats>,
}

/// Batches committed and the writes in them, for tests and the benchmark's report.
#[derive(Default)]
pub(super) struct Stats {
    batches: AtomicU64,
    writes: AtomicU64,
    largest: AtomicU64,
}

impl Batcher {
    /// Start the committer task on the current runtime.
    pub(super) fn start(pool: Arc<Pool>) -> Batcher {
        let (queue, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        tokio::spawn(committer(pool.clone(), rx, stats.clone()));
        Batcher { queue, pool, stats }
    }

    /// Run `f` in the next batch; its answer once that batch committed (or failed).
    pub(super) async fn write<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> MetaResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Write {
            f: Some(f),
            out: None,
            tx,
            _queued: self.pool.enter_write_queue(),
        };
        self.queue
            .send(Box::new(job))
            .map_err(|_| MetaError::Internal("the SQLite committer has stopped".into()))?;
        // Dropped unanswered: its batch never got a connection (busy past the busy timeout).
        rx.await.unwrap_or_else(|_| {
            Err(MetaError::Unavailable(
                "the database is busy: no connection within the busy timeout".into(),
            ))
        })
    }

    /// Batches committed so far, the writes in them, and the largest batch.
    pub(super) fn stats(&self) -> (u64, u64, u64) {
        (
            self.stats.batches.load(Ordering::Relaxed),
            self.stats.writes.load(Ordering::Relaxed),
            self.stats.largest.load(Ordering::Relaxed),
        )
    }
}

async fn committer(
    pool: Arc<Pool>,
    mut rx: mpsc::UnboundedReceiver<Box<dyn Job>>,
    stats: Arc<Stats>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let n = jobs.len() as u64;
        // An error here (no connection in time) drops the jobs: each caller hears "busy".
        let done = pool.write(move |c| Ok(commit_batch(c, jobs))).await;
        if matches!(done, Ok(true)) {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(n, Ordering::Relaxed);
            stats.largest.fetch_max(n, Ordering::Relaxed);
            metrics::histogram!("mtfu_sqlite_batch_writes").record(n as f64);
        }
    }
}

/// Run `jobs` in one transaction and answer each; whether the batch committed.
fn commit_batch(c: &mut Connection, mut jobs: Vec<Box<dyn Job>>) -> bool {
    let outcome = match c.execute_batch("BEGIN IMMEDIATE") {
        Err(e) => Err(MetaError::from(e)),
        Ok(()) => {
            let mut lost = None;
            for job in jobs.iter_mut() {
                let failed = job.run(c);
                if c.is_autocommit() {
                    // The transaction is gone (rolled back by the failure): nothing of the
                    // batch is kept, and the writes not run yet must not run outside it.
                    lost = Some(failed.unwrap_or_else(|| {
                        MetaError::Internal("a batched write ended its transaction".into())
                    }));
                    break;
                }
            }
            match lost {
                Some(e) => Err(e),
                None => c.execute_batch("COMMIT").map_err(MetaError::from),
            }
        }
    };
    if outcome.is_err() && !c.is_autocommit() {
        let _ = c.execute_batch("ROLLBACK");
    }
    let committed = outcome.is_ok();
    for job in jobs {
        job.answer(&outcome);
    }
    committed
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use rusqlite::Connection;
    use tokio::sync::oneshot;

    use super::super::pool::InQueue;
    use super::{Job, Write, commit_batch};
    use crate::meta::{MetaError, MetaResult};

    fn job<T, F>(f: F) -> (Box<dyn Job>, oneshot::Receiver<MetaResult<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> MetaResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let w = Write {
            f: Some(f),
            out: None,
            tx,
            _queued: InQueue::enter(&Arc::new(AtomicUsize::new(0))),
        };
        (Box::new(w), rx)
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> MetaResult<()> + Send + 'static {
        move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(())
        }
    }

    fn values(c: &Connection) -> Vec<i64> {
        let mut st = c.prepare("SELECT v FROM t ORDER BY v").expect("prepare");
        st.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[tokio::test]
    async fn a_failing_write_is_rolled_back_alone_and_the_others_commit() {
        let mut c = Connection::open_in_memory().expect("open");
        c.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .expect("table");
        let (a, ra) = job(insert(1));
        // Writes, then fails: what it wrote goes, and only that.
        let (b, rb) = job(|c: &Connection| -> MetaResult<()> {
            c.execute("INSERT INTO t (v) VALUES (2)", [])?;
            Err(MetaError::Gone("k".into()))
        });
        // A constraint violation (1 again) fails only this one.
        let (d, rd) = job(insert(1));
        let (e, re) = job(insert(3));
        assert!(commit_batch(&mut c, vec![a, b, d, e]));
        assert!(ra.await.expect("answer").is_ok());
        assert!(matches!(rb.await.expect("answer"), Err(MetaError::Gone(_))));
        assert!(matches!(
            rd.await.expect("answer"),
            Err(MetaError::Conflict(_))
        ));
        assert!(re.await.expect("answer").is_ok());
        assert_eq!(values(&c), vec![1, 3]);
        assert!(c.is_autocommit(), "the batch's transaction is closed");
    }

    #[tokio::test]
    async fn a_batch_that_cannot_begin_fails_every_write_and_runs_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.db");
        let mut c = Connection::open(&path).expect("open");
        c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .expect("table");
        c.busy_timeout(std::time::Duration::from_millis(50))
            .expect("busy timeout");
        let other = Connection::open(&path).expect("other");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let (a, ra) = job(insert(1));
        let (b, rb) = job(insert(2));
        assert!(!commit_batch(&mut c, vec![a, b]));
        for r in [ra.await, rb.await] {
            assert!(matches!(r.expect("answer"), Err(MetaError::Unavailable(_))));
        }
        other.execute_batch("COMMIT").expect("unlock");
        assert!(values(&c).is_empty());
    }
}
