//! Local-disk blob store.
//!
//! Layout under the root: `objects/t/{tenant}/{uuid}` for finished blobs and `tmp/t_{tenant}_{uuid}`
//! for writes in progress. A write goes to the temporary file, is fsynced, renamed into place and
//! the directory fsynced, so a blob is either whole under its key or absent.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

mod resumable;

use super::{
    BlobBackend, BlobError, BlobResult, BlobWriter, ByteStream, ResumableWriter, ResumeState,
};
use crate::domain::BlobKey;
use crate::upload::Budget;

/// Read size for downloads: large enough for throughput, small enough to bound memory.
const READ_CHUNK: usize = 64 * 1024;

pub struct LocalStore {
    objects: PathBuf,
    tmp: PathBuf,
    budget: Arc<Budget>,
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::NotFound,
            _ => BlobError::Other(e.to_string()),
        }
    }
}

impl LocalStore {
    pub async fn open(root: &Path, budget: Arc<Budget>) -> BlobResult<LocalStore> {
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        for d in [&objects, &tmp] {
            tokio::fs::create_dir_all(d)
                .await
                .map_err(|e| BlobError::Unavailable(format!("create {}: {e}", d.display())))?;
        }
        Ok(LocalStore {
            objects,
            tmp,
            budget,
        })
    }

    fn object_path(&self, key: &BlobKey) -> PathBuf {
        // A BlobKey has the generated shape `t/{digits}/{hex}`: no `..`, no absolute part.
        self.objects.join(key.as_str())
    }

    fn tmp_path(&self, key: &BlobKey) -> PathBuf {
        self.tmp.join(key.as_str().replace('/', "_"))
    }
}

/// Remove a file, treating "already gone" as success.
fn remove_quietly(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

struct LocalWriter {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    budget: Arc<Budget>,
}

#[async_trait]
impl BlobWriter for LocalWriter {
    /// Holds budget for the chunk until the file has it.
    async fn write(&mut self, chunk: Bytes) -> BlobResult<()> {
        let Some(f) = self.file.as_mut() else {
            return Err(BlobError::Other("write after finish".into()));
        };
        let _held = self.budget.acquire(chunk.len()).await;
        Ok(f.write_all(&chunk).await?)
    }

    async fn finish(mut self: Box<Self>) -> BlobResult<()> {
        let mut f = self
            .file
            .take()
            .ok_or_else(|| BlobError::Other("finished twice".into()))?;
        f.flush().await?;
        f.sync_all().await?;
        drop(f);
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let dir = dest.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&tmp, &dest)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .await
        .map_err(|e| BlobError::Other(e.to_string()))??;
        // Renamed: nothing left for Drop to clean.
        self.tmp = PathBuf::new();
        Ok(())
    }

    async fn abort(mut self: Box<Self>) -> BlobResult<()> {
        self.file.take();
        let tmp = std::mem::take(&mut self.tmp);
        Ok(remove_quietly(&tmp)?)
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Dropped mid-write (the request future was cancelled): remove the partial file now.
        // If this fails, gc finds the temporary file through its upload intent.
        if !self.tmp.as_os_str().is_empty() {
            self.file.take();
            let _ = remove_quietly(&self.tmp);
        }
    }
}

/// `t_{digits}_{hex}` (a temporary file's name) back to its key.
fn key_from_tmp_name(name: &str) -> Option<BlobKey> {
    BlobKey::from_stored(&name.replacen('_', "/", 2))
}

#[async_trait]
impl BlobBackend for LocalStore {
    async fn create(&self, key: &BlobKey, _max_size: u64) -> BlobResult<Box<dyn BlobWriter>> {
        let tmp = self.tmp_path(key);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?;
        Ok(Box::new(LocalWriter {
            file: Some(file),
            tmp,
            dest: self.object_path(key),
            budget: self.budget.clone(),
        }))
    }

    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> BlobResult<ByteStream> {
        let mut f = tokio::fs::File::open(self.object_path(key)).await?;
        let stream = match range {
            Some(r) => {
                f.seek(SeekFrom::Start(r.start)).await?;
                let limited = f.take(r.end.saturating_sub(r.start));
                tokio_util::io::ReaderStream::with_capacity(limited, READ_CHUNK).boxed()
            }
            None => tokio_util::io::ReaderStream::with_capacity(f, READ_CHUNK).boxed(),
        };
        Ok(stream)
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        let (obj, tmp) = (self.object_path(key), self.tmp_path(key));
        tokio::task::spawn_blocking(move || {
            remove_quietly(&obj)?;
            remove_quietly(&tmp)
        })
        .await
        .map_err(|e| BlobError::Other(e.to_string()))??;
        Ok(())
    }

    async fn list_older_than(&self, before: SystemTime) -> BlobResult<Vec<BlobKey>> {
        let (objects, tmp) = (self.objects.clone(), self.tmp.clone());
        let keys = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<BlobKey>> {
            let old = |p: &Path| -> std::io::Result<bool> {
                Ok(std::fs::metadata(p)?.modified()? < before)
            };
            let mut keys = Vec::new();
            for e in std::fs::read_dir(&tmp)? {
                let e = e?;
                if let Some(k) = e.file_name().to_str().and_then(key_from_tmp_name)
                    && old(&e.path())?
                {
                    keys.push(k);
                }
            }
            let t = objects.join("t");
            if t.is_dir() {
                for tenant in std::fs::read_dir(&t)? {
                    let tenant = tenant?;
                    for e in std::fs::read_dir(tenant.path())? {
                        let e = e?;
                        let key = format!(
                            "t/{}/{}",
                            tenant.file_name().to_string_lossy(),
                            e.file_name().to_string_lossy()
                        );
                        if let Some(k) = BlobKey::from_stored(&key)
                            && old(&e.path())?
                        {
                            keys.push(k);
                        }
                    }
                }
            }
            Ok(keys)
        })
        .await
        .map_err(|e| BlobError::Other(e.to_string()))??;
        Ok(keys)
    }

    async fn ping(&self) -> BlobResult<()> {
        tokio::fs::metadata(&self.objects)
            .await
            .map_err(|e| BlobError::Unavailable(format!("{}: {e}", self.objects.display())))?;
        Ok(())
    }

    async fn presign_get(
        &self,
        _key: &BlobKey,
        _expires_in: Duration,
        _file_name: &str,
        _content_type: &str,
    ) -> BlobResult<Option<String>> {
        Ok(None)
    }

    async fn begin_resumable(&self, key: &BlobKey) -> BlobResult<ResumeState> {
        self.begin(key).await
    }

    async fn resume(
        &self,
        key: &BlobKey,
        offset: u64,
        _state: &ResumeState,
        _length: u64,
        room: u64,
    ) -> BlobResult<Box<dyn ResumableWriter>> {
        self.resume_at(key, offset, room).await
    }

    async fn complete_resumable(
        &self,
        key: &BlobKey,
        length: u64,
        _state: &ResumeState,
    ) -> BlobResult<()> {
        self.complete(key, length).await
    }

    async fn discard_resumable(&self, key: &BlobKey, _state: &ResumeState) -> BlobResult<()> {
        self.discard(key).await
    }

    async fn drop_obsolete(&self, _key: &BlobKey, _obsolete: &[String]) -> BlobResult<()> {
        Ok(())
    }
}
