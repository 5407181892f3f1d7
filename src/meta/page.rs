//! The seed's page format at depth: which page Django's paginator picks, and how a store reads
//! it without walking every row before it.
//!
//! A seed listing needs the exact `count` and an `OFFSET` page in `(name, owner, id)` order. The
//! stores answer the count from per-tenant counters (`file_counts`, kept by triggers in every
//! transaction that inserts, deletes or soft-deletes a file) minus the expired rows gc has not
//! reaped yet, and read the page from the two name-ordered branches of the keyset listing (own
//! files, public files), through covering indexes. Knowing the count, a page past the middle is
//! read backwards from the end, so the last page costs what the first does.

/// Which page of a seed listing was asked for: Django's `Paginator.get_page` picks it once the
/// count is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedPage {
    /// Files per page (at least 1).
    pub size: u64,
    /// The `page` parameter as an integer; `None` when it was not one (page 1).
    pub requested: Option<i64>,
}

impl SeedPage {
    /// The page `page` (the query parameter, absent: page 1) of `size` files.
    pub fn parse(page: Option<&str>, size: u64) -> SeedPage {
        SeedPage {
            size: size.max(1),
            requested: page.unwrap_or("1").trim().parse::<i64>().ok(),
        }
    }

    /// Pages of a listing of `count` files: an empty listing still has one.
    pub fn num_pages(&self, count: u64) -> u64 {
        count.div_ceil(self.size).max(1)
    }

    /// `Paginator.get_page(page)`: a non-integer page is page 1, one outside 1..=num_pages is
    /// the last page.
    pub fn number(&self, count: u64) -> u64 {
        let num_pages = self.num_pages(count);
        match self.requested {
            None => 1,
            Some(n) if n < 1 || n as u64 > num_pages => num_pages,
            Some(n) => n as u64,
        }
    }

    /// How a store reads the chosen page of `count` files; `None` when it is empty.
    pub fn plan(&self, count: u64) -> Option<Read> {
        let offset = (self.number(count) - 1).saturating_mul(self.size);
        let take = self.size.min(count.saturating_sub(offset));
        if take == 0 {
            return None;
        }
        let after = count - offset - take;
        Some(if after < offset {
            Read {
                backwards: true,
                skip: after,
                take,
                offset,
            }
        } else {
            Read::forward(offset, take)
        })
    }
}

/// One page read from one end of the listing's order: skip `skip` rows, take `take`. Backwards
/// pages come in reverse order; the store turns them around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub backwards: bool,
    pub skip: u64,
    pub take: u64,
    /// The page's offset from the start (= `skip` when forwards).
    pub offset: u64,
}

impl Read {
    /// A forward read of an offset page (`list_files`, whose caller knows no count).
    pub fn forward(offset: u64, limit: u64) -> Read {
        Read {
            backwards: false,
            skip: offset,
            take: limit,
            offset,
        }
    }

    /// Rows each branch must yield: the skipped ones and the page.
    pub fn depth(&self) -> u64 {
        self.skip.saturating_add(self.take)
    }

    /// `ASC` or `DESC`, for each key of the order.
    pub fn dir(&self) -> &'static str {
        if self.backwards { "DESC" } else { "ASC" }
    }
}

#[cfg(test)]
mod tests {
    use super::{Read, SeedPage};

    #[test]
    fn the_page_number_follows_djangos_get_page() {
        let p = |s: Option<&str>| SeedPage::parse(s, 10);
        assert_eq!(p(None).number(25), 1);
        assert_eq!(p(Some("x")).number(25), 1);
        assert_eq!(p(Some("2")).number(25), 2);
        assert_eq!(p(Some("0")).number(25), 3);
        assert_eq!(p(Some("-4")).number(25), 3);
        assert_eq!(p(Some("99")).number(25), 3);
        assert_eq!(p(Some("99")).number(0), 1);
        assert_eq!(p(None).num_pages(0), 1);
    }

    #[test]
    fn pages_past_the_middle_are_read_from_the_end() {
        let p = |s: &str| SeedPage::parse(Some(s), 10);
        assert_eq!(p("1").plan(0), None);
        assert_eq!(p("1").plan(25), Some(Read::forward(0, 10)));
        // The last page holds 5 files: nothing after it.
        assert_eq!(
            p("3").plan(25),
            Some(Read {
                backwards: true,
                skip: 0,
                take: 5,
                offset: 20
            })
        );
        // Page 2 of 25: 10 before, 5 after.
        assert_eq!(
            p("2").plan(25),
            Some(Read {
                backwards: true,
                skip: 5,
                take: 10,
                offset: 10
            })
        );
        let last = SeedPage::parse(Some("100000"), 10).plan(1_000_000);
        assert_eq!(last.map(|r| r.depth()), Some(10));
    }
}

