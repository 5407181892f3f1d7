//! Checks shared by the stores' unit tests: each store's tests run these against a fresh
//! database of its kind.

use super::{ListCursor, ListFilter, MetaBackend};
use crate::domain::{
    BlobKey, FileName, FileRecord, NewFile, Resource, ResourceId, Tenant, TenantName, now_micros,
};

async fn tenant(db: &dyn MetaBackend, name: &str) -> Tenant {
    let name = TenantName::parse(name).expect("tenant name");
    let id = db.create_tenant(&name, "x").await.expect("create tenant");
    Tenant { id, name }
}

async fn commit(db: &dyn MetaBackend, owner: &Tenant, resource_id: &str, name: &str, public: bool) {
    let file = NewFile {
        resource: Resource::parse("doc").expect("resource"),
        resource_id: ResourceId::parse(resource_id).expect("resource id"),
        name: FileName::parse(name).expect("file name"),
        blob_key: BlobKey::generate(owner.id),
        size: 1,
        content_type: "text/plain".into(),
        sha256: "0".repeat(64),
        is_public: public,
        expire_at: None,
    };
    db.record_intent(owner, &file.blob_key, now_micros(), i64::MAX)
        .await
        .expect("intent");
    db.commit_file(owner, file, now_micros(), super::Claim::Intent)
        .await
        .expect("commit");
}

/// Every page of `limit` through the cursor, until a short page.
async fn pages(
    db: &dyn MetaBackend,
    viewer: &Tenant,
    filter: &ListFilter,
    limit: u64,
) -> Vec<FileRecord> {
    let mut all = Vec::new();
    let mut cursor: Option<ListCursor> = None;
    loop {
        // Through the opaque form, as a client would send it back.
        let after = cursor.map(|c| ListCursor::decode(&c.encode()).expect("decode"));
        let page = db
            .list_files_after(viewer, filter, now_micros(), after.as_ref(), limit)
            .await
            .expect("list_files_after");
        assert!(page.len() as u64 <= limit);
        let last = page.last().map(ListCursor::of);
        let short = (page.len() as u64) < limit;
        all.extend(page);
        if short {
            return all;
        }
        cursor = last;
    }
}

