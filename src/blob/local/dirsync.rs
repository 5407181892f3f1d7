//! Directory syncs shared by the writes that need them at the same moment (group commit).
//!
//! A finished blob is renamed into its tenant's directory, and the rename is durable once that
//! directory has been fsynced after it. One fsync covers every rename made before it started,
//! so writers that finish together need one sync between them, not one each: each registers
//! its directory, then waits for its turn; the first whose directory is not covered yet syncs
//! every directory registered so far, and the writers that covered returns at once. Turns are
//! taken in order (a fair mutex), so nobody waits for more than the sync running and the next.
//!
//! Cancellation-safe: a directory stays registered until a sync that started after its
//! registration finished, so a leader dropped mid-sync leaves the work to the next one. A sync
//! that fails fails every writer that needed it.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Default)]
pub(super) struct DirSyncs {
    state: Mutex<State>,
    turn: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Syncs started so far: a writer registering now needs sync number `started + 1`.
    started: u64,
    /// The last sync that finished: it covered every directory registered before it started,
    /// except those in `failed`.
    done: u64,
    /// Directories waiting for a sync, with the sync each needs.
    pending: HashMap<PathBuf, u64>,
    /// Directories whose last sync failed: that sync's number and its error.
    failed: HashMap<PathBuf, (u64, io::ErrorKind, String)>,
}

impl DirSyncs {
    /// Return once `dir` has been fsynced after this call began (by this call or another).
    pub(super) async fn sync(&self, dir: PathBuf) -> io::Result<()> {
        let need = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let need = s.started + 1;
            s.pending.insert(dir.clone(), need);
            need
        };
        let _turn = self.turn.lock().await;
        let (this, dirs) = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.done >= need {
                return s.outcome(&dir, need);
            }
            s.started += 1;
            let dirs: Vec<PathBuf> = s.pending.keys().cloned().collect();
            (s.started, dirs)
        };
        metrics::counter!("mtfu_dir_syncs_total").increment(dirs.len() as u64);
        let results = tokio::task::spawn_blocking(move || {
            dirs.into_iter()
                .map(|d| {
                    let r = std::fs::File::open(&d).and_then(|f| f.sync_all());
                    (d, r)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(io::Error::other)?;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (d, r) in results {
            match r {
                Ok(()) => s.failed.remove(&d),
                Err(e) => s.failed.insert(d.clone(), (this, e.kind(), e.to_string())),
            };
            // Registered before this sync started: covered (or failed with it).
            if s.pending.get(&d).is_some_and(|n| *n <= this) {
                s.pending.remove(&d);
            }
        }
        s.done = this;
        s.outcome(&dir, need)
    }
}

impl State {
    /// The outcome for a writer of `dir` that needed sync `need`, once `done >= need`.
    fn outcome(&self, dir: &PathBuf, need: u64) -> io::Result<()> {
        match self.failed.get(dir) {
            Some((at, kind, msg)) if *at >= need => Err(io::Error::new(
                *kind,
                format!("fsync {}: {msg}", dir.display()),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DirSyncs;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_syncs_and_each_is_covered() {
        let root = tempfile::tempdir().expect("tempdir");
        let syncs = Arc::new(DirSyncs::default());
        let mut tasks = Vec::new();
        for i in 0..64 {
            let dir = root.path().join(format!("d{}", i % 4));
            std::fs::create_dir_all(&dir).expect("dir");
            let syncs = syncs.clone();
            tasks.push(tokio::spawn(async move { syncs.sync(dir).await }));
        }
        for t in tasks {
            t.await.expect("task").expect("sync");
        }
        let s = syncs.state.lock().expect("state");
        assert!(s.pending.is_empty(), "{:?}", s.pending);
        assert_eq!(s.done, s.started);
        assert!(s.started <= 64);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_writers_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let syncs = DirSyncs::default();
        let missing = root.path().join("gone");
        assert!(syncs.sync(missing.clone()).await.is_err());
        // Another directory is not held back by it.
        syncs.sync(root.path().to_owned()).await.expect("sync");
        // Once it can be synced, its writers succeed again.
        std::fs::create_dir(&missing).expect("dir");
        syncs.sync(missing).await.expect("sync");
        let s = syncs.state.lock().expect("state");
        assert!(s.pending.is_empty() && s.failed.is_empty());
    }
}
