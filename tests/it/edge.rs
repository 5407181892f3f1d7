//! Input refused at the edge, on every store: characters no store can hold (NUL answered 500 on
//! PostgreSQL), file names that hide characters or are spelled in two normal forms, and tenant
//! names that look like another's (`mtfu tenant add`).

use std::process::{Command, Stdio};

use base64::Engine;
use mtfu::domain::TenantName;
use mtfu::meta::MetaError;
use serde_json::{Value, json};

use crate::helpers::{names, spawn_app};

fn b64url(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every client string that reaches a store, with a NUL (and invalid UTF-8 where a client can
/// send bytes): a precise 4xx, or an empty listing for a filter; never a 500.
pub async fn nul_and_invalid_text_is_refused_at_the_edge_never_500() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let (s, _) = app.upload(&t, "product", "1", "a.txt", b"x").await;
    assert_eq!(s, 200);

    // Login: DRF's CharField message, for the JSON and the form encoding alike.
    for body in [
        app.client
            .post(app.url("/api/token/"))
            .json(&json!({"username": "john\u{0}1", "password": "test"})),
        app.client
            .post(app.url("/api/token/"))
            .form(&[("username", "john\u{0}1"), ("password", "test")]),
    ] {
        let r = body.send().await.expect("token");
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v, json!({"username": ["Null characters are not allowed."]}));
    }
    // Invalid UTF-8 in a form is decoded lossily: an unknown user, 401.
    let r = app
        .client
        .post(app.url("/api/token/"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("username=john%FF&password=test")
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 401);

    // Listing filters that no file can match: empty listings, on both APIs.
    for q in [
        "resource=%00",
        "resource_id=1%00",
        "tenant_username=john1%00",
        "resource=%FF",
        "tenant_username=a%20b",
    ] {
        let (s, v) = app.get(&t, &format!("/api/list_files?{q}")).await;
        assert_eq!(s, 200, "{q}: {v}");
        assert_eq!(v["count"], 0, "{q}");
        assert_eq!(v["num_pages"], 1, "{q}");
        let (s, v) = app.get(&t, &format!("/api/v2/files?{q}")).await;
        assert_eq!(s, 200, "{q}: {v}");
        assert_eq!(v, json!({"files": [], "next_cursor": null}), "{q}");
    }
    // The filter still works with good values.
    let (_, v) = app.get(&t, "/api/list_files?tenant_username=john1").await;
    assert_eq!(v["count"], 1);

    // A forged cursor carrying a NUL anywhere.
    for c in [
        r#"["a\u0000","john1","0190a6b1c2d37e8f9a0b1c2d3e4f5a6b"]"#,
        r#"["a","john\u00001","0190a6b1c2d37e8f9a0b1c2d3e4f5a6b"]"#,
        r#"["a","john1","\u0000"]"#,
    ] {
        let (s, v) = app
            .get(&t, &format!("/api/v2/files?cursor={}", b64url(c)))
            .await;
        assert_eq!(s, 400, "{c}: {v}");
        assert_eq!(v["cursor"], json!(["Invalid cursor."]), "{c}");
    }

    // Path parameters: labels and names refused with their field message, ids not found.
    let (s, v) = app.get(&t, "/api/files/pro%00duct/1").await;
    assert_eq!(s, 400, "{v}");
    let r = app
        .client
        .put(app.url("/api/v2/files/product/1/a%00b.txt"))
        .bearer_auth(&t)
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    let (s, _) = app.get(&t, "/api/v2/files/%00").await;
    assert_eq!(s, 404);
    let (s, _) = app.get(&t, "/api/files/%FF/1").await;
    assert_eq!(s, 404);

    // tus metadata values.
    for (key, meta) in [
        ("filename", "a\u{0}.bin"),
        ("resource", "pro\u{0}duct"),
        ("resource_id", "\u{0}"),
    ] {
        let mut pairs = [
            ("filename", "a.bin"),
            ("resource", "product"),
            ("resource_id", "1"),
        ];
        for p in pairs.iter_mut() {
            if p.0 == key {
                p.1 = meta;
            }
        }
        let header = pairs
            .iter()
            .map(|(k, v)| format!("{k} {}", b64(v)))
            .collect::<Vec<_>>()
            .join(",");
        let r = app
            .client
            .post(app.url("/api/v2/uploads"))
            .bearer_auth(&t)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "1")
            .header("Upload-Metadata", header)
            .send()
            .await
            .expect("tus");
        assert_eq!(r.status(), 400, "{key}");
    }
    // A content type with a NUL (kept in the upload's row until the type is decided).
    let header = format!(
        "filename {},resource {},resource_id {},filetype {}",
        b64("t.bin"),
        b64("product"),
        b64("1"),
        b64("text/\u{0}plain")
    );
    let r = app
        .client
        .post(app.url("/api/v2/uploads"))
        .bearer_auth(&t)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "1")
        .header("Upload-Metadata", header)
        .send()
        .await
        .expect("tus");
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .head(app.url("/api/v2/uploads/%00"))
        .bearer_auth(&t)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("tus head");
    assert_eq!(r.status(), 404);
}

