//! `mtfu import-seed`: an original-shaped PostgreSQL database (its two tables, with a password
//! hash of each Django hasher made by Django itself, tests/fixtures/django_hashes.json) and its
//! objects in a real S3 server are imported into each metadata store, with the S3 blob store on
//! the original's bucket (objects kept in place) and with local disk (objects copied). Then:
//! original passwords log in (and are argon2id afterwards), listings are what the original
//! listed, bytes are exact, the original's tokens work with `auth.seed_secret_key`, a second
//! import changes nothing, and two files sharing one object survive the deletion of one plus gc.

use std::time::Duration;

use mtfu::config::BlobBackendKind;
use mtfu::import::{ImportOptions, ImportReport, import_seed};
use serde_json::{Value, json};
use tokio_postgres::NoTls;

use crate::helpers::{TestApp, names, spawn_with};
use crate::s3::{BUCKET, S3Server, s3_client};
use crate::store::{BlobStore, current_blobs};

const SECRET: &str = "django-insecure-k3y";

/// (algorithm, password, encoded) made by Django's hashers.
fn fixtures() -> Vec<(String, String, String)> {
    let v: Value =
        serde_json::from_str(include_str!("../fixtures/django_hashes.json")).expect("fixtures");
    v.as_array()
        .expect("array")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().expect("string").to_owned();
            (s("algorithm"), s("password"), s("encoded"))
        })
        .collect()
}

/// The tenant of fixture `i` (`u_pbkdf2_sha256`, ...): user id `i + 1`.
fn user(alg: &str) -> String {
    format!("u_{alg}")
}

/// A row of the original's `file`: id, owner, name, resource, resource_id, expiry (an SQL
/// interval from now, empty for NULL), public, deleted.
type OrigFile = (
    i64,
    i32,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
);

/// A fresh database shaped like the original's, filled; its URL.
async fn original_db() -> String {
    let admin = crate::store::postgres_url().expect("MTFU_TEST_POSTGRES_URL is set");
    let (c, conn) = tokio_postgres::connect(&admin, NoTls)
        .await
        .expect("connect");
    let conn = tokio::spawn(conn);
    let name = format!("mtfu_test_{}", uuid::Uuid::now_v7().simple());
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create");
    drop(c);
    let _ = conn.await;
    let url = mtfu::meta::postgres::with_dbname(&admin, &name);
    let (c, conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    let conn = tokio::spawn(conn);
    c.batch_execute(
        "CREATE TABLE auth_user_tenant (id serial PRIMARY KEY, password varchar(128) NOT NULL,
             last_login timestamptz, username varchar(20) NOT NULL UNIQUE);
         CREATE TABLE file (id bigserial PRIMARY KEY,
             tenant_id integer NOT NULL REFERENCES auth_user_tenant (id),
             name varchar(255) NOT NULL, location varchar(255) NOT NULL, expire_at timestamptz,
             is_public boolean NOT NULL, resource varchar(100) NOT NULL,
             resource_id varchar(100) NOT NULL, delete_flg boolean NOT NULL);",
    )
    .await
    .expect("schema");
    for (i, (alg, _, encoded)) in fixtures().iter().enumerate() {
        c.execute(
            "INSERT INTO auth_user_tenant (id, password, username) VALUES ($1, $2, $3)",
            &[&(i as i32 + 1), encoded, &user(alg)],
        )
        .await
        .expect("user");
    }
    // A username the original let through and mtfu refuses.
    c.execute(
        "INSERT INTO auth_user_tenant (id, password, username) VALUES (50, '!x', 'bad name')",
        &[],
    )
    .await
    .expect("user");
    let alice = 1i32; // u_pbkdf2_sha256
    let bob = 2i32; // u_pbkdf2_sha1
    let rows: &[OrigFile] = &[
        // id, owner, name, resource, resource_id, expiry, public, deleted
        (1, alice, "a.txt", "product", "1", "+1 day", false, false),
        // The same name under another resource: the same object (shared).
        (2, alice, "a.txt", "product", "2", "+1 day", false, false),
        (3, alice, "gone.txt", "product", "1", "+1 day", false, true),
        (4, alice, "old.txt", "product", "1", "-1 day", false, false),
        (5, alice, "never.txt", "product", "1", "", false, false),
        (6, bob, "b.png", "product", "1", "+1 day", true, false),
        (7, 50, "c.txt", "product", "1", "+1 day", true, false),
        (
            8,
            bob,
            "missing.txt",
            "product",
            "1",
            "+1 day",
            false,
            false,
        ),
    ];
    for (id, owner, name, resource, rid, expiry, public, deleted) in rows {
        let username: String = c
            .query_one(
                "SELECT username FROM auth_user_tenant WHERE id = $1",
                &[owner],
            )
            .await
            .expect("owner")
            .get(0);
        let expire = (!expiry.is_empty()).then(|| format!("now() + interval '{expiry}'"));
        c.execute(
            &format!(
                "INSERT INTO file (id, tenant_id, name, location, expire_at, is_public, resource,
                     resource_id, delete_flg)
                 VALUES ($1, $2, $3, $4, {}, $5, $6, $7, $8)",
                expire.unwrap_or_else(|| "NULL".into())
            ),
            &[
                id,
                owner,
                name,
                &format!("asset_imgs/{username}/{name}"),
                public,
                resource,
                rid,
                deleted,
            ],
        )
        .await
        .expect("file");
    }
    drop(c);
    let _ = conn.await;
    url
}

