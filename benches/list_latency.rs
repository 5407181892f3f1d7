//! Listing latency by depth: the seed's page format (`list_page`: the exact count and the page,
//! as `/api/list_files` reads them; page 1 and the last page), the offset listing alone
//! (`count_files` + `list_files`) and the keyset listing (`list_files_after`), on both metadata
//! stores, for one tenant of 1k, 100k and 1M files. The summary compares the seed pages with
//! issue 14's goals (page 1 <= 100 ms, last page <= 500 ms).
//!
//! ```text
//! MTFU_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench --bench list_latency
//! ```
//!
//! - `SIZES=1000,100000` limits the tenant sizes (default `1000,100000,1000000`);
//! - `STORES=sqlite` or `STORES=postgres` limits the stores (default both);
//! - without `MTFU_TEST_POSTGRES_URL` the PostgreSQL runs are skipped. With it, each size runs in
//!   a fresh database `mtfu_bench_<uuid>`, dropped at the end.
//!
//! Rows are bulk-inserted with SQL (not through `commit_file`): `N` files of one tenant under
//! resource `doc`, `resource_id` = `i % 100`, so one resource's listing holds 1% of the files;
//! names are hashes, so name order is unrelated to insertion order; a tenth of the files (a tenth
//! of each resource's) are public. Each query runs up to
//! `ITERATIONS` times within `BUDGET` (at least `MIN_ITERATIONS`), after a warm-up.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mtfu::config::{Config, MetadataBackend};
use mtfu::domain::{Tenant, TenantName, now_micros};
use mtfu::meta::page::SeedPage;
use mtfu::meta::{ListCursor, ListFilter, Meta};
use tokio_postgres::NoTls;

const ITERATIONS: usize = 200;
const MIN_ITERATIONS: usize = 5;
const WARMUP: usize = 3;
/// Time allowed to one query's measurement (warm-up excluded).
const BUDGET: Duration = Duration::from_secs(15);
const PAGE: u64 = 10;
/// Files per `resource_id` is `N / RESOURCE_IDS`.
const RESOURCE_IDS: u64 = 100;
/// The `resource_id` of the filtered listings.
const ONE_RESOURCE_ID: &str = "7";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    Sqlite,
    Postgres,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
        }
    }
}

struct Row {
    store: &'static str,
    files: u64,
    listing: String,
    query: &'static str,
    iterations: usize,
    p50: Duration,
    p99: Duration,
}

const HEADER: &str =
    "store     files    listing             query         iters     p50 ms     p99 ms";

fn print_row(r: &Row) {
    println!(
        "{:<9} {:>8} {:<19} {:<13} {:>5} {:>10.3} {:>10.3}",
        r.store,
        r.files,
        r.listing,
        r.query,
        r.iterations,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3
    );
}

/// `p` in (0, 1] of sorted `v` (nearest rank).
fn percentile(v: &[Duration], p: f64) -> Duration {
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Run `f` for a warm-up, then up to `ITERATIONS` times within `BUDGET`.
async fn measure<F, Fut>(mut f: F) -> Result<(usize, Duration, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    for _ in 0..WARMUP {
        f().await?;
    }
    let mut times = Vec::with_capacity(ITERATIONS);
    let start = Instant::now();
    while times.len() < ITERATIONS && (times.len() < MIN_ITERATIONS || start.elapsed() < BUDGET) {
        let t = Instant::now();
        f().await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
    ))
}