/// `café.txt` typed in NFD and in NFC is one file (the second upload replaces the first, on
/// both upload routes); a name with a bidi control or an invisible character is a 400 that
/// names it.
pub async fn file_names_are_nfc_and_hide_nothing() {
    let app = spawn_app().await;
    let t = app.token("john1").await;
    let (s, v) = app
        .upload(&t, "product", "1", "cafe\u{301}.txt", b"nfd")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["file"]["name"], "caf\u{e9}.txt");
    let (s, v) = app
        .upload(&t, "product", "1", "caf\u{e9}.txt", b"nfc")
        .await;
    assert_eq!(s, 200, "{v}");
    // The raw PUT, NFD percent-encoded: the same file again, replaced (200).
    let r = app
        .client
        .put(app.url("/api/v2/files/product/1/cafe%CC%81.txt"))
        .bearer_auth(&t)
        .body("put")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let (_, v) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(names(&v), vec!["caf\u{e9}.txt".to_owned()]);
    assert_eq!(v["count"], 1);
    let url = v["files"][0]["url"].as_str().expect("url").to_owned();
    assert_eq!(app.download(&url).await, b"put");

    for (bad, what) in [
        ("invoice\u{202E}txt.exe", "U+202E"),
        ("a\u{2066}b.txt", "U+2066"),
        ("a\u{200B}b.txt", "U+200B"),
        ("\u{FEFF}a.txt", "U+FEFF"),
    ] {
        let (s, v) = app.upload(&t, "product", "1", bad, b"x").await;
        assert_eq!(s, 400, "{bad:?}: {v}");
        assert!(v["file"][0].as_str().unwrap_or("").contains(what), "{v}");
    }
    let r = app
        .client
        .put(app.url("/api/v2/files/product/1/a%E2%80%AEb.txt"))
        .bearer_auth(&t)
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    let (_, v) = app.get(&t, "/api/files/product/1").await;
    assert_eq!(v["count"], 1, "nothing of the refused uploads is listed");
}

/// The store itself refuses a tenant whose name looks like an existing one's (the unique
/// `name_key` of migration 0008), on SQLite and PostgreSQL alike.
pub async fn look_alike_tenants_are_refused_by_the_store() {
    let app = spawn_app().await;
    let meta = &app.state.files.meta;
    for alike in ["JOHN1", "John2", "\u{ff4a}\u{ff4f}\u{ff48}\u{ff4e}\u{ff13}"] {
        let name = TenantName::new_account(alike).expect("a valid name");
        let err = meta.create_tenant(&name, "x").await.expect_err(alike);
        assert!(matches!(err, MetaError::Conflict(_)), "{alike}: {err:?}");
    }
    let name = TenantName::new_account("john4").expect("name");
    meta.create_tenant(&name, "x").await.expect("a new name");
    let names: Vec<String> = meta
        .list_tenants()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.tenant.name.to_string())
        .collect();
    assert_eq!(names, ["john1", "john2", "john3", "john4"]);
}

