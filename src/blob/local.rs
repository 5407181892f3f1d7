//! Local-disk blob store.
//!
//! Layout under the root: `objects/t/{tenant}/{uuid}` for finished blobs and `tmp/t_{tenant}_{uuid}`
//! for writes in progress. A write goes to the temporary file ([`writer`]), is fsynced, renamed
//! into place and the directory fsynced, so a blob is either whole under its key or absent. Writes that finish
//! together share their directory's fsync ([`dirsync`]). gc moves orphans to
//! `quarantine/obj_t_{tenant}_{uuid}` (a finished blob) or `quarantine/tmp_t_{tenant}_{uuid}` (an
//! unfinished write), from where an operator can move them back after restoring an older
//! database, until gc deletes them after `gc.quarantine_secs`.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

mod dirsync;
mod resumable;
mod writer;

use super::{
    BlobBackend, BlobError, BlobResult, BlobWriter, ByteStream, Held, Piece, ResumableWriter,
    ResumeState,
};
use crate::budget::Budget;
use crate::domain::BlobKey;

/// Read size for downloads: large enough for throughput, small enough to bound memory.
const READ_CHUNK: usize = 64 * 1024;

pub struct LocalStore {
    objects: PathBuf,
    tmp: PathBuf,
    quarantine: PathBuf,
    budget: Arc<Budget>,
    dir_syncs: Arc<dirsync::DirSyncs>,
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::NotFound => BlobError::NotFound,
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => BlobError::Full(e.to_string()),
            ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => {
                BlobError::Unavailable(e.to_string())
            }
            _ => BlobError::Other(e.to_string()),
        }
    }
}

impl LocalStore {
    pub async fn open(root: &Path, budget: Arc<Budget>) -> BlobResult<LocalStore> {
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        let quarantine = root.join("quarantine");
        for d in [&objects, &tmp, &quarantine] {
            tokio::fs::create_dir_all(d)
                .await
                .map_err(|e| BlobError::Unavailable(format!("create {}: {e}", d.display())))?;
        }
        Ok(LocalStore {
            objects,
            tmp,
            quarantine,
            budget,
            dir_syncs: Arc::default(),
        })
    }

    fn object_path(&self, key: &BlobKey) -> PathBuf {
        self.objects.join(safe_name(key))
    }

    fn tmp_path(&self, key: &BlobKey) -> PathBuf {
        self.tmp.join(safe_name(key).replace('/', "_"))
    }
}

/// Remove a file, treating "already gone" as success.
fn remove_quietly(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Create `dir` and the missing directories above it, each made durable in its parent (a blob
/// renamed into a directory whose own entry was lost would be lost with it).
fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    create_dir_durably(parent)?;
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    std::fs::File::open(parent)?.sync_all()
}

/// `t_{digits}_{hex}` (a temporary file's name) back to its key.
fn key_from_tmp_name(name: &str) -> Option<BlobKey> {
    BlobKey::from_generated(&name.replacen('_', "/", 2))
}

/// The relative path of a key: a generated key has the shape `t/{digits}/{hex}` (no `..`, no
/// absolute part) and is used as it is. An imported key (an S3 object key, which may hold
/// anything) is never written to local disk by mtfu (the import copies such objects under
/// generated keys); it maps to `seed/{sha256 of the key}`, a path it cannot escape.
fn safe_name(key: &BlobKey) -> String {
    use sha2::{Digest, Sha256};
    match key.imported_object() {
        Some(object) => format!("seed/{}", hex::encode(Sha256::digest(object.as_bytes()))),
        None => key.as_str().to_owned(),
    }
}

#[async_trait]
impl BlobBackend for LocalStore {
    async fn create(&self, key: &BlobKey, _max_size: u64) -> BlobResult<Box<dyn BlobWriter>> {
        let tmp = self.tmp_path(key);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?
            .into_std()
            .await;
        Ok(Box::new(writer::LocalWriter::new(
            file,
            tmp,
            self.object_path(key),
            self.budget.clone(),
            self.dir_syncs.clone(),
        )))
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

    async fn inventory(&self) -> BlobResult<Vec<Held>> {
        let (objects, tmp, quarantine) = (
            self.objects.clone(),
            self.tmp.clone(),
            self.quarantine.clone(),
        );
        let held = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Held>> {
            let mut held = Vec::new();
            let mut add = |key: Option<BlobKey>, piece: Piece, e: &std::fs::DirEntry| {
                let (Some(key), Ok(m)) = (key, e.metadata()) else {
                    return;
                };
                held.push(Held {
                    key,
                    piece,
                    at: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    size: Some(m.len()),
                });
            };
            for e in std::fs::read_dir(&tmp)? {
                let e = e?;
                let key = e.file_name().to_str().and_then(key_from_tmp_name);
                add(key, Piece::Partial, &e);
            }
            for e in std::fs::read_dir(&quarantine)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name
                    .strip_prefix("obj_")
                    .or_else(|| name.strip_prefix("tmp_"))
                    .and_then(key_from_tmp_name);
                add(key, Piece::Quarantined(name), &e);
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
                        add(BlobKey::from_generated(&key), Piece::Blob, &e);
                    }
                }
            }
            Ok(held)
        })
        .await
        .map_err(|e| BlobError::Other(e.to_string()))??;
        Ok(held)
    }

    async fn quarantine(&self, key: &BlobKey, _partial_before: SystemTime) -> BlobResult<()> {
        let flat = key.as_str().replace('/', "_");
        let moves = [
            (
                self.object_path(key),
                self.quarantine.join(format!("obj_{flat}")),
            ),
            (
                self.tmp_path(key),
                self.quarantine.join(format!("tmp_{flat}")),
            ),
        ];
        let dir = self.quarantine.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for (from, to) in moves {
                match std::fs::rename(&from, &to) {
                    Ok(()) => {
                        // Its quarantine is counted from now.
                        std::fs::File::open(&to)?.set_modified(SystemTime::now())?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| BlobError::Other(e.to_string()))??;
        Ok(())
    }

    async fn delete_piece(&self, piece: &Piece) -> BlobResult<()> {
        if let Piece::Quarantined(name) = piece
            && !name.contains('/')
            && !name.starts_with('.')
        {
            let p = self.quarantine.join(name);
            tokio::task::spawn_blocking(move || remove_quietly(&p))
                .await
                .map_err(|e| BlobError::Other(e.to_string()))??;
        }
        Ok(())
    }

    async fn ping(&self) -> BlobResult<()> {
        // A write, not a look: a full, read-only or inaccessible disk is not ready.
        let probe = self.tmp.join(".readyz");
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&probe)?;
            f.write_all(b"ok")?;
            drop(f);
            std::fs::remove_file(&probe)
        })
        .await
        .map_err(|e| BlobError::Other(e.to_string()))?
        .map_err(|e| {
            let m = format!("{}: {e}", self.tmp.display());
            match BlobError::from(e) {
                BlobError::Full(_) => BlobError::Full(m),
                _ => BlobError::Unavailable(m),
            }
        })?;
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
