//! The file rows of `mtfu import-seed`: each row the original listed becomes an mtfu file whose
//! blob is the original's object, in place or copied (streamed, bounded memory), and the bucket
//! sweep that reports objects no row names.

use futures_util::{StreamExt, pin_mut};
use sha2::{Digest, Sha256};

use super::{ImportError, ImportOptions, ImportReport, Owners, Seen};
use crate::blob::s3::S3Store;
use crate::blob::{Blob, BlobBackend, BlobError};
use crate::domain::{BlobKey, FileName, Micros, NewFile, Resource, ResourceId, Tenant, now_micros};
use crate::meta::{Meta, MetaError};

/// Where the original kept its objects (`asset_imgs/<username>/<name>`).
const ORIGINAL_PREFIX: &str = "asset_imgs/";
/// Objects no row names that are listed one by one in the report (the count is always given).
const LISTED: usize = 20;
/// Bytes of an object's start that decide its content type.
const SNIFF: usize = 8192;

pub(super) struct FileImport<'a> {
    meta: &'a Meta,
    blob: &'a Blob,
    source: &'a S3Store,
    opts: &'a ImportOptions,
    in_place: bool,
    seen: Seen,
}

/// One row of the original's `file` table.
struct Row {
    id: String,
    owner: i64,
    name: String,
    location: String,
    expire_at: Option<Micros>,
    is_public: bool,
    resource: String,
    resource_id: String,
    deleted: bool,
}

/// What was read of an object: size, SHA-256 (hex; empty when not read), content type.
struct Read {
    size: u64,
    sha256: String,
    content_type: String,
}

impl<'a> FileImport<'a> {
    pub(super) fn new(
        meta: &'a Meta,
        blob: &'a Blob,
        source: &'a S3Store,
        opts: &'a ImportOptions,
        in_place: bool,
    ) -> Self {
        FileImport {
            meta,
            blob,
            source,
            opts,
            in_place,
            seen: Seen::default(),
        }
    }

    pub(super) async fn run(
        &mut self,
        db: &tokio_postgres::Client,
        owners: &Owners,
        report: &mut ImportReport,
    ) -> Result<(), ImportError> {
        let rows = db
            .query_raw(
                "SELECT id::text, tenant_id::bigint, name, location,
                        (extract(epoch FROM expire_at) * 1000000)::bigint,
                        COALESCE(is_public, false), COALESCE(resource, ''),
                        COALESCE(resource_id::text, ''), COALESCE(delete_flg, false)
                   FROM file ORDER BY id",
                std::iter::empty::<i64>(),
            )
            .await?;
        pin_mut!(rows);
        let now = now_micros();
        while let Some(r) = rows.next().await {
            let r = r?;
            let row = Row {
                id: r.try_get(0)?,
                owner: r.try_get(1)?,
                name: r.try_get(2)?,
                location: r.try_get(3)?,
                expire_at: r.try_get(4)?,
                is_public: r.try_get(5)?,
                resource: r.try_get(6)?,
                resource_id: r.try_get(7)?,
                deleted: r.try_get(8)?,
            };
            report.files_seen += 1;
            self.row(row, owners, now, report).await?;
        }
        Ok(())
    }

