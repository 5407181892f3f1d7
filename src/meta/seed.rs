//! What `mtfu import-seed` keeps in the metadata store (migration 0009): which row of the
//! original service became which tenant or file of mtfu's. A second import skips what a first
//! one did (also files deleted in mtfu since: an import never resurrects one), and a token the
//! original issued finds its tenant through its `user_id`.
//!
//! A separate trait from [`MetaBackend`](super::MetaBackend) (of which it is a supertrait), with
//! its SQL in `sql/seed.rs`.

use async_trait::async_trait;

use super::MetaResult;
use crate::domain::{Micros, NewFile, Tenant, TenantId};

#[async_trait]
pub trait SeedStore {
    /// The tenant the original's user `orig_id` was imported as.
    async fn seed_tenant(&self, orig_id: i64) -> MetaResult<Option<TenantId>>;
    /// Record that the original's user `orig_id` is `tenant` (a no-op when it is known).
    async fn record_seed_tenant(
        &self,
        orig_id: i64,
        tenant: TenantId,
        now: Micros,
    ) -> MetaResult<()>;
    /// Replace an imported tenant's Django hash by mtfu's own, if it still is `old` (a password
    /// changed meanwhile stays). Sessions go on: the session epoch does not change.
    async fn upgrade_password(&self, tenant: TenantId, old: &str, new: &str) -> MetaResult<bool>;
    /// Whether the original's file `orig_id` was imported (and perhaps deleted since).
    async fn seed_file_known(&self, orig_id: &str) -> MetaResult<bool>;
    /// In one transaction: insert the file row (created at `now`) and its mapping from
    /// `orig_id`, and drop the upload intent of its blob key if there is one (a copied
    /// object). `None`: `orig_id` was imported already, nothing changed.
    /// [`MetaError::Conflict`](super::MetaError::Conflict): the tenant has a live file of that
    /// resource, resource id and name.
    async fn import_file(
        &self,
        orig_id: &str,
        tenant: &Tenant,
        file: &NewFile,
        now: Micros,
    ) -> MetaResult<Option<String>>;
}

/// Checks both stores' unit tests run.
#[cfg(test)]
pub(crate) mod testing {
    use crate::domain::{
        BlobKey, FileName, NewFile, Resource, ResourceId, Tenant, TenantName, now_micros,
    };
    use crate::meta::{Claim, MetaBackend};

    async fn tenant(db: &dyn MetaBackend, name: &str) -> Tenant {
        let name = TenantName::parse(name).expect("name");
        let id = db.create_tenant(&name, "x").await.expect("tenant");
        Tenant { id, name }
    }

    fn file(rid: &str, key: &BlobKey) -> NewFile {
        NewFile {
            resource: Resource::parse("doc").expect("resource"),
            resource_id: ResourceId::parse(rid).expect("resource id"),
            name: FileName::parse("a.txt").expect("name"),
            blob_key: key.clone(),
            size: 1,
            content_type: "text/plain".into(),
            sha256: String::new(),
            is_public: false,
            expire_at: None,
        }
    }

    /// Files sharing one imported key: replacing, deleting and reaping, or removing the tenant
    /// of, one of them never queues the key for deletion while another row names it; the last
    /// one does. Importing a row twice changes nothing.
    pub(crate) async fn shared_keys_go_with_the_last_row(db: &dyn MetaBackend) {
        let (t, u) = (tenant(db, "sharer").await, tenant(db, "other").await);
        let k = BlobKey::imported("asset_imgs/sharer/a.txt").expect("key");
        let now = now_micros();
        assert!(
            db.import_file("1", &t, &file("1", &k), now)
                .await
                .expect("import")
                .is_some()
        );
        assert!(
            db.import_file("2", &t, &file("2", &k), now)
                .await
                .expect("import")
                .is_some()
        );
        assert!(
            db.import_file("1", &t, &file("1", &k), now)
                .await
                .expect("again")
                .is_none()
        );
        assert!(db.seed_file_known("2").await.expect("known"));
        // A new upload replaces the first: the shared key is not handed back, nor queued.
        let fresh = BlobKey::generate(t.id);
        db.record_intent(&t, &fresh, now, i64::MAX)
            .await
            .expect("intent");
        let (_, replaced) = db
            .commit_file(&t, file("1", &fresh), now, Claim::Intent)
            .await
            .expect("commit");
        assert_eq!(replaced, None);
        assert!(!db.garbage(100).await.expect("garbage").contains(&k));
        // The other one is deleted and reaped: the last row naming the key is gone.
        let (r, rid) = (
            Resource::parse("doc").expect("r"),
            ResourceId::parse("2").expect("id"),
        );
        db.delete_files(&t, &r, &rid, now).await.expect("delete");
        db.reap_files(now_micros() + 1, 0).await.expect("reap");
        assert!(db.garbage(100).await.expect("garbage").contains(&k));
        // Across tenants: removing one tenant keeps a key another tenant's row names.
        let k2 = BlobKey::imported("asset_imgs/shared/b.txt").expect("key");
        db.import_file("3", &t, &file("3", &k2), now)
            .await
            .expect("import");
        db.import_file("4", &u, &file("3", &k2), now)
            .await
            .expect("import");
        assert!(db.remove_tenant(&t.name).await.expect("remove"));
        assert!(!db.garbage(100).await.expect("garbage").contains(&k2));
        assert!(db.remove_tenant(&u.name).await.expect("remove"));
        assert!(db.garbage(100).await.expect("garbage").contains(&k2));
    }
}