/// The counters and the page reads against the keyset listing (whose queries they do not
/// share) through every change a file row goes through, for the stores' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::SeedPage;
    use crate::domain::{
        BlobKey, FileName, FileRecord, Micros, NewFile, Resource, ResourceId, Tenant, TenantName,
        now_micros,
    };
    use crate::meta::{Claim, ListCursor, ListFilter, MetaBackend};

    const SEC: Micros = 1_000_000;

    async fn commit(
        db: &dyn MetaBackend,
        owner: &Tenant,
        (resource_id, name): (&str, &str),
        public: bool,
        expire_at: Option<Micros>,
    ) {
        let file = NewFile {
            resource: Resource::parse("doc").expect("resource"),
            resource_id: ResourceId::parse(resource_id).expect("resource id"),
            name: FileName::parse(name).expect("file name"),
            blob_key: BlobKey::generate(owner.id),
            size: 1,
            content_type: "text/plain".into(),
            sha256: "0".repeat(64),
            is_public: public,
            expire_at,
        };
        db.record_intent(owner, &file.blob_key, now_micros(), i64::MAX)
            .await
            .expect("intent");
        db.commit_file(owner, file, now_micros(), Claim::Intent)
            .await
            .expect("commit");
    }

    /// What `viewer` sees through `filter` at `now`, through the keyset listing.
    async fn all(
        db: &dyn MetaBackend,
        viewer: &Tenant,
        filter: &ListFilter,
        now: Micros,
    ) -> Vec<FileRecord> {
        let mut out: Vec<FileRecord> = Vec::new();
        loop {
            let after = out.last().map(ListCursor::of);
            let page = db
                .list_files_after(viewer, filter, now, after.as_ref(), 4)
                .await
                .expect("keyset");
            let short = page.len() < 4;
            out.extend(page);
            if short {
                return out;
            }
        }
    }

    /// Count, offset pages and every seed page of sizes 1, 3 and 7 agree with the keyset
    /// listing, for each filter and viewer; returns the unfiltered counts of the viewers.
    async fn check(db: &dyn MetaBackend, viewers: &[&Tenant], now: Micros) -> Vec<u64> {
        let mut counts = Vec::new();
        for viewer in viewers {
            let filters = [
                ListFilter::default(),
                ListFilter {
                    tenant_username: Some("alice".into()),
                    ..ListFilter::default()
                },
                ListFilter {
                    tenant_username: Some("bob".into()),
                    ..ListFilter::default()
                },
                ListFilter {
                    resource: Some("doc".into()),
                    resource_id: Some("1".into()),
                    tenant_username: None,
                },
            ];
            for filter in &filters {
                let want = all(db, viewer, filter, now).await;
                let n = want.len() as u64;
                let ctx = format!("{} {filter:?} at {now}", viewer.name);
                assert_eq!(
                    db.count_files(viewer, filter, now).await.expect("count"),
                    n,
                    "{ctx}"
                );
                let offset = db
                    .list_files(viewer, filter, now, 0, 1000)
                    .await
                    .expect("list");
                assert_eq!(offset, want, "{ctx}");
                for size in [1u64, 3, 7] {
                    let pages = SeedPage::parse(None, size).num_pages(n);
                    for number in 1..=pages + 1 {
                        let page = SeedPage::parse(Some(&number.to_string()), size);
                        let (count, files) = db
                            .list_page(viewer, filter, now, page)
                            .await
                            .expect("list_page");
                        assert_eq!(count, n, "{ctx}");
                        let from = ((page.number(n) - 1) * size) as usize;
                        let to = (from + size as usize).min(want.len());
                        assert_eq!(files, want[from..to], "{ctx} page {number} of {size}");
                    }
                }
            }
            counts.push(
                db.count_files(viewer, &ListFilter::default(), now)
                    .await
                    .expect("count"),
            );
        }
        counts
    }

    /// Counts stay exact across upload, replacement (public to private), delete, expiry (seen
    /// at a later `now`, then reaped by gc) and tenant removal.
    pub(crate) async fn counts_stay_exact(db: &dyn MetaBackend) {
        let tenant = |name: &'static str| async move {
            let name = TenantName::parse(name).expect("name");
            let id = db.create_tenant(&name, "x").await.expect("tenant");
            Tenant { id, name }
        };
        let (a, b) = (tenant("alice").await, tenant("bob").await);
        let t0 = now_micros();
        for (i, name) in ["n1", "n2", "n3", "n4", "n5"].iter().enumerate() {
            commit(db, &a, ("1", name), i < 2, None).await;
            commit(
                db,
                &b,
                (if i % 2 == 0 { "1" } else { "2" }, name),
                i % 2 == 0,
                None,
            )
            .await;
        }
        // Expiring at t0 + 60 s: visible now, expired (and not yet reaped) at t0 + 120 s.
        commit(db, &a, ("2", "x1"), true, Some(t0 + 60 * SEC)).await;
        commit(db, &b, ("1", "x2"), true, Some(t0 + 60 * SEC)).await;
        commit(db, &b, ("1", "x3"), false, Some(t0 + 60 * SEC)).await;
        // alice: 6 own + bob's 4 public; bob: 7 own + alice's 3 public.
        assert_eq!(check(db, &[&a, &b], now_micros()).await, [10, 10]);
        assert_eq!(check(db, &[&a, &b], t0 + 120 * SEC).await, [8, 7]);
        // A replacement, public to private.
        commit(db, &a, ("1", "n1"), false, None).await;
        assert_eq!(check(db, &[&a, &b], now_micros()).await, [10, 9]);
        // A delete (soft) of bob's resource 1: n1, n3, n5 (public), x2, x3.
        let (doc, one) = (
            Resource::parse("doc").expect("resource"),
            ResourceId::parse("1").expect("id"),
        );
        db.delete_files(&b, &doc, &one, now_micros())
            .await
            .expect("delete");
        assert_eq!(check(db, &[&a, &b], now_micros()).await, [6, 4]);
        // gc reaps the deleted and the expired rows (at t0 + 120 s).
        let reaped = db
            .reap_files(now_micros() + SEC, t0 + 120 * SEC)
            .await
            .expect("reap");
        assert_eq!((reaped.deleted, reaped.expired), (5, 1));
        assert_eq!(check(db, &[&a, &b], t0 + 120 * SEC).await, [5, 3]);
        assert_eq!(check(db, &[&a, &b], now_micros()).await, [5, 3]);
        // Bob goes, and his public files with him.
        assert!(db.remove_tenant(&b.name).await.expect("remove"));
        assert_eq!(check(db, &[&a], now_micros()).await, [5]);
        db.reap_files(0, 0).await.expect("reap");
        assert_eq!(check(db, &[&a], now_micros()).await, [5]);
    }
}
