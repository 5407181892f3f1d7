//! The local store's writer: the body's chunks (a TLS record's worth each, about 16 KiB) are
//! gathered into runs of [`RUN`] bytes, and each run goes to the file in one vectored write on a
//! blocking thread while the next run gathers (one run in flight). One trip to a blocking thread
//! per chunk cost more CPU than the copy it made; per run it is a few per 100 MiB. The budget is
//! held for every chunk from before it is accepted until its run is in the file, so an upload
//! holds at most two runs of it; and an upload never waits for the budget while it holds any.
//! The blob's SHA-256 is fed each run on the same blocking thread, just before the run is
//! written, so that one upload's hashing runs beside its TLS and form parsing instead of after
//! them (hashing each run on a second blocking thread, beside its write, made 16 concurrent
//! uploads take 1.4x as long: two threads to schedule per run, among busy clients). Once a run
//! is in the page cache its writeback to the disk is started at once (see [`start_writeback`]),
//! so that the disk writes while the rest of the upload arrives and the final sync waits only
//! for the last runs. Finishing syncs the file, renames it into place and syncs the directory
//! (shared with the writes finishing meanwhile, see [`super::dirsync`]).

use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::JoinHandle;

use super::{create_dir_durably, dirsync, remove_quietly};
use crate::blob::{BlobError, BlobResult, BlobWriter, SharedHasher};
use crate::budget::{Budget, BudgetPermit};

/// Bytes gathered before they are written: enough that the trips to a blocking thread cost
/// nothing next to the bytes, small enough to be a sliver of the budget.
const RUN: usize = 1024 * 1024;

/// The most budget one upload waits for at once.
const PIECE: usize = 64 * 1024;

pub(super) struct LocalWriter {
    file: Option<Arc<std::fs::File>>,
    /// The run gathering, and the budget held for it.
    run: Vec<Bytes>,
    run_bytes: usize,
    /// Bytes already handed to runs: where the gathering run starts in the file.
    offset: u64,
    held: Vec<BudgetPermit>,
    /// The run being written (it owns its budget, given back when it is in the file).
    in_flight: Option<JoinHandle<std::io::Result<()>>>,
    tmp: PathBuf,
    dest: PathBuf,
    budget: Arc<Budget>,
    dir_syncs: Arc<dirsync::DirSyncs>,
    /// The blob's SHA-256, fed each run on the thread that writes it (runs go one at a time, in
    /// order), if the caller handed it over.
    hasher: Option<SharedHasher>,
}

impl LocalWriter {
    pub(super) fn new(
        file: std::fs::File,
        tmp: PathBuf,
        dest: PathBuf,
        budget: Arc<Budget>,
        dir_syncs: Arc<dirsync::DirSyncs>,
    ) -> Self {
        Self {
            file: Some(Arc::new(file)),
            run: Vec::new(),
            run_bytes: 0,
            offset: 0,
            held: Vec::new(),
            in_flight: None,
            tmp,
            dest,
            budget,
            dir_syncs,
            hasher: None,
        }
    }

    /// Wait for the run in flight, if any, to be in the file.
    async fn settle(&mut self) -> BlobResult<()> {
        if let Some(w) = self.in_flight.take() {
            w.await.map_err(|e| BlobError::Other(e.to_string()))??;
        }
        Ok(())
    }

    /// Start writing the gathered run (after the one in flight is in the file).
    async fn flush_run(&mut self) -> BlobResult<()> {
        self.settle().await?;
        if self.run.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .clone()
            .ok_or_else(|| BlobError::Other("write after finish".into()))?;
        let run = std::mem::take(&mut self.run);
        let held = std::mem::take(&mut self.held);
        let hasher = self.hasher.clone();
        let (start, len) = (self.offset, self.run_bytes as u64);
        self.offset += len;
        self.run_bytes = 0;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            hash_run(hasher.as_ref(), &run);
            let result = write_run(&file, &run);
            drop(held);
            if result.is_ok() {
                start_writeback(&file, start, len);
            }
            result
        }));
        Ok(())
    }
}

/// Feed `run` to the blob's hash, if this writer keeps it.
fn hash_run(hasher: Option<&SharedHasher>, run: &[Bytes]) {
    if let Some(h) = hasher {
        let mut h = h.lock().unwrap_or_else(|e| e.into_inner());
        for b in run {
            sha2::Digest::update(&mut *h, b);
        }
    }
}

