//! Resumable blobs on S3: one multipart upload per blob, and "tail" objects for chunks shorter
//! than a part.
//!
//! S3 wants every part but the last to be at least 5 MiB, while a resumable upload's chunks may
//! be of any size. A session's bytes fill parts of `part_size` as they come, sent while the next
//! fills; when what the session can still bring is less than a part and a smallest part (5 MiB,
//! or more for a blob so large that 9,000 parts would not hold it), it all goes in one part.
//! When the session pauses, what it holds becomes a part too if it is at least a smallest part:
//! chunks of 5 MiB or more are written once, as parts. Shorter, it goes into a tail object (`{key}.tail/{uuid}`); when the next sessions bring enough for a part,
//! the tails are read back into the front of that part, so every byte is written at most twice,
//! and the tails are dropped once the state that no longer names them is persisted. At most
//! [`MAX_TAILS`] tails are kept: past that they are merged into one. Completing the blob sends
//! the tails as the last part and completes the multipart upload.
//!
//! The state (upload id, parts done with their ETags and checksums, tails) is JSON that the
//! caller persists; a part counts only once a checkpoint naming it is persisted, so parts sent by
//! a session that died are overwritten by the next one or left out of the completed object.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedPart};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::{S3Store, Shared, classify, sha256_b64};
use crate::blob::{BlobError, BlobResult, ResumableWriter, ResumeState};
use crate::config::S3_MIN_PART_SIZE;
use crate::domain::BlobKey;

mod writer;

use writer::S3Resumable;

/// Tail objects a state names at most: beyond, a pause merges them into one (re-writing them),
/// so that tiny chunks cannot make the state, or the reads that fold tails into a part, grow
/// without bound.
const MAX_TAILS: usize = 16;
/// Parts of one blob at most: S3 allows 10,000; a margin for the parts of full size.
const MAX_PARTS: u64 = 9_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    upload_id: String,
    #[serde(default)]
    parts: Vec<Part>,
    #[serde(default)]
    tails: Vec<Tail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Part {
    n: i32,
    etag: Option<String>,
    sha256: String,
    size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tail {
    name: String,
    size: u64,
}

impl State {
    fn parse(s: &ResumeState) -> BlobResult<State> {
        serde_json::from_str(&s.0)
            .map_err(|e| BlobError::Other(format!("unreadable S3 resumable state: {e}")))
    }

    fn encode(&self) -> BlobResult<ResumeState> {
        serde_json::to_string(self)
            .map(ResumeState)
            .map_err(|e| BlobError::Other(e.to_string()))
    }

    fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum::<u64>() + tail_bytes(&self.tails)
    }
}

fn tail_bytes(tails: &[Tail]) -> u64 {
    tails.iter().map(|t| t.size).sum()
}

fn completed(p: &Part) -> CompletedPart {
    CompletedPart::builder()
        .part_number(p.n)
        .set_e_tag(p.etag.clone())
        .checksum_sha256(&p.sha256)
        .build()
}

impl Shared {
    fn tail_prefix(object_key: &str) -> String {
        format!("{object_key}.tail/")
    }

    async fn upload_part(
        self: Arc<Self>,
        key: String,
        upload_id: String,
        n: i32,
        data: Bytes,
    ) -> BlobResult<Part> {
        let sha256 = sha256_b64(&data);
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&key)
            .upload_id(upload_id)
            .part_number(n)
            .content_length(data.len() as i64)
            .checksum_sha256(&sha256)
            .body(S3Body::from(data.clone()))
            .send()
            .await
            .map_err(|e| classify("UploadPart", e))?;
        let size = data.len() as u64;
        Ok(Part {
            n,
            etag: out.e_tag().map(str::to_owned),
            sha256,
            size,
        })
    }

    async fn put_tail(&self, object_key: &str, data: Bytes) -> BlobResult<Tail> {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let size = data.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{}{name}", Self::tail_prefix(object_key)))
            .content_length(size as i64)
            .checksum_sha256(sha256_b64(&data))
            .body(S3Body::from(data))
            .send()
            .await
            .map_err(|e| classify("PutObject", e))?;
        Ok(Tail { name, size })
    }

    /// Read `tails` back, in order, into `into` (exactly their length).
    async fn read_tails(
        &self,
        object_key: &str,
        tails: &[Tail],
        into: &mut [u8],
    ) -> BlobResult<()> {
        let prefix = Self::tail_prefix(object_key);
        let mut at = 0usize;
        for t in tails {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(format!("{prefix}{}", t.name))
                .send()
                .await
                .map_err(|e| classify("GetObject", e))?;
            let end = at + t.size as usize;
            let mut body = out.body;
            while let Some(chunk) = body
                .try_next()
                .await
                .map_err(|e| BlobError::Unavailable(format!("S3 GetObject body: {e}")))?
            {
                let Some(dst) = into
                    .get_mut(at..at + chunk.len())
                    .filter(|_| at + chunk.len() <= end)
                else {
                    return Err(BlobError::Other(format!(
                        "tail {} is longer than recorded",
                        t.name
                    )));
                };
                dst.copy_from_slice(&chunk);
                at += chunk.len();
            }
            if at != end {
                return Err(BlobError::Other(format!(
                    "tail {} is shorter than recorded",
                    t.name
                )));
            }
        }
        Ok(())
    }

    pub(super) async fn delete_quietly(&self, key: &str) -> BlobResult<()> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify("DeleteObject", e) {
                BlobError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Every tail object of `object_key`, named by a state or not.
    async fn list_tails(&self, object_key: &str) -> BlobResult<Vec<String>> {
        let prefix = Self::tail_prefix(object_key);
        let mut keys = Vec::new();
        let mut token = None::<String>;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListObjectsV2", e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if page.is_truncated() != Some(true) || token.is_none() {
                return Ok(keys);
            }
        }
    }

    async fn delete_all_tails(&self, object_key: &str) -> BlobResult<()> {
        for k in self.list_tails(object_key).await? {
            self.delete_quietly(&k).await?;
        }
        Ok(())
    }
}