fn png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..300_000u32).map(|i| (i * 7 % 251) as u8));
    v
}

/// The original's bucket: objects of its rows, a stray one, and tenant markers.
async fn original_objects(s3: &S3Server) {
    let client = s3_client(s3).await;
    let put = |key: &str, data: Vec<u8>| {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(data.into())
            .send()
    };
    for (key, data) in [
        (
            "asset_imgs/u_pbkdf2_sha256/a.txt",
            b"second upload wins".to_vec(),
        ),
        ("asset_imgs/u_pbkdf2_sha256/gone.txt", b"deleted".to_vec()),
        ("asset_imgs/u_pbkdf2_sha256/old.txt", b"expired".to_vec()),
        ("asset_imgs/u_pbkdf2_sha256/stray.bin", b"no row".to_vec()),
        ("asset_imgs/u_pbkdf2_sha1/b.png", png()),
        ("asset_imgs/bad name/c.txt", b"c".to_vec()),
    ] {
        put(key, data).await.expect("put");
    }
}

async fn import(app: &TestApp, url: &str) -> ImportReport {
    let opts = ImportOptions {
        database_url: url.to_owned(),
        ..ImportOptions::default()
    };
    let f = &app.state.files;
    import_seed(&app.state.cfg, &f.meta, &f.blob, &opts)
        .await
        .expect("import")
}

async fn login(app: &TestApp, user: &str, password: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/api/token/"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("login");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn django_token(key: &str, token_type: &str, user_id: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": token_type, "exp": now + 300, "iat": now,
        "jti": uuid::Uuid::new_v4().simple().to_string(), "user_id": user_id});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("encode")
}

