//! Resumable uploads (tus 1.0.0): the protocol's state machine over the two stores. No HTTP
//! here; `http::tus` turns requests into these calls and [`TusError`]s into responses.
//!
//! An upload is a row in the metadata store ([`TusStore`]), written before its first byte, and a
//! resumable blob in the blob store ([`ResumableWriter`]). A `PATCH` leases the row, streams its
//! body through the budget into the blob while hashing it ([`ResumableSha256`]), and records
//! each durable point (offset, store state, hash midstate) under its lease, so the upload goes on
//! after a restart or on another node, from the last recorded offset. When the offset reaches
//! the length, the blob is completed and committed like any upload (`MetaBackend::commit_file`:
//! replace semantics, the replaced blob to garbage), and the row is dropped.
//!
//! Crash safety: between the row's insertion and its removal, everything the upload holds is
//! named by the row (blob key, store state), and gc removes expired rows with what they name.
//! A recorded offset equal to the length means "all bytes durable, not yet a file": the next
//! `HEAD` or `PATCH` finishes it (completing the blob and committing are both repeatable).
//!
//! [`TusStore`]: crate::meta::tus::TusStore
//! [`ResumableWriter`]: crate::blob::ResumableWriter

mod session;
pub mod sha256;

use std::collections::HashSet;
use std::time::Duration;

use crate::blob::{Blob, BlobError, Checkpoint, ResumeState};
use crate::config::Config;
use crate::content_type;
use crate::domain::{BlobKey, FileName, Micros, Resource, ResourceId, Tenant, now_micros};
use crate::meta::quota::Reserved;
use crate::meta::tus::{Leased, TusUpload};
use crate::meta::{Meta, MetaError};
use crate::service::Files;
use session::Lease;
pub use session::Session;
pub use sha256::ResumableSha256;

/// Expired uploads gc reads per round trip.
const GC_BATCH: u64 = 100;

/// What the tus service needs from the configuration.
#[derive(Debug, Clone)]
pub struct TusSettings {
    /// An unfinished upload expires this long after its creation or its last recorded progress.
    pub expire_after: Duration,
    /// How long a writer's lease holds without renewal (a dead node blocks an upload this long).
    pub lease: Duration,
    pub max_file_size: u64,
    pub allowed_content_types: Vec<String>,
    /// `tus.max_unfinished_per_tenant`.
    pub max_unfinished: u64,
}

impl TusSettings {
    pub fn from_config(cfg: &Config) -> TusSettings {
        TusSettings {
            expire_after: Duration::from_secs(cfg.tus.expire_after_secs),
            lease: Duration::from_secs(cfg.tus.lease_secs),
            max_file_size: cfg.limits.max_file_size,
            allowed_content_types: cfg.limits.allowed_content_types.clone(),
            max_unfinished: cfg.tus.max_unfinished_per_tenant,
        }
    }
}

