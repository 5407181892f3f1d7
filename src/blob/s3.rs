//! S3 (or S3-compatible) blob store, with `aws-sdk-s3`.
//!
//! An object's key is `key_prefix` + the blob key (`t/{tenant}/{hex}`). A write is buffered one
//! part at a time: a body no larger than one part goes in one `PutObject` when the writer
//! finishes; a larger one becomes a multipart upload, whose parts are sent as they fill, at most
//! `parts_in_flight` at once while the next one fills. `CompleteMultipartUpload` is sent only by
//! [`BlobWriter::finish`], so nothing is visible before the whole body arrived; an error, an
//! abort or a dropped writer aborts the multipart upload (retried in the background while the
//! store does not answer).
//!
//! Memory: the writer reserves a whole part of the shared [`Budget`] before it fills a part and
//! releases it when that part's `UploadPart` has finished. It never waits for budget while a
//! partly filled part holds some, so uploads cannot deadlock each other; the parts it holds while
//! waiting are in flight to S3 and are released when S3 answers. Part buffers are allocated per
//! part, not pooled: a pool kept rest + budget resident for ever after a load, while the
//! allocator (jemalloc) reuses freed buffers and gives them back when the load ends.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use sha2::{Digest, Sha256};

mod inventory;
mod resumable;
mod writer;

use writer::S3Writer;

use super::{
    BlobBackend, BlobError, BlobResult, BlobWriter, ByteStream, Held, Piece, ResumableWriter,
    ResumeState,
};
use crate::budget::Budget;
use crate::config::S3BlobConfig;
use crate::domain::BlobKey;

/// Attempts of one S3 request (the SDK's standard retry mode: retryable errors only, with
/// exponential backoff and jitter).
const MAX_ATTEMPTS: u32 = 3;
/// A dropped or failed upload's `AbortMultipartUpload` is retried in the background this long.
const ABORT_RETRY_FOR: Duration = Duration::from_secs(300);

struct Shared {
    client: Client,
    bucket: String,
    prefix: String,
    part_size: usize,
    parts_in_flight: usize,
    budget: Arc<Budget>,
    /// How long a read may wait for S3 to start answering, retries included
    /// (`blobs.s3.operation_timeout_secs`, below the server's idle timeout).
    read_deadline: Duration,
}

pub struct S3Store {
    s: Arc<Shared>,
}

/// An S3 failure as a [`BlobError`]: no answer, a timeout, a 5xx, an answer the SDK cannot
/// read, or a refusal of the store's own (its bucket gone, mtfu's credentials refused) is
/// `Unavailable` (the store is failing: a 503, and retrying later may work); a missing key is
/// `NotFound`. What is left is a request S3 found wrong, which is mtfu's bug.
fn classify<E>(op: &str, e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_owned);
    let unreadable = unreadable_success(&e);
    let message = format!("S3 {op}: {}", DisplayErrorContext(&e));
    match (&e, status, code.as_deref()) {
        (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_), _, _) => {
            BlobError::Unavailable(message)
        }
        (_, _, Some(refusal)) if STORE_REFUSALS.contains(&refusal) => {
            BlobError::Unavailable(message)
        }
        (_, _, Some("NoSuchKey" | "NotFound" | "NoSuchUpload")) | (_, Some(404), _) => {
            BlobError::NotFound
        }
        (_, Some(s), _) if s >= 500 => BlobError::Unavailable(message),
        (_, _, Some("SlowDown" | "RequestTimeout")) => BlobError::Unavailable(message),
        (SdkError::ResponseError(_), _, _) => BlobError::Unavailable(message),
        _ if unreadable => BlobError::Unavailable(message),
        _ => BlobError::Other(message),
    }
}

/// Error codes that say the store, not the request, is wrong: the bucket is gone, or the
/// credentials mtfu was given are refused (an operator's matter; the client gets a 503).
const STORE_REFUSALS: &[&str] = &[
    "NoSuchBucket",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AccountProblem",
];

/// A 2xx answer whose body the SDK could not read as the operation's result (a store that
/// speaks S3 loosely).
fn unreadable_success<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    matches!(e, SdkError::ServiceError(_))
        && e.code().is_none()
        && e.raw_response().is_some_and(|r| r.status().is_success())
}

/// The server does not implement the operation (s3s-fs has no `ListMultipartUploads`).
fn not_implemented<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    e.code() == Some("NotImplemented")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 501)
}

fn sha256_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