pub async fn the_original_moves_without_losing_a_user_a_file_or_a_session() {
    let url = original_db().await;
    // S3 stores: the app's own bucket is the original's (objects stay); local disk: a separate
    // S3 server is the original's (objects are copied).
    let source = match current_blobs() {
        BlobStore::S3 => None,
        BlobStore::Local => Some(S3Server::start().await),
    };
    let app = spawn_with(|c| {
        c.auth.seed_secret_key = Some(SECRET.into());
        if let Some(s) = &source {
            s.configure(c);
            c.blobs.backend = BlobBackendKind::Local;
        }
    })
    .await;
    let s3 = source.as_ref().or(app.s3.as_ref()).expect("an S3 server");
    original_objects(s3).await;

    let r = import(&app, &url).await;
    println!("{r}");
    assert_eq!(r.in_place, current_blobs() == BlobStore::S3);
    assert_eq!((r.tenants_seen, r.tenants_imported), (8, 7));
    assert_eq!((r.files_seen, r.files_imported), (8, 3), "{r}");
    let skipped = |what: &str| {
        r.skipped
            .iter()
            .filter(|(k, _)| k.contains(what))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    assert_eq!(skipped("delete_flg"), 1);
    assert_eq!(skipped("expired"), 1);
    assert_eq!(skipped("no expire_at"), 1);
    assert_eq!(skipped("refuse"), 2, "the tenant and its file");
    assert_eq!(skipped("missing"), 1);
    assert!(
        r.notes.iter().any(|n| n.contains("share the object")),
        "{r}"
    );
    assert_eq!(r.unreferenced_objects, 1, "stray.bin");

    // Every usable Django hash logs in, and is argon2id afterwards; the unusable one never.
    for (alg, password, _) in fixtures() {
        let name = user(&alg);
        if alg == "unusable" {
            assert_eq!(login(&app, &name, "").await.0, 400);
            assert_eq!(login(&app, &name, "x").await.0, 401);
            continue;
        }
        assert_eq!(login(&app, &name, "wrong").await.0, 401, "{alg}");
        let (status, body) = login(&app, &name, &password).await;
        assert_eq!(status, 200, "{alg}: {body}");
        let (_, hash, _) = app
            .state
            .files
            .meta
            .tenant_login(&name)
            .await
            .expect("tenant")
            .expect("exists");
        assert!(hash.starts_with("$argon2id$"), "{alg}: {hash}");
        // And the same password again, against the new hash.
        assert_eq!(login(&app, &name, &password).await.0, 200, "{alg}");
    }
    let alice = login(&app, "u_pbkdf2_sha256", "hunter2").await.1["access"]
        .as_str()
        .expect("access")
        .to_owned();
    let bob = login(&app, "u_pbkdf2_sha1", "pässwörd").await.1["access"]
        .as_str()
        .expect("access")
        .to_owned();

    // What the original listed: alice's two live files and bob's public one.
    let (_, all) = app.get(&alice, "/api/list_files?page_size=100").await;
    assert_eq!(names(&all), ["a.txt", "a.txt", "b.png"], "{all}");
    let (_, theirs) = app.get(&bob, "/api/list_files?page_size=100").await;
    assert_eq!(names(&theirs), ["b.png"]);
    let b = &theirs["files"][0];
    assert_eq!(
        (b["is_public"].clone(), b["size"].clone()),
        (json!(true), json!(png().len()))
    );
    assert_eq!(b["content_type"], "image/png");
    let (_, p1) = app.get(&alice, "/api/files/product/1").await;
    let (_, p2) = app.get(&alice, "/api/files/product/2").await;
    assert_eq!(names(&p1), ["a.txt", "b.png"]);
    for page in [&p1, &p2] {
        let f = &page["files"][0];
        assert_eq!(f["name"], "a.txt");
        assert!(f["expire_at"].is_string());
        let body = app.download(f["url"].as_str().expect("url")).await;
        assert_eq!(body, b"second upload wins");
    }
    assert_eq!(
        app.download(p1["files"][1]["url"].as_str().expect("url"))
            .await,
        png()
    );
    let fsck = mtfu::fsck::check(&app.state.files.meta, &app.state.files.blob, true)
        .await
        .expect("fsck");
    assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);
    assert_eq!(fsck.digests_verified, 3);

    // The original's tokens: its access token works, a forged one does not; its refresh token
    // rotates once.
    let get_with = |token: String| {
        let app = &app;
        async move { app.get(&token, "/api/list_files").await.0 }
    };
    assert_eq!(get_with(django_token(SECRET, "access", 1)).await, 200);
    assert_eq!(
        get_with(django_token("another key", "access", 1)).await,
        401
    );
    assert_eq!(
        get_with(django_token(SECRET, "access", 50)).await,
        401,
        "not imported"
    );
    assert_eq!(get_with(django_token(SECRET, "refresh", 1)).await, 401);
    let refresh = django_token(SECRET, "refresh", 2);
    let rotate = || {
        app.client
            .post(app.url("/api/token/refresh/"))
            .json(&json!({"refresh": refresh}))
            .send()
    };
    let r1 = rotate().await.expect("refresh");
    assert_eq!(r1.status(), 200);
    let pair: Value = r1.json().await.expect("json");
    let (_, mine) = app
        .get(pair["access"].as_str().expect("access"), "/api/list_files")
        .await;
    assert_eq!(names(&mine), ["b.png"], "bob's pair");
    assert_eq!(rotate().await.expect("replay").status(), 401);

    // A second run changes nothing.
    let again = import(&app, &url).await;
    assert_eq!(
        (again.tenants_imported, again.files_imported),
        (0, 0),
        "{again}"
    );
    assert_eq!((again.tenants_already, again.files_already), (7, 3));
    let (_, same) = app.get(&alice, "/api/list_files?page_size=100").await;
    assert_eq!(same["files"], all["files"]);

    // One of the two files sharing an object goes, and gc runs: the other keeps its bytes; the
    // stray object outside mtfu's prefix stays.
    let (meta, blob) = (&app.state.files.meta, &app.state.files.blob);
    assert_eq!(app.delete(&alice, "/api/files/product/1").await.0, 200);
    mtfu::gc::sweep(meta, blob, Duration::ZERO, false)
        .await
        .expect("gc");
    let (_, p2) = app.get(&alice, "/api/files/product/2").await;
    let body = app
        .download(p2["files"][0]["url"].as_str().expect("url"))
        .await;
    assert_eq!(body, b"second upload wins");
    let client = s3_client(s3).await;
    let exists = |key: &'static str| {
        let client = client.clone();
        async move {
            client
                .head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .is_ok()
        }
    };
    assert!(exists("asset_imgs/u_pbkdf2_sha256/a.txt").await);
    assert!(exists("asset_imgs/u_pbkdf2_sha256/stray.bin").await);
    // The last one goes: in place, its object goes with it (copied: the original's stays).
    assert_eq!(app.delete(&alice, "/api/files/product/2").await.0, 200);
    mtfu::gc::sweep(meta, blob, Duration::ZERO, false)
        .await
        .expect("gc");
    assert_eq!(
        exists("asset_imgs/u_pbkdf2_sha256/a.txt").await,
        current_blobs() == BlobStore::Local
    );
    assert!(exists("asset_imgs/u_pbkdf2_sha256/stray.bin").await);
    assert!(
        exists("asset_imgs/u_pbkdf2_sha256/gone.txt").await,
        "dead objects left alone"
    );
    let fsck = mtfu::fsck::check(meta, blob, false).await.expect("fsck");
    assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);
}