/// Why a tus request failed.
#[derive(Debug, thiserror::Error)]
pub enum TusError {
    /// No such upload of this tenant (another tenant's included), or already finished.
    #[error("no such upload")]
    NotFound,
    /// The upload expired; gc removes it.
    #[error("upload expired")]
    Gone,
    /// Another request holds the upload.
    #[error("upload busy")]
    Locked,
    /// The request's `Upload-Offset` is not the upload's.
    #[error("offset {given} is not the upload's offset {actual}")]
    OffsetMismatch { given: u64, actual: u64 },
    /// The chunk's `Upload-Checksum` does not match its bytes; nothing of it was kept.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// `Upload-Length` over `limits.max_file_size`.
    #[error("upload length over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The chunk would go past `Upload-Length`; nothing of it was kept.
    #[error("chunk past the upload's length {length} (at offset {offset})")]
    PastLength { length: u64, offset: u64 },
    /// The chunk is over `server.max_request_body`; nothing of it was kept.
    #[error("chunk over {cap} bytes")]
    RequestTooLarge { cap: u64 },
    /// The file's content type is not in `limits.allowed_content_types`.
    #[error("content type {0} is not allowed")]
    ContentTypeNotAllowed(String),
    /// The file's absolute `expire_at` passed before its last byte arrived; the upload was
    /// removed.
    #[error("the file's expiry passed before the upload was complete")]
    ExpiredBeforeCommit,
    /// The tenant has `tus.max_unfinished_per_tenant` unfinished uploads already.
    #[error("{max} unfinished uploads already")]
    TooManyUnfinished { max: u64 },
    /// The tenant's quota has no room for `Upload-Length` more bytes.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The client's body broke off (what arrived before is kept, unless a checksum was given).
    #[error("request body: {0}")]
    Body(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// How a chunk's body stream can fail.
#[derive(Debug)]
pub enum BodyFault {
    /// Broken off (disconnect, malformed framing, too slow): what arrived is kept.
    Broken(String),
    /// More than `server.max_request_body` bytes: the chunk is refused whole.
    OverCap(u64),
}

/// An `Upload-Checksum`: the algorithm and the digest the chunk must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

/// The algorithms of `Tus-Checksum-Algorithm`.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";

impl Checksum {
    /// `{algorithm} {base64 digest}`; the error says what is wrong.
    pub fn parse(header: &str) -> Result<Checksum, String> {
        use base64::Engine;
        let (alg, b64) = header
            .trim()
            .split_once(' ')
            .ok_or("Upload-Checksum must be \"<algorithm> <base64 digest>\"")?;
        let digest = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| "the Upload-Checksum digest is not base64")?;
        let wrong = |n: usize| format!("a {alg} digest has {n} bytes");
        match alg {
            "sha1" => Ok(Checksum::Sha1(digest.try_into().map_err(|_| wrong(20))?)),
            "sha256" => Ok(Checksum::Sha256(digest.try_into().map_err(|_| wrong(32))?)),
            other => Err(format!(
                "checksum algorithm {other:?} is not supported (supported: {CHECKSUM_ALGORITHMS})"
            )),
        }
    }
}

/// A new upload, its metadata parsed at the edge with the same domain types as `/api/upload`.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub length: u64,
    /// `Upload-Metadata` as sent, echoed by `HEAD`.
    pub metadata: String,
    pub resource: Resource,
    pub resource_id: ResourceId,
    pub name: FileName,
    /// The client's `content_type`, if it gave one.
    pub content_type: Option<String>,
    pub is_public: bool,
    /// When the file expires once uploaded (a relative expiry counts from the commit).
    pub expire_at: Option<crate::service::Expiry>,
}

/// The tus service: cheap to build per request from the shared stores.
#[derive(Clone)]
pub struct Tus {
    files: Files,
    set: TusSettings,
}