impl S3Store {
    pub async fn open(cfg: &S3BlobConfig, budget: Arc<Budget>) -> BlobResult<S3Store> {
        // Our own TLS stays on ring: the SDK's HTTPS client is built with rustls + ring.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(cfg.region.clone()))
            .load()
            .await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(cfg.force_path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
                    .read_timeout(Duration::from_secs(cfg.read_timeout_secs))
                    .operation_attempt_timeout(Duration::from_secs(300))
                    .build(),
            );
        if let Some(u) = &cfg.endpoint_url {
            b = b.endpoint_url(u);
        }
        if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            b = b.credentials_provider(Credentials::new(id, secret, None, None, "mtfu-config"));
        }
        let part_size = usize::try_from(cfg.part_size)
            .map_err(|_| BlobError::Other("blobs.s3.part_size too large".into()))?;
        Ok(S3Store {
            s: Arc::new(Shared {
                client: Client::from_conf(b.build()),
                bucket: cfg.bucket.clone(),
                prefix: cfg.key_prefix.clone(),
                part_size,
                parts_in_flight: cfg.parts_in_flight.max(1),
                budget,
                read_deadline: Duration::from_secs(cfg.operation_timeout_secs),
            }),
        })
    }

    /// The SDK client and bucket, for tests and tools.
    pub fn client(&self) -> (&Client, &str) {
        (&self.s.client, &self.s.bucket)
    }
}

impl Shared {
    fn object_key(&self, key: &BlobKey) -> String {
        match key.imported_object() {
            // An object the original service wrote: its own key, outside mtfu's prefix.
            Some(object) => object.to_owned(),
            None => format!("{}{}", self.prefix, key.as_str()),
        }
    }

    /// The generated key an object under mtfu's prefix holds; never an imported one.
    fn blob_key(&self, object_key: &str) -> Option<BlobKey> {
        BlobKey::from_generated(object_key.strip_prefix(&self.prefix)?)
    }

    async fn abort_once(&self, key: &str, upload_id: &str) -> BlobResult<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify("AbortMultipartUpload", e) {
                BlobError::NotFound => Ok(()), // already gone
                other => Err(other),
            },
        }
    }

    /// `CompleteMultipartUpload` of `upload_id` from `parts` into `object`, which then holds
    /// `length` bytes. Two answers leave the outcome unknown, and the object itself then says
    /// whether the upload completed ([`Shared::completed_before`]): `NoSuchUpload` (a retried
    /// completion whose first answer was lost) and a 2xx whose body the SDK cannot read (moto 5
    /// names its answer's root element `CompleteMultipartUploadResponse`, not S3's `...Result`).
    async fn complete(
        &self,
        object: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        length: u64,
    ) -> BlobResult<()> {
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(object)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        let e = match done {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let unreadable = unreadable_success(&e);
        match classify("CompleteMultipartUpload", e) {
            BlobError::NotFound => self.completed_before(object, length).await,
            e if unreadable => match self.completed_before(object, length).await {
                Err(BlobError::NotFound) => Err(e),
                checked => checked,
            },
            e => Err(e),
        }
    }

    /// After S3 said the multipart upload is gone, or answered its completion unreadably: done
    /// already if the object is there whole.
    async fn completed_before(&self, object_key: &str, length: u64) -> BlobResult<()> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(object_key)
            .send()
            .await
            .map_err(|e| classify("HeadObject", e))?;
        if head.content_length().and_then(|l| u64::try_from(l).ok()) == Some(length) {
            Ok(())
        } else {
            Err(BlobError::NotFound)
        }
    }

    /// Abort a multipart upload, retrying with backoff while the store does not answer.
    async fn abort_with_retries(self: Arc<Self>, key: String, upload_id: String) {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(500);
        loop {
            match self.abort_once(&key, &upload_id).await {
                Ok(()) => return,
                Err(e) if started.elapsed() > ABORT_RETRY_FOR => {
                    tracing::warn!(key, error = %e, "gave up aborting a multipart upload; gc or a bucket lifecycle rule must remove it");
                    return;
                }
                Err(e) => tracing::debug!(key, error = %e, "abort multipart upload; retrying"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }

    /// In-progress multipart uploads under `prefix`: (key, upload id, initiated). Empty if the
    /// server does not implement the listing.
    async fn multipart_uploads(
        &self,
        prefix: &str,
    ) -> BlobResult<Vec<(String, String, Option<SystemTime>)>> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let r = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let page = match r {
                Ok(p) => p,
                Err(e) if not_implemented(&e) => {
                    tracing::debug!("the S3 server does not list multipart uploads");
                    return Ok(out);
                }
                Err(e) => return Err(classify("ListMultipartUploads", e)),
            };
            for u in page.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    let at = u.initiated().and_then(|t| SystemTime::try_from(*t).ok());
                    out.push((k.to_owned(), id.to_owned(), at));
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(out);
            }
        }
    }
}