/// All of `run` to the end of `file`, in as few `writev` calls as the kernel allows.
fn write_run(mut file: &std::fs::File, run: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = run.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts writing `len` bytes of `file` at `offset` from the page cache to the disk, without
/// waiting for them. Left to itself the kernel starts only once a tenth of the machine's memory
/// is dirty (or after 30 s), so on a large machine a 1 GiB upload reached the final `fsync`
/// with all of it still to write, and the disk sat idle while it arrived: the upload took the
/// time to receive it plus the time to write it. Started run by run, the disk writes while the
/// upload arrives (and the page cache holds less dirty data at once). Linux's
/// `posix_fadvise(POSIX_FADV_DONTNEED)` starts the writeback of a range's dirty pages
/// (`WB_SYNC_NONE`, as `sync_file_range(SYNC_FILE_RANGE_WRITE)` does, which has no safe
/// binding) and drops only the range's clean pages, which a run just written has none of.
/// Advisory: the final `fsync` is what makes the file durable, so a failure here is ignored.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

#[async_trait]
impl BlobWriter for LocalWriter {
    /// Holds budget for the chunk until the file has it.
    async fn write(&mut self, mut chunk: Bytes) -> BlobResult<()> {
        if self.file.is_none() {
            return Err(BlobError::Other("write after finish".into()));
        }
        // A chunk may be large (what the parser had buffered): budget is taken a piece at a
        // time, so an upload never waits for more of it than a piece.
        while !chunk.is_empty() {
            let piece = chunk.split_to(chunk.len().min(PIECE));
            let permit = match self.budget.try_acquire(piece.len()) {
                Some(p) => p,
                None => {
                    // The budget is spent: write out what this upload gathered and wait for it
                    // to be in the file (its budget back) before waiting, holding nothing
                    // meanwhile. Uploads waiting with runs half gathered could otherwise hold
                    // all of it between them, for ever.
                    self.flush_run().await?;
                    self.settle().await?;
                    self.budget.acquire(piece.len()).await
                }
            };
            self.held.push(permit);
            self.run_bytes += piece.len();
            self.run.push(piece);
            if self.run_bytes >= RUN {
                self.flush_run().await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> BlobResult<()> {
        self.settle().await?;
        let f = self
            .file
            .take()
            .ok_or_else(|| BlobError::Other("finished twice".into()))?;
        let (run, held) = (
            std::mem::take(&mut self.run),
            std::mem::take(&mut self.held),
        );
        let (tmp, dest, hasher) = (self.tmp.clone(), self.dest.clone(), self.hasher.take());
        // The last run, the sync and the rename, in one trip to a blocking thread (a small
        // file makes no other).
        let dir = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
            hash_run(hasher.as_ref(), &run);
            write_run(&f, &run)?;
            drop(held);
            f.sync_all()?;
            drop(f);
            let dir = dest.parent().unwrap_or(Path::new(".")).to_owned();
            create_dir_durably(&dir)?;
            std::fs::rename(&tmp, &dest)?;
            Ok(dir)
        })
        .await
        .map_err(|e| BlobError::Other(e.to_string()))??;
        // Renamed: nothing left for Drop to clean (gc's orphan sweep finds a blob whose
        // directory sync failed, through its intent).
        self.tmp = PathBuf::new();
        // Durable once its directory is synced: shared with the writes finishing meanwhile.
        self.dir_syncs.sync(dir).await?;
        Ok(())
    }

    fn hash_along(&mut self, hasher: &SharedHasher) -> bool {
        self.hasher = Some(hasher.clone());
        true
    }

    async fn abort(mut self: Box<Self>) -> BlobResult<()> {
        // The run in flight ends before the file goes (its error does not matter now).
        let _ = self.settle().await;
        self.file.take();
        let tmp = std::mem::take(&mut self.tmp);
        Ok(remove_quietly(&tmp)?)
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Dropped mid-write (the request future was cancelled): remove the partial file now
        // (a run still being written goes on into the unlinked file, harmlessly). If this
        // fails, gc finds the temporary file through its upload intent.
        if !self.tmp.as_os_str().is_empty() {
            self.file.take();
            let _ = remove_quietly(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `filefrag -v`'s extents of `path` that are still delayed allocation: data in the page
    /// cache whose writeback has not started.
    fn delayed_extents(path: &Path) -> Vec<String> {
        // Debian keeps it in /usr/sbin, which a user's PATH may not name.
        let sbin = Path::new("/usr/sbin/filefrag");
        let tool = if sbin.exists() {
            sbin
        } else {
            Path::new("filefrag")
        };
        let out = std::process::Command::new(tool)
            .arg("-v")
            .arg(path)
            .output()
            .expect("filefrag");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("delalloc"))
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    #[cfg_attr(
        mtfu_no_delalloc,
        ignore = "needs filefrag and delayed allocation (ext4, XFS) in the temporary directory"
    )]
    async fn every_written_run_is_already_on_its_way_to_the_disk() {
        let root = tempfile::tempdir().expect("tempdir");
        let (tmp, dest) = (root.path().join("t.part"), root.path().join("t"));
        let file = std::fs::File::create(&tmp).expect("create");
        let budget = Budget::new(64 << 20);
        let mut w = LocalWriter::new(file, tmp.clone(), dest, budget, Default::default());
        // Two full runs and one byte of a third: the two runs are written, not synced.
        for _ in 0..2 {
            w.write(Bytes::from(vec![1u8; RUN])).await.expect("write");
        }
        w.write(Bytes::from_static(b"x")).await.expect("write");
        w.settle().await.expect("settle");
        assert_eq!(std::fs::metadata(&tmp).expect("stat").len(), 2 * RUN as u64);
        // Left to the kernel these would stay delayed for up to 30 s (or until a tenth of
        // memory is dirty); started run by run, their blocks are allocated already.
        assert_eq!(delayed_extents(&tmp), Vec::<String>::new());
        // A plain write beside them is delayed: the check can see the difference.
        let plain = root.path().join("plain");
        std::fs::write(&plain, vec![1u8; RUN]).expect("write");
        assert_ne!(delayed_extents(&plain), Vec::<String>::new());
        Box::new(w).finish().await.expect("finish");
    }
}
