//! One request's hold on an upload ([`Session`]): its lease, and writing a chunk through the
//! blob store's resumable writer while hashing it, recording each durable point under the
//! lease, and making the upload a file when its last byte is in.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::Digest;

use super::{BodyFault, Checksum, ResumableSha256, Tus, TusError, micros};
use crate::blob::{BlobError, Checkpoint, ResumableWriter, ResumeState};
use crate::content_type::{self, SNIFF_BYTES};
use crate::domain::{FileName, Micros, NewFile, Resource, ResourceId, Tenant, now_micros};
use crate::meta::tus::{TusProgress, TusUpload};
use crate::meta::{Claim, Meta, MetaError};

/// A chunk's digest as it streams, for its `Upload-Checksum`.
enum ChunkDigest {
    Sha1(sha1::Sha1, [u8; 20]),
    Sha256(sha2::Sha256, [u8; 32]),
}

impl ChunkDigest {
    fn new(c: Checksum) -> Self {
        match c {
            Checksum::Sha1(want) => ChunkDigest::Sha1(sha1::Sha1::default(), want),
            Checksum::Sha256(want) => ChunkDigest::Sha256(sha2::Sha256::new(), want),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            ChunkDigest::Sha1(h, _) => sha1::Digest::update(h, data),
            ChunkDigest::Sha256(h, _) => h.update(data),
        }
    }

    fn matches(self) -> bool {
        match self {
            ChunkDigest::Sha1(h, want) => sha1::Digest::finalize(h).as_slice() == want.as_slice(),
            ChunkDigest::Sha256(h, want) => h.finalize().as_slice() == want.as_slice(),
        }
    }
}

/// A lease on an upload row. Dropped while held (the request future cancelled), it is given up
/// in the background; if the process dies, it lapses at `until`.
pub(super) struct Lease {
    meta: Meta,
    id: String,
    pub(super) token: String,
    pub(super) until: Micros,
    pub(super) armed: bool,
}

impl Lease {
    pub(super) fn new(meta: Meta, id: &str, until: Micros) -> Lease {
        Lease {
            meta,
            id: id.to_owned(),
            token: uuid::Uuid::new_v4().simple().to_string(),
            until,
            armed: true,
        }
    }

    /// A lease that was never taken: nothing to give up.
    pub(super) fn unused(mut self, e: TusError) -> TusError {
        self.armed = false;
        e
    }

    async fn release(mut self) {
        self.armed = false;
        if let Err(e) = self.meta.tus_release(&self.id, &self.token).await {
            tracing::warn!(upload = self.id, error = %e, "could not give up an upload's lease; it lapses");
        }
    }

    /// Extend the lease when half of it is gone (a long `PATCH` between two checkpoints).
    async fn renew_if_due(&mut self, length: Duration) -> Result<(), TusError> {
        let now = now_micros();
        let lease = micros(length);
        if self.until - now > lease / 2 {
            return Ok(());
        }
        let until = now + lease;
        if !self.meta.tus_renew(&self.id, &self.token, until).await? {
            return Err(TusError::Locked);
        }
        self.until = until;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            let (meta, id, token) = (self.meta.clone(), self.id.clone(), self.token.clone());
            let _ = crate::cleanup::spawn(async move {
                let _ = meta.tus_release(&id, &token).await;
            });
        }
    }
}

/// One request's hold on an upload: write to it, then [`close`](Session::close) it.
pub struct Session {
    pub(super) tus: Tus,
    pub(super) tenant: Tenant,
    pub(super) up: TusUpload,
    pub(super) lease: Lease,
    /// Finished: it is a file now, and its row is gone.
    pub(super) settled: bool,
}

/// Hash midstates at the offsets where the writer may checkpoint, oldest first.
type Snapshots = Vec<(u64, ResumableSha256)>;

impl Session {
    /// The upload as last recorded.
    pub fn upload(&self) -> &TusUpload {
        &self.up
    }

    /// Whether the upload is a file now.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// Give the upload up for others.
    pub async fn close(self) {
        if self.lease.armed {
            self.lease.release().await;
        }
    }