#[async_trait]
impl BlobBackend for S3Store {
    async fn create(&self, key: &BlobKey, max_size: u64) -> BlobResult<Box<dyn BlobWriter>> {
        Ok(Box::new(S3Writer::new(
            self.s.clone(),
            self.s.object_key(key),
            max_size,
        )))
    }

    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> BlobResult<ByteStream> {
        let mut req = self
            .s
            .client
            .get_object()
            .bucket(&self.s.bucket)
            .key(self.s.object_key(key));
        if let Some(r) = &range {
            if r.end <= r.start {
                return Ok(Box::pin(futures_util::stream::empty()));
            }
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        // A client waits for this without receiving anything: S3 must answer (or be given up
        // on, a 503) before the client's connection counts as idle.
        let out = tokio::time::timeout(self.s.read_deadline, req.send())
            .await
            .map_err(|_| {
                BlobError::Unavailable(format!(
                    "S3 GetObject: no answer within {:?} (blobs.s3.operation_timeout_secs)",
                    self.s.read_deadline
                ))
            })?
            .map_err(|e| classify("GetObject", e))?;
        let stream = futures_util::stream::try_unfold(out.body, |mut body| async move {
            let next = body.try_next().await.map_err(std::io::Error::other)?;
            Ok(next.map(|chunk| (chunk, body)))
        });
        Ok(Box::pin(stream))
    }

    async fn size_of(&self, key: &BlobKey) -> BlobResult<u64> {
        let head = self
            .s
            .client
            .head_object()
            .bucket(&self.s.bucket)
            .key(self.s.object_key(key))
            .send()
            .await
            .map_err(|e| classify("HeadObject", e))?;
        Ok(head.content_length().unwrap_or(0).max(0) as u64)
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        let object = self.s.object_key(key);
        match self
            .s
            .client
            .delete_object()
            .bucket(&self.s.bucket)
            .key(&object)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => match classify("DeleteObject", e) {
                BlobError::NotFound => {}
                other => return Err(other),
            },
        }
        // An unfinished write of the key (a crashed upload) is a multipart upload.
        for (k, id, _) in self.s.multipart_uploads(&object).await? {
            if k == object {
                self.s.abort_once(&k, &id).await?;
            }
        }
        Ok(())
    }

    async fn inventory(&self) -> BlobResult<Vec<Held>> {
        self.s.inventory().await
    }

    async fn quarantine(&self, key: &BlobKey, partial_before: SystemTime) -> BlobResult<()> {
        self.s.quarantine(key, partial_before).await
    }

    async fn delete_piece(&self, piece: &Piece) -> BlobResult<()> {
        self.s.delete_piece(piece).await
    }

    async fn ping(&self) -> BlobResult<()> {
        self.s
            .client
            .head_bucket()
            .bucket(&self.s.bucket)
            .send()
            .await
            .map_err(|e| match classify("HeadBucket", e) {
                BlobError::NotFound => {
                    BlobError::Unavailable(format!("S3 bucket {} not found", self.s.bucket))
                }
                other => other,
            })?;
        Ok(())
    }

    async fn presign_get(
        &self,
        key: &BlobKey,
        expires_in: Duration,
        file_name: &str,
        content_type: &str,
    ) -> BlobResult<Option<String>> {
        let cfg = PresigningConfig::expires_in(expires_in)
            .map_err(|e| BlobError::Other(format!("presign: {e}")))?;
        let req = self
            .s
            .client
            .get_object()
            .bucket(&self.s.bucket)
            .key(self.s.object_key(key))
            .response_content_disposition(crate::domain::disposition::content_disposition(
                file_name,
            ))
            .response_content_type(content_type)
            .presigned(cfg)
            .await
            .map_err(|e| classify("presign GetObject", e))?;
        Ok(Some(req.uri().to_owned()))
    }

    async fn begin_resumable(&self, key: &BlobKey) -> BlobResult<ResumeState> {
        self.begin(key).await
    }

    async fn resume(
        &self,
        key: &BlobKey,
        offset: u64,
        state: &ResumeState,
        length: u64,
        room: u64,
    ) -> BlobResult<Box<dyn ResumableWriter>> {
        self.resume_at(key, offset, state, length, room).await
    }

    async fn complete_resumable(
        &self,
        key: &BlobKey,
        length: u64,
        state: &ResumeState,
    ) -> BlobResult<()> {
        self.complete(key, length, state).await
    }

    async fn discard_resumable(&self, key: &BlobKey, state: &ResumeState) -> BlobResult<()> {
        self.discard(key, state).await
    }

    async fn drop_obsolete(&self, key: &BlobKey, obsolete: &[String]) -> BlobResult<()> {
        self.forget(key, obsolete).await
    }
}