/// Bijective 64-bit mix (splitmix64's finaliser): distinct `i` give distinct names.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Insert `n` files of tenant `tid` straight into the SQLite database at `path`.
fn load_sqlite(path: &std::path::Path, tid: i64, n: u64) -> Result<()> {
    let mut c = rusqlite::Connection::open(path)?;
    c.pragma_update(None, "synchronous", "OFF")?;
    let tx = c.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO files (id, tenant_id, resource, resource_id, name, blob_key, size,
                content_type, sha256, is_public, expire_at, created_at)
             VALUES (?1, ?2, 'doc', ?3, ?4, ?5, 1000, 'application/octet-stream', ?6, ?7,
                NULL, ?8)",
        )?;
        let sha = "0".repeat(64);
        let now = now_micros();
        for i in 0..n {
            st.execute(rusqlite::params![
                format!("{i:032x}"),
                tid,
                (i % RESOURCE_IDS).to_string(),
                format!("{:016x}.bin", mix(i)),
                format!("t/{tid}/{i:032x}"),
                sha,
                (i / RESOURCE_IDS).is_multiple_of(10),
                now,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Insert `n` files of tenant `tid` into the PostgreSQL database at `url`, in one statement.
async fn load_postgres(url: &str, tid: i64, n: u64) -> Result<()> {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await?;
    let conn = tokio::spawn(conn);
    c.execute(
        "INSERT INTO files (id, tenant_id, resource, resource_id, name, blob_key, size,
            content_type, sha256, is_public, expire_at, created_at)
         SELECT lpad(to_hex(i), 32, '0'), $1::bigint, 'doc', (i % $3::bigint)::text,
                substr(md5(i::text), 1, 16) || '.bin',
                't/' || $1::bigint || '/' || lpad(to_hex(i), 32, '0'),
                1000, 'application/octet-stream', repeat('0', 64), (i / $3::bigint) % 10 = 0,
                NULL, $2::bigint
         FROM generate_series(0::bigint, $4::bigint - 1) AS i",
        &[&tid, &now_micros(), &(RESOURCE_IDS as i64), &(n as i64)],
    )
    .await?;
    // What autovacuum would have done by the time such a tenant lists its files.
    c.batch_execute("VACUUM ANALYZE files").await?;
    drop(c);
    let _ = conn.await;
    Ok(())
}

/// Open and migrate the store `cfg` names, create the tenant and load `n` files.
async fn prepare(store: Store, cfg: &Config, n: u64) -> Result<(Meta, Tenant)> {
    let meta = Meta::open(cfg).await?;
    meta.migrate().await?;
    let name = TenantName::parse("bench").map_err(anyhow::Error::msg)?;
    let id = meta.create_tenant(&name, "x").await?;
    let load = Instant::now();
    match store {
        Store::Sqlite => {
            let path = cfg.sqlite_path();
            tokio::task::spawn_blocking(move || load_sqlite(&path, id.0, n)).await??;
        }
        Store::Postgres => {
            let url = cfg.metadata.postgres.url.as_deref().context("url")?;
            load_postgres(url, id.0, n).await?;
        }
    }
    eprintln!(
        "  {}: loaded {n} files in {:.1} s",
        store.name(),
        load.elapsed().as_secs_f64()
    );
    Ok((meta, Tenant { id, name }))
}

/// The four (five, with `count` alone) queries, for the unfiltered and one resource's listing.
async fn run_queries(
    store: Store,
    n: u64,
    meta: &Meta,
    tenant: &Tenant,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let listings = [
        ("all".to_owned(), ListFilter::default()),
        (
            format!("resource_id={ONE_RESOURCE_ID}"),
            ListFilter {
                resource: Some("doc".into()),
                resource_id: Some(ONE_RESOURCE_ID.into()),
                tenant_username: None,
            },
        ),
    ];
    for (listing, filter) in listings {
        let total = meta.count_files(tenant, &filter, now_micros()).await?;
        let deep = total.saturating_sub(PAGE);
        // The page at `deep` through the cursor of the row just before it.
        let cursor = match deep.checked_sub(1) {
            Some(before) => meta
                .list_files(tenant, &filter, now_micros(), before, 1)
                .await?
                .first()
                .map(ListCursor::of),
            None => None,
        };
        let by_offset = meta
            .list_files(tenant, &filter, now_micros(), deep, PAGE)
            .await?;
        let by_cursor = meta
            .list_files_after(tenant, &filter, now_micros(), cursor.as_ref(), PAGE)
            .await?;
        if by_offset != by_cursor || by_offset.is_empty() {
            bail!("{listing}: the keyset page at {deep} is not the offset page");
        }
        // The seed route's last page, through `list_page`: it must be the last `PAGE` rows.
        let last_number = total.div_ceil(PAGE).max(1).to_string();
        let last = SeedPage::parse(Some(&last_number), PAGE);
        let (_, last_page) = meta.list_page(tenant, &filter, now_micros(), last).await?;
        let tail = meta
            .list_files(
                tenant,
                &filter,
                now_micros(),
                (total.div_ceil(PAGE).max(1) - 1) * PAGE,
                PAGE,
            )
            .await?;
        if last_page != tail || last_page.is_empty() {
            bail!("{listing}: the seed's last page is not the offset page");
        }
        let (m, t, f) = (meta, tenant, &filter);
        let queries: [(&'static str, u64, bool); 7] = [
            ("count", 0, false),
            ("seed p1", 0, false),
            ("seed last", 0, false),
            ("offset p1", 0, true),
            ("offset deep", deep, true),
            ("keyset p1", 0, false),
            ("keyset deep", deep, false),
        ];
        for (query, offset, with_count) in queries {
            let (iterations, p50, p99) = match query {
                "count" => {
                    measure(move || async move {
                        m.count_files(t, f, now_micros()).await?;
                        Ok(())
                    })
                    .await?
                }
                "seed p1" | "seed last" => {
                    let page = if query == "seed p1" {
                        SeedPage::parse(None, PAGE)
                    } else {
                        last
                    };
                    measure(move || async move {
                        std::hint::black_box(m.list_page(t, f, now_micros(), page).await?);
                        Ok(())
                    })
                    .await?
                }
                "keyset p1" | "keyset deep" => {
                    let after = if query == "keyset p1" {
                        None
                    } else {
                        cursor.as_ref()
                    };
                    measure(move || async move {
                        let page = m.list_files_after(t, f, now_micros(), after, PAGE).await?;
                        std::hint::black_box(page);
                        Ok(())
                    })
                    .await?
                }
                _ => {
                    measure(move || async move {
                        if with_count {
                            std::hint::black_box(m.count_files(t, f, now_micros()).await?);
                        }
                        let page = m.list_files(t, f, now_micros(), offset, PAGE).await?;
                        std::hint::black_box(page);
                        Ok(())
                    })
                    .await?
                }
            };
            let row = Row {
                store: store.name(),
                files: n,
                listing: format!("{listing} ({total})"),
                query,
                iterations,
                p50,
                p99,
            };
            print_row(&row);
            rows.push(row);
        }
    }
    Ok(())
}

async fn bench_sqlite(n: u64, rows: &mut Vec<Row>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = Config::default();
    cfg.server.data_dir = dir.path().to_owned();
    cfg.metadata.backend = MetadataBackend::Sqlite;
    let (meta, tenant) = prepare(Store::Sqlite, &cfg, n).await?;
    run_queries(Store::Sqlite, n, &meta, &tenant, rows).await
}

async fn bench_postgres(admin_url: &str, n: u64, rows: &mut Vec<Row>) -> Result<()> {
    let (admin, conn) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .context("connect to MTFU_TEST_POSTGRES_URL")?;
    let conn = tokio::spawn(conn);
    let db = format!("mtfu_bench_{}", uuid::Uuid::now_v7().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let mut cfg = Config::default();
    cfg.metadata.backend = MetadataBackend::Postgres;
    cfg.metadata.postgres.url = Some(mtfu::meta::postgres::with_dbname(admin_url, &db));
    cfg.metadata.postgres.pool_size = 4;
    // Deep offsets of large tenants are slow; measure them rather than time them out.
    cfg.metadata.postgres.statement_timeout_secs = 600;
    let out = async {
        let (meta, tenant) = prepare(Store::Postgres, &cfg, n).await?;
        run_queries(Store::Postgres, n, &meta, &tenant, rows).await
    }
    .await;
    // The store's pool is gone with `meta`; FORCE ends any connection left.
    let dropped = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
    drop(admin);
    let _ = conn.await;
    out?;
    dropped.context("drop the bench database")?;
    Ok(())
}

fn list_env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<()> {
    let sizes: Vec<u64> = list_env("SIZES", "1000,100000,1000000")
        .split(',')
        .map(|s| s.trim().parse().context("SIZES: comma-separated numbers"))
        .collect::<Result<_>>()?;
    let stores = list_env("STORES", "sqlite,postgres");
    let stores: Vec<Store> = stores
        .split(',')
        .map(|s| match s.trim() {
            "sqlite" => Ok(Store::Sqlite),
            "postgres" => Ok(Store::Postgres),
            other => bail!("STORES: unknown store {other:?}"),
        })
        .collect::<Result<_>>()?;
    let pg_url = std::env::var("MTFU_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty());
    if stores.contains(&Store::Postgres) && pg_url.is_none() {
        eprintln!("postgres: skipped, MTFU_TEST_POSTGRES_URL is not set");
    }

    let mut rows = Vec::new();
    println!("{HEADER}");
    for store in stores {
        for &n in &sizes {
            let started = Instant::now();
            match (store, pg_url.as_deref()) {
                (Store::Sqlite, _) => bench_sqlite(n, &mut rows).await?,
                (Store::Postgres, Some(url)) => bench_postgres(url, n, &mut rows).await?,
                (Store::Postgres, None) => continue,
            }
            eprintln!(
                "  {} {n}: {:.0} s in all",
                store.name(),
                started.elapsed().as_secs_f64()
            );
        }
    }

    println!("\n{HEADER}");
    for r in &rows {
        print_row(r);
    }
    println!("\nseed page format, unfiltered (p50 ms; goal: page 1 <= 100, last page <= 500):");
    for r in rows.iter().filter(|r| r.listing.starts_with("all ")) {
        let goal = match r.query {
            "seed p1" => 100.0,
            "seed last" => 500.0,
            _ => continue,
        };
        let ms = r.p50.as_secs_f64() * 1e3;
        println!(
            "  {:<9} {:>8} {:<10} {:>9.2} ms  {:>6.3} of the goal",
            r.store,
            r.files,
            r.query,
            ms,
            ms / goal
        );
    }
    Ok(())
}