impl S3Store {
    pub(super) async fn begin(&self, key: &BlobKey) -> BlobResult<ResumeState> {
        let out = self
            .s
            .client
            .create_multipart_upload()
            .bucket(&self.s.bucket)
            .key(self.s.object_key(key))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| classify("CreateMultipartUpload", e))?;
        let upload_id = out
            .upload_id()
            .ok_or_else(|| BlobError::Other("S3 returned no upload id".into()))?
            .to_owned();
        State {
            upload_id,
            ..State::default()
        }
        .encode()
    }

    pub(super) async fn resume_at(
        &self,
        key: &BlobKey,
        offset: u64,
        state: &ResumeState,
        length: u64,
        room: u64,
    ) -> BlobResult<Box<dyn ResumableWriter>> {
        let st = State::parse(state)?;
        if st.len() != offset {
            return Err(BlobError::Other(format!(
                "{key}: S3 state holds {} bytes, {offset} recorded",
                st.len()
            )));
        }
        let tail_len = tail_bytes(&st.tails);
        let part = self.s.part_size as u64;
        let min_part = S3_MIN_PART_SIZE.max(length.div_ceil(MAX_PARTS)).min(part);
        // Read the tails back into this session's first part if it may make one, or to merge
        // them when there are too many.
        let fold = tail_len > 0
            && (tail_len.saturating_add(room) >= min_part || st.tails.len() + 1 > MAX_TAILS);
        Ok(Box::new(S3Resumable {
            s: self.s.clone(),
            key: self.s.object_key(key),
            upload_id: st.upload_id,
            reported: offset,
            next_part: st.parts.len() as i32 + 1,
            parts: st.parts,
            tails: st.tails,
            tail_len: tail_len as usize,
            fold_pending: fold,
            fold_part: None,
            fold_reported: false,
            min_part: min_part as usize,
            filling: None,
            room,
            uploading: JoinSet::new(),
            acked: BTreeMap::new(),
        }))
    }

    pub(super) async fn complete(
        &self,
        key: &BlobKey,
        length: u64,
        state: &ResumeState,
    ) -> BlobResult<()> {
        let st = State::parse(state)?;
        let object = self.s.object_key(key);
        if st.len() != length {
            return Err(BlobError::Other(format!(
                "{key}: S3 state holds {} bytes, {length} to complete",
                st.len()
            )));
        }
        let mut parts = st.parts.clone();
        if !st.tails.is_empty() {
            // The tails are the last part (shorter than a part: a full one would have been sent).
            let n = tail_bytes(&st.tails) as usize;
            let _permit = self.s.budget.acquire(n).await;
            let mut buf = vec![0u8; n];
            let sent = match self.s.read_tails(&object, &st.tails, &mut buf).await {
                Ok(()) => {
                    let number = parts.len() as i32 + 1;
                    self.s
                        .clone()
                        .upload_part(object.clone(), st.upload_id.clone(), number, buf.into())
                        .await
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(p) => parts.push(p),
                // Tails or upload gone: a completion whose answer was lost?
                Err(BlobError::NotFound) => return self.s.completed_before(&object, length).await,
                Err(e) => return Err(e),
            }
        }
        if parts.is_empty() {
            // Nothing to upload: an empty object, and no multipart upload.
            self.s.abort_once(&object, &st.upload_id).await?;
            self.s
                .client
                .put_object()
                .bucket(&self.s.bucket)
                .key(&object)
                .content_length(0)
                .body(S3Body::from(Bytes::new()))
                .send()
                .await
                .map_err(|e| classify("PutObject", e))?;
        } else {
            let parts = parts.iter().map(completed).collect();
            self.s
                .complete(&object, &st.upload_id, parts, length)
                .await?;
        }
        // The blob is complete: its tails are garbage now. Best effort: gc's sweep removes
        // tail objects that no upload in progress names.
        if let Err(e) = self.s.delete_all_tails(&object).await {
            tracing::warn!(%key, error = %e, "could not remove a finished upload's tail objects; gc will");
        }
        Ok(())
    }

    pub(super) async fn discard(&self, key: &BlobKey, state: &ResumeState) -> BlobResult<()> {
        let object = self.s.object_key(key);
        if let Ok(st) = State::parse(state)
            && !st.upload_id.is_empty()
        {
            self.s.abort_once(&object, &st.upload_id).await?;
        }
        self.s.delete_all_tails(&object).await
    }

    pub(super) async fn forget(&self, key: &BlobKey, obsolete: &[String]) -> BlobResult<()> {
        let prefix = Shared::tail_prefix(&self.s.object_key(key));
        for name in obsolete {
            // Names come from our own states: a tail's uuid, nothing that could leave the prefix.
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.s.delete_quietly(&format!("{prefix}{name}")).await?;
            }
        }
        Ok(())
    }
}
