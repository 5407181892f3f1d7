//! `mtfu import-seed`: move the original Django service's tenants and files into mtfu's stores
//! (see docs/migrate-from-django.md).
//!
//! It reads the original's PostgreSQL tables `auth_user_tenant` and `file` and its S3 bucket.
//! Tenants keep their name and their Django password hash (verified at login by
//! [`crate::auth::django`], then replaced by mtfu's argon2id); files the original listed (not
//! `delete_flg`, `expire_at` set and not past) become mtfu files with the same owner, resource,
//! resource id, name, visibility and expiry. With the S3 blob store on the original's bucket an
//! object stays where it is (an imported [`BlobKey`]); otherwise it is copied, streamed.
//!
//! Idempotent and resumable: each imported row is recorded in the metadata store (migration
//! 0009, [`crate::meta::seed`]) in the transaction that writes it, and a later run skips it.
//! Nothing is ever deleted from the original's bucket unless `--delete-dead-objects` asks, and
//! then only objects of rows the original no longer listed that no imported row names.
//!
//! [`BlobKey`]: crate::domain::BlobKey

mod files;

use std::collections::{HashMap, HashSet};
use std::fmt;

use futures_util::{StreamExt, pin_mut};

use crate::blob::Blob;
use crate::blob::s3::S3Store;
use crate::config::{BlobBackendKind, Config};
use crate::domain::{Micros, Tenant, TenantId, TenantName, now_micros};
use crate::meta::{Meta, MetaError};

/// What `mtfu import-seed` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The original's PostgreSQL database (`postgres://...`).
    pub database_url: String,
    /// The original's bucket (default: `blobs.s3.bucket`). On the configured S3 store's own
    /// bucket, objects stay in place; anywhere else they are copied.
    pub source_bucket: Option<String>,
    /// Read and report; write nothing.
    pub dry_run: bool,
    /// Also import rows whose `expire_at` passed, expired as they are (invisible).
    pub include_expired: bool,
    /// Do not read objects kept in place to compute their SHA-256 (recorded empty).
    pub no_digest: bool,
    /// Delete the objects of rows the original no longer listed (deleted, expired, no expiry)
    /// that no imported file names.
    pub delete_dead_objects: bool,
}

/// What an import did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    /// Whether objects stay in place (same bucket) or are copied.
    pub in_place: bool,
    pub tenants_seen: u64,
    pub tenants_imported: u64,
    pub tenants_already: u64,
    pub files_seen: u64,
    pub files_imported: u64,
    pub files_already: u64,
    pub bytes_imported: u64,
    /// Rows not imported, counted by reason.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// One line per row (or tenant) skipped for a reason an operator should look at, and per
    /// pair of rows sharing one object.
    pub notes: Vec<String>,
    /// Objects under `asset_imgs/` that no row names (never deleted by the import).
    pub unreferenced_objects: u64,
    /// Empty `asset_imgs/<user>/` markers the original wrote for each tenant.
    pub marker_objects: u64,
    pub dead_objects_deleted: u64,
}

impl ImportReport {
    fn skip(&mut self, reason: &str, note: Option<String>) {
        *self.skipped.entry(reason.to_owned()).or_default() += 1;
        if let Some(n) = note {
            self.notes.push(n);
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.dry_run {
            "dry run, nothing written"
        } else {
            "done"
        };
        let mode = if self.in_place {
            "objects kept in place"
        } else {
            "objects copied"
        };
        writeln!(f, "import-seed: {what} ({mode})")?;
        writeln!(
            f,
            "tenants: {} seen, {} imported, {} already imported",
            self.tenants_seen, self.tenants_imported, self.tenants_already
        )?;
        writeln!(
            f,
            "files: {} seen, {} imported ({} bytes), {} already imported",
            self.files_seen, self.files_imported, self.bytes_imported, self.files_already
        )?;
        for (reason, n) in &self.skipped {
            writeln!(f, "skipped: {n} {reason}")?;
        }
        writeln!(
            f,
            "bucket: {} objects no row names (left alone), {} empty tenant markers, {} dead \
             objects deleted",
            self.unreferenced_objects, self.marker_objects, self.dead_objects_deleted
        )?;
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("original database: {0}")]
    Source(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] crate::blob::BlobError),
    #[error("{0}")]
    Config(String),
}

/// The original's tenants by their `auth_user_tenant.id`: the mtfu tenant, or why none.
type Owners = HashMap<i64, Result<Tenant, &'static str>>;