// The original's database is PostgreSQL whatever mtfu's own store is.
crate::store_matrix!(
    #[cfg_attr(
        mtfu_no_pg,
        ignore = "the original's database needs PostgreSQL: set MTFU_TEST_POSTGRES_URL"
    )]
    the_original_moves_without_losing_a_user_a_file_or_a_session
);

/// `mtfu import-seed` as a child process (SQLite, the S3 store on the original's bucket): the
/// dry run writes nothing, the run imports, the next one finds nothing to do, fsck agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    mtfu_no_pg,
    ignore = "the original's database needs PostgreSQL: set MTFU_TEST_POSTGRES_URL"
)]
async fn the_command_imports_once_and_reports() {
    let url = original_db().await;
    let s3 = S3Server::start().await;
    original_objects(&s3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = s3.env();
    let run = |args: Vec<String>| {
        let (dir, env) = (dir.path().to_owned(), env.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtfu"))
                .args(&args)
                .env("MTFU_SERVER__DATA_DIR", &dir)
                .env("MTFU_LOG", "warn")
                .envs(env)
                .output()
                .expect("mtfu runs");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{args:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
        })
    };
    let import = |extra: &[&str]| {
        let mut args = vec![
            "import-seed".to_owned(),
            "--database-url".into(),
            url.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        run(args)
    };
    let dry: Value =
        serde_json::from_str(&import(&["--dry-run", "--json"]).await.expect("dry run"))
            .expect("json");
    assert_eq!(
        (dry["dry_run"].clone(), dry["files_imported"].clone()),
        (json!(true), json!(3))
    );
    let tenants = run(vec!["tenant".into(), "list".into()])
        .await
        .expect("list");
    assert!(
        !tenants.contains("u_pbkdf2_sha256"),
        "a dry run writes nothing: {tenants}"
    );
    let out = import(&[]).await.expect("import");
    assert!(out.contains("tenants: 8 seen, 7 imported"), "{out}");
    assert!(out.contains("files: 8 seen, 3 imported"), "{out}");
    let out = import(&[]).await.expect("again");
    assert!(
        out.contains("files: 8 seen, 0 imported (0 bytes), 3 already imported"),
        "{out}"
    );
    let fsck = run(vec!["fsck".into(), "--verify-sha256".into()])
        .await
        .expect("fsck");
    assert!(
        fsck.contains("3 file(s)") && fsck.contains("3 digest(s) verified"),
        "{fsck}"
    );
}