    /// Append `body` at the upload's offset: at most `declared` bytes (its `Content-Length`),
    /// never past the upload's length. With a `checksum`, the chunk is kept whole or not at all;
    /// without, a body that breaks off keeps what arrived. When the last byte is in, the upload
    /// becomes a file.
    pub async fn write<S>(
        &mut self,
        checksum: Option<Checksum>,
        mut body: S,
        declared: Option<u64>,
    ) -> Result<(), TusError>
    where
        S: Stream<Item = Result<Bytes, BodyFault>> + Unpin,
    {
        let remaining = self.up.length - self.up.offset;
        let past = TusError::PastLength {
            length: self.up.length,
            offset: self.up.offset,
        };
        if declared.is_some_and(|d| d > remaining) {
            return Err(past);
        }
        let start = ResumableSha256::decode(&self.up.hash_state)
            .filter(|h| h.len() == self.up.offset)
            .ok_or_else(|| MetaError::Internal(format!("upload {}: bad hash state", self.up.id)))?;
        if remaining > 0 {
            let room = declared.unwrap_or(remaining).min(remaining);
            let tus = self.tus.clone();
            let mut writer = tus
                .blob()
                .resume(
                    &self.up.blob_key,
                    self.up.offset,
                    &ResumeState(self.up.store_state.clone()),
                    self.up.length,
                    room,
                )
                .await?;
            let mut hasher = start.clone();
            let mut snapshots: Snapshots = vec![(self.up.offset, start)];
            let mut digest = checksum.map(ChunkDigest::new);
            metrics::gauge!("mtfu_uploads_in_flight").increment(1.0);
            let pumped = self
                .pump(
                    &mut *writer,
                    &mut body,
                    &mut hasher,
                    &mut snapshots,
                    &mut digest,
                )
                .await;
            metrics::gauge!("mtfu_uploads_in_flight").decrement(1.0);
            let pos = hasher.len();
            let checksum_given = digest.is_some();
            let mismatch = pumped.is_ok() && digest.is_some_and(|d| !d.matches());
            match pumped {
                Ok(()) if mismatch => {
                    self.abort_if_held(writer).await;
                    return Err(TusError::ChecksumMismatch);
                }
                Ok(()) => {
                    let cp = writer.pause().await?;
                    snapshots.push((pos, hasher));
                    let last = cp.offset < self.up.length;
                    self.record_as(&cp, &snapshot(&snapshots, cp.offset)?, last)
                        .await?;
                }
                Err(TusError::Body(msg)) if !checksum_given => {
                    // The client is gone: keep what arrived, for it to resume from, if the
                    // upload is still this request's (a writer that lost its lease never
                    // touches the blob again: it may be the winner's by now).
                    if !self.lease_held().await {
                        drop(writer);
                        return Err(TusError::Body(msg));
                    }
                    match writer.pause().await {
                        Ok(cp) => {
                            snapshots.push((pos, hasher));
                            if let Ok(h) = snapshot(&snapshots, cp.offset) {
                                let last = cp.offset < self.up.length;
                                let _ = self.record_as(&cp, &h, last).await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(upload = self.up.id, error = %e, "could not keep a broken chunk")
                        }
                    }
                    return Err(TusError::Body(msg));
                }
                Err(TusError::Locked) => {
                    // Lost the lease: the blob is another writer's now; leave it alone.
                    drop(writer);
                    return Err(TusError::Locked);
                }
                Err(e) => {
                    self.abort_if_held(writer).await;
                    return Err(e);
                }
            }
        } else if let Some(item) = body.next().await {
            // All bytes are in: nothing more may come.
            return match item {
                Ok(b) if b.is_empty() => Ok(()),
                Ok(_) => Err(past),
                Err(f) => Err(fault(f)),
            };
        }
        if self.up.offset == self.up.length {
            self.settle().await?;
        }
        Ok(())
    }

    /// Whether this request still holds the upload (renewing the lease to say so for a while).
    async fn lease_held(&mut self) -> bool {
        let until = now_micros().saturating_add(micros(self.tus.set.lease));
        match self
            .tus
            .meta()
            .tus_renew(&self.up.id, &self.lease.token, until)
            .await
        {
            Ok(true) => {
                self.lease.until = until;
                true
            }
            Ok(false) => {
                self.lease.armed = false;
                false
            }
            Err(_) => false,
        }
    }

    /// Throw away what `writer` wrote since the last checkpoint, if the upload is still this
    /// request's; otherwise leave the blob untouched (it is another writer's now).
    async fn abort_if_held(&mut self, writer: Box<dyn ResumableWriter>) {
        if self.lease_held().await {
            writer.abort().await;
        } else {
            drop(writer);
        }
    }

    /// Stream `body` into `writer`, splitting chunks at the writer's boundaries so the hash
    /// midstate at each is known, and recording the checkpoints the writer reports (not when a
    /// checksum makes the chunk all-or-nothing).
    async fn pump<S>(
        &mut self,
        writer: &mut dyn ResumableWriter,
        body: &mut S,
        hasher: &mut ResumableSha256,
        snapshots: &mut Snapshots,
        digest: &mut Option<ChunkDigest>,
    ) -> Result<(), TusError>
    where
        S: Stream<Item = Result<Bytes, BodyFault>> + Unpin,
    {
        let length = self.up.length;
        while let Some(item) = body.next().await {
            let mut chunk = item.map_err(fault)?;
            // Before writing: after a stall the lease may have lapsed and the upload gone to
            // another request; a writer that still holds it has at least half a lease left.
            self.lease.renew_if_due(self.tus.set.lease).await?;
            if hasher.len() + chunk.len() as u64 > length {
                return Err(TusError::PastLength {
                    length,
                    offset: self.up.offset,
                });
            }
            if let Some(d) = digest.as_mut() {
                d.update(&chunk);
            }
            metrics::counter!("mtfu_upload_bytes_total").increment(chunk.len() as u64);
            while !chunk.is_empty() {
                let to_boundary = writer.to_next_boundary();
                // (Never 0: a writer has room before its next boundary.)
                let n = usize::try_from(to_boundary)
                    .unwrap_or(usize::MAX)
                    .clamp(1, chunk.len());
                let piece = chunk.split_to(n);
                hasher.update(&piece);
                writer.write(piece).await?;
                if n as u64 == to_boundary {
                    snapshots.push((hasher.len(), hasher.clone()));
                }
            }
            if digest.is_none()
                && let Some(cp) = writer.durable().await?
            {
                let h = snapshot(snapshots, cp.offset)?;
                self.record(&cp, &h).await?;
                snapshots.retain(|(o, _)| *o >= cp.offset);
            }
        }
        Ok(())
    }

    /// Record a checkpoint under the lease (given up with it when `last`: the request is done
    /// with the upload), then drop what it made obsolete.
    async fn record_as(
        &mut self,
        cp: &Checkpoint,
        hash: &ResumableSha256,
        last: bool,
    ) -> Result<(), TusError> {
        let now = now_micros();
        let p = TusProgress {
            offset: cp.offset,
            hash_state: hash.encode(),
            store_state: cp.state.0.clone(),
            now,
            lease_until: (!last).then(|| now + micros(self.tus.set.lease)),
            expires_at: now.saturating_add(micros(self.tus.set.expire_after)),
        };
        if !self
            .tus
            .meta()
            .tus_record(&self.up.id, &self.lease.token, &p)
            .await?
        {
            return Err(TusError::Locked);
        }
        match p.lease_until {
            Some(until) => self.lease.until = until,
            None => self.lease.armed = false,
        }
        self.up.offset = p.offset;
        self.up.hash_state = p.hash_state;
        self.up.store_state = p.store_state;
        self.up.expires_at = p.expires_at;
        if !cp.obsolete.is_empty() {
            // Not on the client's time: what is left goes with the upload at the latest.
            let (blob, key, obsolete) = (
                self.tus.blob().clone(),
                self.up.blob_key.clone(),
                cp.obsolete.clone(),
            );
            let _ = crate::cleanup::spawn(async move {
                if let Err(e) = blob.drop_obsolete(&key, &obsolete).await {
                    tracing::warn!(%key, error = %e, "could not remove obsolete upload data; it goes with the upload");
                }
            });
        }
        Ok(())
    }

    pub(super) async fn record(
        &mut self,
        cp: &Checkpoint,
        hash: &ResumableSha256,
    ) -> Result<(), TusError> {
        self.record_as(cp, hash, false).await
    }

    /// All bytes are in: complete the blob, and make it a file in one transaction that consumes
    /// the upload's row under this request's lease (so a writer that lost the lease, gc, or the
    /// tenant's removal cannot race it).
    pub(super) async fn settle(&mut self) -> Result<(), TusError> {
        let (meta, blob) = (self.tus.meta().clone(), self.tus.blob().clone());
        let up = self.up.clone();
        blob.complete_resumable(
            &up.blob_key,
            up.length,
            &ResumeState(up.store_state.clone()),
        )
        .await?;
        self.tus.files.hooks.point("tus.completed").await;
        let give_up = |this: &mut Session| {
            this.lease.armed = false;
            let (meta, blob, key, id, token) = (
                meta.clone(),
                blob.clone(),
                up.blob_key.clone(),
                up.id.clone(),
                this.lease.token.clone(),
            );
            async move {
                // The row first: only the request that removed it may delete the blob.
                if let Ok(true) = meta.tus_delete(&id, &token).await {
                    let _ = blob.delete(&key).await;
                }
                crate::quota::release(&meta, &key).await;
            }
        };
        if meta.key_known(&up.blob_key).await? {
            // A file already (committed by an earlier version of mtfu that dropped the row
            // after the commit): only the row is left to drop.
            meta.tus_delete(&up.id, &self.lease.token).await?;
            self.lease.armed = false;
            self.settled = true;
            crate::quota::release(&meta, &up.blob_key).await;
            return Ok(());
        }
        let content_type = match self.content_type().await? {
            Ok(ct) => ct,
            Err(refused) => {
                give_up(self).await;
                return Err(TusError::ContentTypeNotAllowed(refused));
            }
        };
        let now = now_micros();
        let expire_at = match (up.file_expires_in, up.file_expire_at) {
            (Some(d), _) => Some(now.saturating_add(d)),
            (None, Some(t)) if t <= now => {
                give_up(self).await;
                return Err(TusError::ExpiredBeforeCommit);
            }
            (None, at) => at,
        };
        let hash = ResumableSha256::decode(&up.hash_state)
            .filter(|h| h.len() == up.length)
            .ok_or_else(|| MetaError::Internal(format!("upload {}: bad hash state", up.id)))?;
        let bad = |what: &str, e: String| MetaError::Internal(format!("stored {what}: {e}"));
        let new = NewFile {
            resource: Resource::parse(&up.resource).map_err(|e| bad("resource", e))?,
            resource_id: ResourceId::parse(&up.resource_id).map_err(|e| bad("resource id", e))?,
            name: FileName::parse(&up.name).map_err(|e| bad("file name", e))?,
            blob_key: up.blob_key.clone(),
            size: up.length,
            content_type,
            sha256: hash.hex_digest(),
            is_public: up.is_public,
            expire_at,
        };
        let claim = Claim::Tus {
            id: up.id.clone(),
            token: self.lease.token.clone(),
        };
        let (_, replaced) = match meta.commit_file(&self.tenant, new, now, claim).await {
            Ok(done) => done,
            Err(MetaError::Gone(_)) => {
                // Another writer, gc or the tenant's removal took the upload: not ours.
                self.lease.armed = false;
                return Err(TusError::Locked);
            }
            Err(e) => return Err(e.into()),
        };
        self.lease.armed = false;
        self.settled = true;
        if let Some(old) = replaced
            && blob.delete(&old).await.is_ok()
        {
            // Best effort: the key stays in the garbage table until this succeeds.
            let _ = meta.forget_garbage(&old).await;
        }
        // The file counts now; its reservation is no longer needed.
        crate::quota::release(&meta, &up.blob_key).await;
        Ok(())
    }

    /// The stored content type, decided like every upload's ([`content_type`]), reading the
    /// first bytes back from the finished blob when needed; `Err` names a refused type.
    async fn content_type(&self) -> Result<Result<String, String>, TusError> {
        let up = &self.up;
        let claimed = Some(up.content_type.as_str()).filter(|c| !c.is_empty());
        let allowed = &self.tus.set.allowed_content_types;
        let mut head = Vec::new();
        if content_type::needs_head(claimed, allowed) && up.length > 0 {
            let n = up.length.min(SNIFF_BYTES as u64);
            let mut s = self.tus.blob().read(&up.blob_key, Some(0..n)).await?;
            while let Some(chunk) = s.next().await {
                let chunk = chunk.map_err(|e| BlobError::Unavailable(e.to_string()))?;
                head.extend_from_slice(&chunk);
            }
            head.truncate(SNIFF_BYTES);
        }
        let d = content_type::decide(claimed, &head, &up.name);
        Ok(content_type::check(allowed, &d).map(|()| d.stored))
    }
}

fn fault(f: BodyFault) -> TusError {
    match f {
        BodyFault::Broken(m) => TusError::Body(m),
        BodyFault::OverCap(cap) => TusError::RequestTooLarge { cap },
    }
}

/// The hash midstate at `offset` (a boundary the writer checkpointed at).
fn snapshot(snapshots: &Snapshots, offset: u64) -> Result<ResumableSha256, TusError> {
    snapshots
        .iter()
        .rev()
        .find(|(o, _)| *o == offset)
        .map(|(_, h)| h.clone())
        .ok_or_else(|| {
            TusError::Meta(MetaError::Internal(format!(
                "a checkpoint at {offset} is not at a known boundary"
            )))
        })
}
