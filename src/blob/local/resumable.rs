//! Resumable blobs on local disk: the temporary file of the blob key (`tmp/t_{tenant}_{uuid}`,
//! the same one a plain write uses, so `delete` and gc's orphan sweep know it) grows session by
//! session and is renamed into place when complete.
//!
//! A session first cuts the file back to the recorded offset (bytes of a session that died or was
//! refused are dropped), appends, and makes its bytes durable with `fdatasync` at every
//! [`CHECKPOINT`] boundary and when it pauses. The state is empty: the file is the state.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{LocalStore, remove_quietly};
use crate::blob::{BlobError, BlobResult, Checkpoint, ResumableWriter, ResumeState};
use crate::budget::Budget;
use crate::domain::BlobKey;

/// A long session fsyncs and reports a checkpoint every this many bytes of the blob, so a crash
/// loses at most this much of a long `PATCH` (64 MiB: a fraction of a second of disk bandwidth,
/// and few enough fsyncs not to slow the upload).
const CHECKPOINT: u64 = 64 * 1024 * 1024;

pub(super) struct LocalResumable {
    file: tokio::fs::File,
    pos: u64,
    synced: u64,
    room: u64,
    budget: Arc<Budget>,
}

impl LocalStore {
    pub(super) async fn begin(&self, key: &BlobKey) -> BlobResult<ResumeState> {
        let tmp = self.tmp_path(key);
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?;
        f.sync_all().await?;
        Ok(ResumeState::default())
    }

    pub(super) async fn resume_at(
        &self,
        key: &BlobKey,
        offset: u64,
        room: u64,
    ) -> BlobResult<Box<dyn ResumableWriter>> {
        let tmp = self.tmp_path(key);
        let mut file = tokio::fs::OpenOptions::new().write(true).open(&tmp).await?;
        let len = file.metadata().await?.len();
        if len < offset {
            return Err(BlobError::Other(format!(
                "{key}: temporary file has {len} bytes, {offset} recorded"
            )));
        }
        if len > offset {
            file.set_len(offset).await?;
        }
        file.seek(SeekFrom::Start(offset)).await?;
        Ok(Box::new(LocalResumable {
            file,
            pos: offset,
            synced: offset,
            room,
            budget: self.budget.clone(),
        }))
    }

    pub(super) async fn complete(&self, key: &BlobKey, length: u64) -> BlobResult<()> {
        let (tmp, dest) = (self.tmp_path(key), self.object_path(key));
        tokio::task::spawn_blocking(move || finish_file(&tmp, &dest, length))
            .await
            .map_err(|e| BlobError::Other(e.to_string()))?
    }

    pub(super) async fn discard(&self, key: &BlobKey) -> BlobResult<()> {
        let tmp = self.tmp_path(key);
        tokio::task::spawn_blocking(move || remove_quietly(&tmp))
            .await
            .map_err(|e| BlobError::Other(e.to_string()))??;
        Ok(())
    }
}

/// fsync the temporary file, rename it into place, fsync the directory. Already done (the
/// temporary file gone, the blob there with its length): fine.
fn finish_file(tmp: &Path, dest: &PathBuf, length: u64) -> BlobResult<()> {
    match std::fs::OpenOptions::new().write(true).open(tmp) {
        Ok(f) => {
            let len = f.metadata()?.len();
            if len < length {
                return Err(BlobError::Other(format!(
                    "temporary file has {len} bytes, {length} expected"
                )));
            }
            if len > length {
                f.set_len(length)?;
            }
            f.sync_all()?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match std::fs::metadata(dest) {
                Ok(m) if m.len() == length => Ok(()),
                _ => Err(BlobError::NotFound),
            };
        }
        Err(e) => return Err(e.into()),
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    std::fs::rename(tmp, dest)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

impl LocalResumable {
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            offset: self.pos,
            state: ResumeState::default(),
            obsolete: Vec::new(),
        }
    }
}

#[async_trait]
impl ResumableWriter for LocalResumable {
    fn to_next_boundary(&self) -> u64 {
        CHECKPOINT - self.pos % CHECKPOINT
    }

    async fn write(&mut self, chunk: Bytes) -> BlobResult<()> {
        let n = chunk.len() as u64;
        if n > self.room {
            return Err(BlobError::Other(
                "more bytes than the session's bound".into(),
            ));
        }
        self.room -= n;
        // Held until the file has the chunk.
        let _held = self.budget.acquire(chunk.len()).await;
        self.file.write_all(&chunk).await?;
        self.pos += n;
        Ok(())
    }

    async fn durable(&mut self) -> BlobResult<Option<Checkpoint>> {
        if self.pos > self.synced && self.pos.is_multiple_of(CHECKPOINT) {
            self.file.flush().await?;
            self.file.sync_data().await?;
            self.synced = self.pos;
            return Ok(Some(self.checkpoint()));
        }
        Ok(None)
    }

    async fn pause(mut self: Box<Self>) -> BlobResult<Checkpoint> {
        self.file.flush().await?;
        self.file.sync_data().await?;
        self.synced = self.pos;
        Ok(self.checkpoint())
    }

    async fn abort(self: Box<Self>) {
        // Back to the last checkpoint handed out (best effort: the next session cuts the file
        // back to the recorded offset anyway).
        if let Err(e) = self.file.set_len(self.synced).await {
            tracing::debug!(error = %e, "could not cut a resumable blob back");
        }
    }
}