/// An upload's id: what [`Tus::create`] makes (32 lower-case hex digits). Anything else names no
/// upload and is answered 404 without asking a store.
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn micros(d: Duration) -> Micros {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Tus {
    pub fn new(files: Files, set: TusSettings) -> Tus {
        Tus { files, set }
    }

    fn meta(&self) -> &Meta {
        &self.files.meta
    }

    fn blob(&self) -> &Blob {
        &self.files.blob
    }

    /// The single place where per-tenant quotas hook into resumable uploads: called at creation
    /// with the whole `Upload-Length` (known up front, so the reservation covers every chunk to
    /// come) before anything is recorded. A reservation made here is released where the upload
    /// ends: [`Session::settle`] (it becomes a file), [`Tus::terminate`] and [`reap_expired`].
    async fn reserve_quota(
        &self,
        tenant: &Tenant,
        key: &BlobKey,
        length: u64,
    ) -> Result<(), TusError> {
        let reserved = self
            .meta()
            .reserve(
                tenant.id,
                key,
                length,
                length,
                self.files.quota,
                now_micros(),
            )
            .await?;
        match reserved {
            Reserved::Exceeded => Err(TusError::QuotaExceeded),
            Reserved::Unlimited | Reserved::Held(_) => Ok(()),
        }
    }

    /// Create an upload (`POST`): the row first, then the resumable blob. The returned session
    /// holds the upload's lease, for the creation request's own body.
    pub async fn create(&self, tenant: &Tenant, new: NewUpload) -> Result<Session, TusError> {
        if new.length > self.set.max_file_size {
            return Err(TusError::TooLarge {
                limit: self.set.max_file_size,
            });
        }
        // A type the client states can be refused now; the bytes are checked at the end.
        if !self.set.allowed_content_types.is_empty()
            && !content_type::needs_head(new.content_type.as_deref(), &[])
        {
            let d = content_type::decide(new.content_type.as_deref(), b"", new.name.as_str());
            content_type::check(&self.set.allowed_content_types, &d)
                .map_err(TusError::ContentTypeNotAllowed)?;
        }
        let blob_key = BlobKey::generate(tenant.id);
        self.reserve_quota(tenant, &blob_key, new.length).await?;
        let now = now_micros();
        let mut up = TusUpload {
            id: uuid::Uuid::new_v4().simple().to_string(),
            tenant_id: tenant.id,
            blob_key,
            length: new.length,
            offset: 0,
            metadata: new.metadata,
            resource: new.resource.as_str().to_owned(),
            resource_id: new.resource_id.as_str().to_owned(),
            name: new.name.as_str().to_owned(),
            content_type: new.content_type.unwrap_or_default(),
            is_public: new.is_public,
            file_expire_at: match new.expire_at {
                Some(crate::service::Expiry::At(t)) => Some(t),
                _ => None,
            },
            file_expires_in: match new.expire_at {
                Some(crate::service::Expiry::After(d)) => Some(d),
                _ => None,
            },
            hash_state: ResumableSha256::new().encode(),
            store_state: String::new(),
            created_at: now,
            expires_at: now.saturating_add(micros(self.set.expire_after)),
        };
        let lease = Lease::new(self.meta().clone(), &up.id, now + micros(self.set.lease));
        let created = self
            .meta()
            .tus_create(&up, &lease.token, lease.until, self.set.max_unfinished)
            .await;
        if !matches!(created, Ok(true)) {
            crate::quota::release(self.meta(), &up.blob_key).await;
            let e = match created {
                Ok(_) => TusError::TooManyUnfinished {
                    max: self.set.max_unfinished,
                },
                Err(e) => e.into(),
            };
            return Err(lease.unused(e));
        }
        let mut session = Session {
            tus: self.clone(),
            tenant: tenant.clone(),
            up: up.clone(),
            lease,
            settled: false,
        };
        let state = self.blob().begin_resumable(&up.blob_key).await?;
        up.store_state = state.0;
        session.up.store_state = up.store_state.clone();
        session
            .record(
                &Checkpoint {
                    offset: 0,
                    state: ResumeState(up.store_state.clone()),
                    obsolete: Vec::new(),
                },
                &ResumableSha256::new(),
            )
            .await?;
        if up.length == 0 {
            // Nothing to wait for: an empty file at once.
            session.settle().await?;
        }
        Ok(session)
    }

    /// Lease upload `id` of `tenant` for a `PATCH` at `offset`.
    pub async fn open(&self, tenant: &Tenant, id: &str, offset: u64) -> Result<Session, TusError> {
        let session = self.lease(tenant, id).await?;
        if session.up.offset != offset {
            let actual = session.up.offset;
            session.close().await;
            return Err(TusError::OffsetMismatch {
                given: offset,
                actual,
            });
        }
        Ok(session)
    }

    async fn lease(&self, tenant: &Tenant, id: &str) -> Result<Session, TusError> {
        if !valid_id(id) {
            return Err(TusError::NotFound);
        }
        let now = now_micros();
        let lease = Lease::new(self.meta().clone(), id, now + micros(self.set.lease));
        match self
            .meta()
            .tus_lease(tenant.id, id, &lease.token, now, lease.until)
            .await?
        {
            Leased::Upload(up) => Ok(Session {
                tus: self.clone(),
                tenant: tenant.clone(),
                up: *up,
                lease,
                settled: false,
            }),
            Leased::NotFound => Err(lease.unused(TusError::NotFound)),
            Leased::Expired => Err(lease.unused(TusError::Gone)),
            Leased::Busy => Err(lease.unused(TusError::Locked)),
        }
    }

    /// The upload's state (`HEAD`). One whose bytes are all there but which is not a file yet
    /// (a crash between the two) is finished first.
    pub async fn head(&self, tenant: &Tenant, id: &str) -> Result<TusUpload, TusError> {
        if !valid_id(id) {
            return Err(TusError::NotFound);
        }
        let up = self
            .meta()
            .tus_get(tenant.id, id)
            .await?
            .ok_or(TusError::NotFound)?;
        if up.expires_at <= now_micros() {
            return Err(TusError::Gone);
        }
        if up.offset < up.length {
            return Ok(up);
        }
        match self.lease(tenant, id).await {
            Ok(mut s) => {
                s.settle().await?;
                Ok(s.up.clone())
            }
            // Being finished by another request, or finished already.
            Err(TusError::Locked | TusError::NotFound) => Ok(up),
            Err(e) => Err(e),
        }
    }

    /// Terminate an upload (`DELETE`): its blob data and its row go.
    pub async fn terminate(&self, tenant: &Tenant, id: &str) -> Result<(), TusError> {
        let mut s = self.lease(tenant, id).await?;
        discard(self.meta(), self.blob(), &s.up).await?;
        self.meta().tus_delete(&s.up.id, &s.lease.token).await?;
        s.lease.armed = false;
        crate::quota::release(self.meta(), &s.up.blob_key).await;
        Ok(())
    }
}

/// Remove what `up` holds in the blob store: its resumable data, and its blob unless that is a
/// file's already (a crash after the commit, before the row went).
async fn discard(meta: &Meta, blob: &Blob, up: &TusUpload) -> Result<(), TusError> {
    blob.discard_resumable(&up.blob_key, &ResumeState(up.store_state.clone()))
        .await?;
    if !meta.key_known(&up.blob_key).await? {
        blob.delete(&up.blob_key).await?;
    }
    Ok(())
}

/// gc: remove uploads expired before now, with their blob data. Returns their blob keys (with
/// `dry_run`, what would go) and how many could not be removed (they are retried next time).
pub async fn reap_expired(
    meta: &Meta,
    blob: &Blob,
    lease: Duration,
    dry_run: bool,
) -> Result<(Vec<BlobKey>, u64), MetaError> {
    let now = now_micros();
    let (mut done, mut failures) = (Vec::new(), 0);
    let mut seen = HashSet::new();
    loop {
        let batch: Vec<TusUpload> = meta
            .tus_expired(now, GC_BATCH)
            .await?
            .into_iter()
            .filter(|u| seen.insert(u.id.clone()))
            .collect();
        if batch.is_empty() {
            break;
        }
        for up in batch {
            if dry_run {
                done.push(up.blob_key);
                continue;
            }
            let token = uuid::Uuid::new_v4().simple().to_string();
            if !meta
                .tus_claim_expired(&up.id, &token, now_micros(), now_micros() + micros(lease))
                .await?
            {
                continue; // Taken up again, or gone.
            }
            match discard(meta, blob, &up).await {
                Ok(()) => {
                    meta.tus_delete(&up.id, &token).await?;
                    crate::quota::release(meta, &up.blob_key).await;
                    done.push(up.blob_key);
                }
                Err(e) => {
                    tracing::warn!(key = %up.blob_key, error = %e, "gc: could not remove an expired upload");
                    failures += 1;
                    meta.tus_release(&up.id, &token).await?;
                }
            }
        }
        if dry_run {
            break;
        }
    }
    Ok((done, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_checksums_parse_sha1_and_sha256_and_refuse_others() {
        use base64::Engine;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let s1: [u8; 20] = <sha1::Sha1 as sha1::Digest>::digest(b"hello world").into();
        assert_eq!(
            Checksum::parse("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Ok(Checksum::Sha1(s1))
        );
        let s256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"x").into();
        assert_eq!(
            Checksum::parse(&format!("sha256 {}", b64(&s256))),
            Ok(Checksum::Sha256(s256))
        );
        for bad in [
            "md5 XrY7u+Ae7tCTyyK7j1rNww==",
            "sha1",
            "sha1 !!!",
            &format!("sha1 {}", b64(&s256)),
            &format!("sha256 {}", b64(&s1)),
        ] {
            assert!(Checksum::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_ids_of_the_generated_shape_name_uploads() {
        assert!(valid_id(&uuid::Uuid::new_v4().simple().to_string()));
        for bad in ["", "x", "../etc", &"A".repeat(32), &"a".repeat(33)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