    async fn row(
        &mut self,
        row: Row,
        owners: &Owners,
        now: Micros,
        report: &mut ImportReport,
    ) -> Result<(), ImportError> {
        self.seen.all.insert(row.location.clone());
        // What the original did not list stays unlisted: deleted rows (a re-upload after a
        // delete reused the row without clearing delete_flg: hidden there, hidden here), rows
        // with no expiry, and (unless asked) expired ones.
        let dead = if row.deleted {
            Some("deleted rows (delete_flg)")
        } else if row.expire_at.is_none() {
            Some("rows with no expire_at (the original never listed them)")
        } else if row.expire_at < Some(now) && !self.opts.include_expired {
            Some("expired rows")
        } else {
            None
        };
        if let Some(reason) = dead {
            report.skip(reason, None);
            self.seen.dead.insert(row.location);
            return Ok(());
        }
        match self.seen.live.get(&row.location) {
            Some(first) => report.notes.push(format!(
                "files {first} and {} share the object {:?} (the original overwrote the first \
                 one's bytes): both imported, with its bytes",
                row.id, row.location
            )),
            None => {
                self.seen.live.insert(row.location.clone(), row.id.clone());
            }
        }
        let owner = match owners.get(&row.owner) {
            Some(Ok(t)) => t,
            Some(Err(why)) => {
                report.skip(&format!("rows whose owner was not imported ({why})"), None);
                return Ok(());
            }
            None => {
                report.skip("rows with no owner in auth_user_tenant", None);
                return Ok(());
            }
        };
        if self.meta.seed_file_known(&row.id).await? {
            report.files_already += 1;
            return Ok(());
        }
        let parsed = (|| {
            let name = FileName::parse(&row.name)?;
            let resource = Resource::parse(&row.resource)?;
            let resource_id = ResourceId::parse(&row.resource_id)?;
            let key = BlobKey::imported(&row.location)
                .ok_or_else(|| format!("location {:?} is no S3 key", row.location))?;
            Ok::<_, String>((name, resource, resource_id, key))
        })();
        let (name, resource, resource_id, object) = match parsed {
            Ok(p) => p,
            Err(m) => {
                report.skip(
                    "rows mtfu cannot hold (see the notes)",
                    Some(format!("file {} not imported: {m}", row.id)),
                );
                return Ok(());
            }
        };
        let mut file = NewFile {
            resource,
            resource_id,
            name,
            blob_key: object.clone(),
            size: 0,
            content_type: String::new(),
            sha256: String::new(),
            is_public: row.is_public,
            expire_at: row.expire_at,
        };
        let got = if self.opts.dry_run {
            self.source.size_of(&object).await.map(|size| Read {
                size,
                sha256: String::new(),
                content_type: String::new(),
            })
        } else if self.in_place {
            self.read_in_place(&object, file.name.as_str()).await
        } else {
            let key = BlobKey::generate(owner.id);
            let got = self.copy(owner, &object, &key, file.name.as_str()).await;
            file.blob_key = key;
            got
        };
        let got = match got {
            Ok(g) => g,
            Err(BlobError::NotFound) => {
                report.skip(
                    "rows whose object is missing from the bucket",
                    Some(format!(
                        "file {} not imported: no object {:?}",
                        row.id, row.location
                    )),
                );
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if self.opts.dry_run {
            report.files_imported += 1;
            report.bytes_imported += got.size;
            return Ok(());
        }
        (file.size, file.sha256, file.content_type) = (got.size, got.sha256, got.content_type);
        let done = self.meta.import_file(&row.id, owner, &file, now).await;
        if !matches!(done, Ok(Some(_))) && !self.in_place {
            // The copy is not a file: give it up (its intent, then its blob).
            if self.meta.drop_intent(&file.blob_key).await? {
                let _ = self.blob.delete(&file.blob_key).await;
            }
        }
        match done {
            Ok(Some(_)) => {
                report.files_imported += 1;
                report.bytes_imported += file.size;
            }
            Ok(None) => report.files_already += 1,
            Err(MetaError::Conflict(m)) => report.skip(
                "rows clashing with another live file of the same resource and name",
                Some(format!("file {} not imported: {m}", row.id)),
            ),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Size, and unless `--no-digest` the SHA-256 read through once, of an object kept where
    /// it is.
    async fn read_in_place(&self, object: &BlobKey, name: &str) -> Result<Read, BlobError> {
        let size = self.source.size_of(object).await?;
        if self.opts.no_digest {
            let content_type = crate::content_type::decide(None, &[], name).stored;
            return Ok(Read {
                size,
                sha256: String::new(),
                content_type,
            });
        }
        self.stream(object, name, None).await
    }

    /// Copy `object` to the configured store under the generated `key`, streamed; the upload
    /// intent recorded first lets gc find the copy if the import stops half-way.
    async fn copy(
        &self,
        owner: &Tenant,
        object: &BlobKey,
        key: &BlobKey,
        name: &str,
    ) -> Result<Read, BlobError> {
        let size = self.source.size_of(object).await?;
        let now = now_micros();
        self.meta
            .record_intent(owner, key, now, now + 24 * 3600 * 1_000_000)
            .await
            .map_err(|e| BlobError::Unavailable(e.to_string()))?;
        let mut w = self.blob.create(key, size).await?;
        let got = self.stream(object, name, Some(&mut w)).await;
        match got {
            Ok(g) => {
                w.finish().await?;
                Ok(g)
            }
            Err(e) => {
                let _ = w.abort().await;
                if let Ok(true) = self.meta.drop_intent(key).await {
                    let _ = self.blob.delete(key).await;
                }
                Err(e)
            }
        }
    }

    /// Read `object` once: its size, SHA-256 and content type, writing each chunk to `to`.
    async fn stream(
        &self,
        object: &BlobKey,
        name: &str,
        mut to: Option<&mut Box<dyn crate::blob::BlobWriter>>,
    ) -> Result<Read, BlobError> {
        let mut s = self.source.read(object, None).await?;
        let (mut h, mut size, mut head) = (Sha256::new(), 0u64, Vec::new());
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| BlobError::Unavailable(e.to_string()))?;
            h.update(&chunk);
            size += chunk.len() as u64;
            if head.len() < SNIFF {
                let n = (SNIFF - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..n]);
            }
            if let Some(w) = to.as_mut() {
                w.write(chunk).await?;
            }
        }
        Ok(Read {
            size,
            sha256: hex::encode(h.finalize()),
            content_type: crate::content_type::decide(None, &head, name).stored,
        })
    }

    /// Report the objects under `asset_imgs/` that no row names (never deleted), and with
    /// `--delete-dead-objects` delete those of rows the original no longer listed.
    pub(super) async fn sweep_bucket(&self, report: &mut ImportReport) -> Result<(), ImportError> {
        let (client, bucket) = self.source.client();
        let mut token = None::<String>;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(ORIGINAL_PREFIX)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| BlobError::Unavailable(format!("ListObjectsV2: {e}")))?;
            for o in page.contents() {
                let Some(k) = o.key() else { continue };
                if k.ends_with('/') && o.size().unwrap_or(0) == 0 {
                    report.marker_objects += 1;
                } else if !self.seen.all.contains(k) {
                    report.unreferenced_objects += 1;
                    if report.unreferenced_objects as usize <= LISTED {
                        report
                            .notes
                            .push(format!("object {k:?}: no row names it (left alone)"));
                    }
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if page.is_truncated() != Some(true) || token.is_none() {
                break;
            }
        }
        if !self.opts.delete_dead_objects {
            return Ok(());
        }
        for location in &self.seen.dead {
            let Some(key) = BlobKey::imported(location) else {
                continue;
            };
            // Never an object a row the original listed names, nor one an mtfu file names.
            if self.seen.live.contains_key(location) || self.meta.key_known(&key).await? {
                continue;
            }
            if !self.opts.dry_run {
                self.source.delete(&key).await?;
            }
            report.dead_objects_deleted += 1;
        }
        Ok(())
    }
}