/// 25 files the viewer sees (its own, public or not, and another tenant's public ones, with
/// names that tie across owners and resources and sort differently by bytes and by
/// locale), among files it does not see: paging through the cursor by 7 gives exactly the
/// offset listing, with and without filters.
pub(crate) async fn keyset_pages_follow_offset_order(db: &dyn MetaBackend) {
    let a = tenant(db, "alice").await;
    let b = tenant(db, "Bob").await;
    let names = [
        "b.txt",
        "B.txt",
        "a_b",
        "ab",
        "a-b",
        "Zeta",
        "\u{e9}t\u{e9}",
        "a b",
        "10",
        "9",
    ];
    for (i, name) in names.iter().enumerate() {
        commit(db, &a, "1", name, i % 3 == 0).await;
        commit(db, &a, "2", name, false).await;
        commit(db, &b, "1", name, i % 2 == 0).await;
    }
    // The viewer's: 10 + 10 own, 5 public of Bob's (tied on name with its own), and Bob's
    // private ones hidden.
    let cases = [
        ListFilter::default(),
        ListFilter {
            resource: Some("doc".into()),
            resource_id: Some("1".into()),
            tenant_username: None,
        },
        ListFilter {
            tenant_username: Some("Bob".into()),
            ..ListFilter::default()
        },
    ];
    for filter in &cases {
        let now = now_micros();
        let n = db.count_files(&a, filter, now).await.expect("count");
        let offset = db
            .list_files(&a, filter, now, 0, 1000)
            .await
            .expect("list_files");
        assert_eq!(offset.len() as u64, n);
        let keyset = pages(db, &a, filter, 7).await;
        let ids = |v: &[FileRecord]| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&keyset), ids(&offset), "{filter:?}");
        assert_eq!(keyset, offset);
        for limit in [1, 5, 23, 1000] {
            assert_eq!(ids(&pages(db, &a, filter, limit).await), ids(&offset));
        }
    }
    let all = db
        .list_files_after(&a, &ListFilter::default(), now_micros(), None, 1000)
        .await
        .expect("all");
    assert_eq!(all.len(), 25);
    let mut sorted = all.clone();
    sorted.sort_by(|x, y| {
        (
            x.name.as_bytes(),
            x.tenant_username.as_bytes(),
            x.id.as_bytes(),
        )
            .cmp(&(
                y.name.as_bytes(),
                y.tenant_username.as_bytes(),
                y.id.as_bytes(),
            ))
    });
    assert_eq!(all, sorted, "byte order of (name, owner, id)");
    assert!(
        db.list_files_after(&a, &ListFilter::default(), now_micros(), None, 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
}

/// Commit and clean-up of one upload decide through its intent: whichever takes it first
/// wins, and the loser can tell. gc takes only intents whose lease ran out.
pub(crate) async fn commit_and_clean_up_race_through_the_intent(db: &dyn MetaBackend) {
    use super::{Claim, MetaError};
    let t = tenant(db, "racer").await;
    let file = |key: &BlobKey| NewFile {
        resource: Resource::parse("doc").expect("resource"),
        resource_id: ResourceId::parse("1").expect("resource id"),
        name: FileName::parse("a.txt").expect("file name"),
        blob_key: key.clone(),
        size: 1,
        content_type: "text/plain".into(),
        sha256: "0".repeat(64),
        is_public: false,
        expire_at: None,
    };
    let now = now_micros();
    // Clean-up first: the commit fails and commits nothing.
    let a = BlobKey::generate(t.id);
    db.record_intent(&t, &a, now, now + 60_000_000)
        .await
        .expect("intent");
    assert!(db.drop_intent(&a).await.expect("drop"));
    let r = db.commit_file(&t, file(&a), now, Claim::Intent).await;
    assert!(matches!(r, Err(MetaError::Gone(_))), "{r:?}");
    assert!(!db.key_known(&a).await.expect("known"));
    // Commit first: the clean-up finds nothing to take.
    let b = BlobKey::generate(t.id);
    db.record_intent(&t, &b, now, now + 60_000_000)
        .await
        .expect("intent");
    db.commit_file(&t, file(&b), now, Claim::Intent)
        .await
        .expect("commit");
    assert!(!db.drop_intent(&b).await.expect("drop"));
    assert!(db.key_known(&b).await.expect("known"));
    // gc: a live lease is not taken; a lapsed one is, once, and then the commit fails.
    let c = BlobKey::generate(t.id);
    db.record_intent(&t, &c, now, now + 60_000_000)
        .await
        .expect("intent");
    assert!(
        db.take_stale_intents(now, 100)
            .await
            .expect("take")
            .is_empty()
    );
    assert!(db.renew_intent(&c, now - 1).await.expect("renew"));
    assert_eq!(
        db.take_stale_intents(now, 100).await.expect("take"),
        vec![c.clone()]
    );
    assert!(
        db.take_stale_intents(now, 100)
            .await
            .expect("take")
            .is_empty()
    );
    assert!(!db.renew_intent(&c, now + 1).await.expect("renew"));
    let r = db.commit_file(&t, file(&c), now, Claim::Intent).await;
    assert!(matches!(r, Err(MetaError::Gone(_))), "{r:?}");
}

/// A store's embedded `migrations` are the files of `migrations/<store>`, in order.
pub(crate) fn migrations_match_files(store: &str, migrations: &[(i64, &str, &str)]) {
    let dir = format!("{}/migrations/{store}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("migrations dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sql"))
        .map(|n| n.trim_end_matches(".sql").to_owned())
        .collect();
    files.sort();
    let embedded: Vec<String> = migrations.iter().map(|(_, n, _)| n.to_string()).collect();
    assert_eq!(files, embedded);
    let versions: Vec<i64> = migrations.iter().map(|(v, _, _)| *v).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]));
}
