//! Writing one blob to S3: a body no larger than one part goes in one `PutObject` when the
//! writer finishes; a larger one becomes a multipart upload whose parts are sent as they fill, at
//! most `parts_in_flight` at once, each holding a whole part of the shared budget until S3 has
//! answered. Nothing is visible before [`BlobWriter::finish`]; an error, an abort or a dropped
//! writer aborts the multipart upload.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedPart};
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use super::{Shared, classify, sha256_b64};
use crate::blob::{BlobError, BlobResult, BlobWriter};
use crate::budget::BudgetPermit;

/// The part being filled, with the budget reserved for all of it: a whole part, or less when
/// the blob's bound says fewer bytes can come.
struct Filling {
    buf: BytesMut,
    cap: usize,
    permit: BudgetPermit,
}

pub(super) struct S3Writer {
    s: Arc<Shared>,
    key: String,
    /// Bytes the blob may still receive (its bound minus what was written).
    room: u64,
    /// Bytes written.
    length: u64,
    filling: Option<Filling>,
    upload_id: Option<String>,
    next_part: i32,
    uploading: JoinSet<BlobResult<CompletedPart>>,
    done: Vec<CompletedPart>,
    /// Finished or aborted: nothing for Drop to do.
    closed: bool,
}

impl S3Writer {
    /// A writer of the object `key`, which may receive `room` bytes at most.
    pub(super) fn new(s: Arc<Shared>, key: String, room: u64) -> S3Writer {
        S3Writer {
            s,
            key,
            room,
            length: 0,
            filling: None,
            upload_id: None,
            next_part: 1,
            uploading: JoinSet::new(),
            done: Vec::new(),
            closed: false,
        }
    }
    /// Take the result of one finished part upload.
    fn collect(
        &mut self,
        joined: Option<Result<BlobResult<CompletedPart>, tokio::task::JoinError>>,
    ) -> BlobResult<()> {
        match joined {
            None => Ok(()),
            Some(Ok(Ok(part))) => {
                self.done.push(part);
                Ok(())
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(BlobError::Other(format!("part upload task: {e}"))),
        }
    }

    /// Send the filled part (starting the multipart upload if this is the first).
    async fn send_part(&mut self) -> BlobResult<()> {
        let Some(Filling { buf, permit, .. }) = self.filling.take() else {
            return Ok(());
        };
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .s
                    .client
                    .create_multipart_upload()
                    .bucket(&self.s.bucket)
                    .key(&self.key)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .send()
                    .await
                    .map_err(|e| classify("CreateMultipartUpload", e))?;
                let id = out
                    .upload_id()
                    .ok_or_else(|| BlobError::Other("S3 returned no upload id".into()))?
                    .to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        while self.uploading.len() >= self.s.parts_in_flight {
            let joined = self.uploading.join_next().await;
            self.collect(joined)?;
        }
        let number = self.next_part;
        self.next_part += 1;
        let (s, key) = (self.s.clone(), self.key.clone());
        let data = buf.freeze();
        self.uploading.spawn(async move {
            let checksum = sha256_b64(&data);
            let sent = data.clone();
            let out = s
                .client
                .upload_part()
                .bucket(&s.bucket)
                .key(&key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(data.len() as i64)
                .checksum_sha256(&checksum)
                .body(S3Body::from(sent))
                .send()
                .await
                .map_err(|e| classify("UploadPart", e))?;
            // The part is in S3: its buffer and its budget are free.
            drop(data);
            drop(permit);
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .checksum_sha256(checksum)
                .build())
        });
        Ok(())
    }

    async fn finish_inner(&mut self) -> BlobResult<()> {
        if self.upload_id.is_none() {
            // The whole body fits in one part: one PutObject.
            let (data, permit) = match self.filling.take() {
                Some(f) => (f.buf.freeze(), Some(f.permit)),
                None => (Bytes::new(), None),
            };
            self.s
                .client
                .put_object()
                .bucket(&self.s.bucket)
                .key(&self.key)
                .content_length(data.len() as i64)
                .checksum_sha256(sha256_b64(&data))
                .body(S3Body::from(data))
                .send()
                .await
                .map_err(|e| classify("PutObject", e))?;
            drop(permit);
            return Ok(());
        }
        if self.filling.as_ref().is_some_and(|f| !f.buf.is_empty()) {
            self.send_part().await?;
        }
        while !self.uploading.is_empty() {
            let joined = self.uploading.join_next().await;
            self.collect(joined)?;
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.part_number());
        let upload_id = self.upload_id.clone().unwrap_or_default();
        self.s
            .complete(&self.key, &upload_id, parts, self.length)
            .await
    }

    /// Abort: cancel the parts in flight, then abort the multipart upload in a task of its own,
    /// so that cancelling this future (a client gone) cannot stop it; while the store does not
    /// answer it keeps retrying in the background.
    async fn abort_inner(&mut self) {
        self.filling = None;
        // If this is cancelled, Drop (not yet `closed`) takes over.
        self.uploading.shutdown().await;
        self.closed = true;
        if let Some(id) = self.upload_id.take()
            && let Some(task) =
                crate::cleanup::spawn(self.s.clone().abort_with_retries(self.key.clone(), id))
        {
            // Usually done at once; a slow store must not hold the client's answer long.
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!(
                    key = self.key,
                    "multipart upload not aborted yet; retrying in the background"
                );
            }
        }
    }
}

#[async_trait]
impl BlobWriter for S3Writer {
    async fn write(&mut self, mut chunk: Bytes) -> BlobResult<()> {
        if self.closed {
            return Err(BlobError::Other("write after finish".into()));
        }
        // A part that failed already fails the upload now, not at the end.
        while let Some(joined) = self.uploading.try_join_next() {
            self.collect(Some(joined))?;
        }
        if chunk.len() as u64 > self.room {
            return Err(BlobError::Other("more bytes than the blob's bound".into()));
        }
        self.room -= chunk.len() as u64;
        self.length += chunk.len() as u64;
        while !chunk.is_empty() {
            match &mut self.filling {
                Some(f) if f.buf.len() < f.cap => {
                    let take = (f.cap - f.buf.len()).min(chunk.len());
                    f.buf.extend_from_slice(&chunk.split_to(take));
                }
                // Full, and more is coming: send it.
                Some(_) => self.send_part().await?,
                None => {
                    // Reserve the part before keeping any of it: a whole part, or what can still
                    // come if that is less (a small file does not take a part's budget). Nothing
                    // partly filled is held while waiting; parts in flight are released by S3's
                    // answers.
                    let left = usize::try_from(self.room).unwrap_or(usize::MAX);
                    let cap = self.s.part_size.min(chunk.len().saturating_add(left));
                    let permit = self.s.budget.acquire(cap).await;
                    self.filling = Some(Filling {
                        buf: BytesMut::with_capacity(cap),
                        cap,
                        permit,
                    });
                }
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> BlobResult<()> {
        if self.closed {
            return Err(BlobError::Other("finished twice".into()));
        }
        match self.finish_inner().await {
            Ok(()) => {
                self.closed = true;
                Ok(())
            }
            Err(e) => {
                self.abort_inner().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> BlobResult<()> {
        self.abort_inner().await;
        Ok(())
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Dropped mid-write (the request future was cancelled): part uploads in flight are
        // cancelled with the JoinSet, and the multipart upload is aborted in the background.
        if self.closed {
            return;
        }
        self.uploading.abort_all();
        if let Some(id) = self.upload_id.take() {
            let _ = crate::cleanup::spawn(self.s.clone().abort_with_retries(self.key.clone(), id));
        }
    }
}