/// Run the import against the configured stores.
pub async fn import_seed(
    cfg: &Config,
    meta: &Meta,
    blob: &Blob,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport {
        dry_run: opts.dry_run,
        ..ImportReport::default()
    };
    let bucket = opts
        .source_bucket
        .clone()
        .unwrap_or_else(|| cfg.blobs.s3.bucket.clone());
    if bucket.is_empty() {
        return Err(ImportError::Config(
            "the original's bucket: give --source-bucket (or blobs.s3.bucket)".into(),
        ));
    }
    report.in_place = cfg.blobs.backend == BlobBackendKind::S3 && bucket == cfg.blobs.s3.bucket;
    let source_cfg = crate::config::S3BlobConfig {
        bucket,
        key_prefix: String::new(),
        ..cfg.blobs.s3.clone()
    };
    let budget = crate::budget::Budget::new(cfg.limits.buffer_budget);
    let source = S3Store::open(&source_cfg, budget).await?;
    let (db, conn) = tokio_postgres::connect(&opts.database_url, tokio_postgres::NoTls).await?;
    let conn = tokio::spawn(conn);
    let result = async {
        let owners = import_tenants(&db, meta, opts, &mut report).await?;
        let mut files = files::FileImport::new(meta, blob, &source, opts, report.in_place);
        files.run(&db, &owners, &mut report).await?;
        files.sweep_bucket(&mut report).await?;
        Ok(report)
    }
    .await;
    drop(db);
    let _ = conn.await;
    result
}

/// Import the original's users; returns each one's tenant (or why it has none).
async fn import_tenants(
    db: &tokio_postgres::Client,
    meta: &Meta,
    opts: &ImportOptions,
    report: &mut ImportReport,
) -> Result<Owners, ImportError> {
    let rows = db
        .query_raw(
            "SELECT id::bigint, COALESCE(password, ''), username FROM auth_user_tenant ORDER BY id",
            std::iter::empty::<i64>(),
        )
        .await?;
    pin_mut!(rows);
    let mut owners = Owners::new();
    let now = now_micros();
    while let Some(row) = rows.next().await {
        let row = row?;
        let (orig, password, username): (i64, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        report.tenants_seen += 1;
        owners.insert(
            orig,
            tenant(meta, opts, report, orig, &password, &username, now).await?,
        );
    }
    Ok(owners)
}

async fn tenant(
    meta: &Meta,
    opts: &ImportOptions,
    report: &mut ImportReport,
    orig: i64,
    password: &str,
    username: &str,
    now: Micros,
) -> Result<Result<Tenant, &'static str>, ImportError> {
    if let Some(id) = meta.seed_tenant(orig).await? {
        report.tenants_already += 1;
        return Ok(match meta.tenant_by_id(id).await? {
            Some(t) => Ok(t),
            None => Err("their tenant was removed from mtfu since the import"),
        });
    }
    // Names are imported exactly as they are (the name a tenant logs in with), or not at all:
    // mtfu never renames one. A name outside mtfu's username rule (Django's: letters, digits
    // and @.+-_, which the original did not enforce) cannot be one of mtfu's tenants.
    let name = match TenantName::parse(username) {
        Ok(n) => n,
        Err(m) => {
            report.skip(
                "tenants whose username mtfu refuses (their files are skipped too)",
                Some(format!("tenant {orig} {username:?} not imported: {m}")),
            );
            return Ok(Err("their owner's username is refused by mtfu"));
        }
    };
    if let Err(m) = TenantName::new_account(username).and_then(|n| {
        (n == name)
            .then_some(())
            .ok_or_else(|| "not NFKC".to_owned())
    }) {
        report.notes.push(format!(
            "tenant {orig} {username:?} imported under its exact name, although a new account \
             could not take it: {m}"
        ));
    }
    // An empty password field is Django's "no password": unusable.
    let hash = if password.is_empty() { "!" } else { password };
    if opts.dry_run {
        report.tenants_imported += 1;
        return Ok(Ok(Tenant {
            id: TenantId(-orig),
            name,
        }));
    }
    let id = match meta.create_tenant(&name, hash).await {
        Ok(id) => id,
        Err(MetaError::Conflict(m)) => match meta.tenant_by_name(username).await? {
            // An earlier run created it and stopped before recording it: the same name with
            // the original's very hash (no mtfu hash looks like a Django one).
            Some((t, h)) if h == hash => t.id,
            _ => {
                report.skip(
                    "tenants whose name an mtfu tenant already has (their files are skipped too)",
                    Some(format!("tenant {orig} {username:?} not imported: {m}")),
                );
                return Ok(Err("their owner's name is taken in mtfu"));
            }
        },
        Err(e) => return Err(e.into()),
    };
    meta.record_seed_tenant(orig, id, now).await?;
    report.tenants_imported += 1;
    Ok(Ok(Tenant { id, name }))
}

/// Locations seen, for the shared-object warnings and the bucket sweep.
#[derive(Default)]
struct Seen {
    /// Live (imported) rows: location -> the first row's id.
    live: HashMap<String, String>,
    /// Every row's location.
    all: HashSet<String>,
    /// Locations of rows the original no longer listed.
    dead: HashSet<String>,
}