/// A password login is recorded (`mtfu tenant list`'s LAST_LOGIN); a failed one is not, and a
/// tenant never logged in has none.
pub async fn a_password_login_is_recorded_for_the_tenant_list() {
    let app = spawn_app().await;
    let meta = &app.state.files.meta;
    let before = mtfu::domain::now_micros();
    let _ = app.token("john1").await;
    let bad = app
        .client
        .post(app.url("/api/token/"))
        .form(&[("username", "john2"), ("password", "wrong")])
        .send()
        .await
        .expect("token request");
    assert_eq!(bad.status(), 401);
    // The login does not wait for its record: it follows at once.
    let recorded = crate::helpers::eventually(10, || async {
        let list = meta.list_tenants().await.expect("list");
        list.iter()
            .any(|e| e.tenant.name.as_str() == "john1" && e.last_login_at.is_some())
    })
    .await;
    assert!(recorded, "john1's login is recorded");
    let list = meta.list_tenants().await.expect("list");
    let entry = |n: &str| list.iter().find(|e| e.tenant.name.as_str() == n).expect(n);
    let john1 = entry("john1");
    let at = john1.last_login_at.expect("john1 logged in");
    assert!(at >= before && at <= mtfu::domain::now_micros(), "{at}");
    assert!(john1.created_at <= before && john1.created_at > 0);
    assert_eq!(entry("john2").last_login_at, None, "a failed login is none");
    assert_eq!(entry("john3").last_login_at, None);
}

crate::store_matrix!(
    a_password_login_is_recorded_for_the_tenant_list,
    nul_and_invalid_text_is_refused_at_the_edge_never_500,
    file_names_are_nfc_and_hide_nothing,
    look_alike_tenants_are_refused_by_the_store,
);

/// `mtfu tenant add NAME` with `pw` on stdin: (success, stdout + stderr).
fn add(dir: &std::path::Path, name: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(["--init", "tenant", "add", name])
        .env("MTFU_SERVER__DATA_DIR", dir)
        .env("MTFU_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("mtfu runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn add_with_password(dir: &std::path::Path, name: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtfu"))
        .args(["--init", "tenant", "add", name])
        .env("MTFU_SERVER__DATA_DIR", dir)
        .env("MTFU_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"secret\n")
        .expect("stdin");
    let out = child.wait_with_output().expect("mtfu runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `mtfu tenant add` keeps names NFKC, refuses mixed scripts, and refuses a name that looks like
/// an existing tenant's (case, width, confusable letters); tenants from before the rule are
/// kept, and the rule holds against them too.
#[test]
fn tenant_add_refuses_look_alike_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (ok, out) = add_with_password(d, "john1");
    assert!(ok, "{out}");
    for (alike, why) in [
        (
            "\u{ff4a}\u{ff4f}\u{ff48}\u{ff4e}\u{ff11}",
            "tenant john1 already exists",
        ),
        ("JOHN1", "looks like tenant john1"),
        ("j\u{43e}hn1", "scripts"),
    ] {
        let (ok, out) = add_with_password(d, alike);
        assert!(!ok, "{alike:?} was added: {out}");
        assert!(out.contains(why), "{alike:?}: {out}");
    }
    // Fullwidth is stored as its NFKC form.
    let (ok, out) = add_with_password(d, "\u{ff4a}\u{ff4f}\u{ff48}\u{ff4e}\u{ff12}");
    assert!(ok, "{out}");
    assert!(out.contains("tenant john2 added"), "{out}");
    // A name of one script that reads as another tenant's.
    let (ok, out) = add_with_password(d, "access1");
    assert!(ok, "{out}");
    let (ok, out) = add_with_password(d, "\u{430}\u{441}\u{441}\u{435}\u{455}\u{455}1");
    assert!(!ok && out.contains("looks like tenant access1"), "{out}");
    // A bad name is refused before any password is asked.
    let (ok, out) = add(d, "john 3");
    assert!(!ok && out.contains("valid username"), "{out}");

    // Two look-alike tenants from before migration 0008 (no key): both kept, and a third
    // look-alike is still refused.
    let db = rusqlite::Connection::open(d.join("mtfu.sqlite3")).expect("db");
    db.execute_batch(
        "INSERT INTO tenants (username, password_hash, created_at) VALUES ('Bob', 'x', 0);
         INSERT INTO tenants (username, password_hash, created_at) VALUES ('BOB', 'x', 0);",
    )
    .expect("legacy tenants");
    let (ok, out) = add_with_password(d, "bob");
    assert!(!ok && out.contains("looks like tenant Bob"), "{out}");
    let (ok, out) = add_with_password(d, "alice");
    assert!(ok, "{out}");
    let list = crate::cli::mtfu(d, &["tenant", "list"], None);
    let listed: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for name in ["BOB", "Bob", "alice", "john1", "john2"] {
        assert!(listed.contains(&name), "{name} missing: {list}");
    }
}
