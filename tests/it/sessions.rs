//! Ending sessions: a password change (`mtfu tenant passwd`), `mtfu tenant logout NAME` and
//! `POST /api/v2/sessions/revoke` make every earlier access and refresh token of the tenant
//! answer 401 at once, on every node sharing the database; a new login works. Tokens of
//! earlier versions (no `epoch` claim) count as epoch 0.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_with};

/// A (refresh, access) pair for `user` with `password`.
async fn pair(app: &TestApp, user: &str, password: &str) -> (String, String) {
    let r = app
        .client
        .post(app.url("/api/token/"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    (
        v["refresh"].as_str().expect("refresh").to_owned(),
        v["access"].as_str().expect("access").to_owned(),
    )
}

async fn login_status(app: &TestApp, user: &str, password: &str) -> u16 {
    app.client
        .post(app.url("/api/token/"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16()
}

/// Status of `GET /api/v2/usage` with `access`, and the body.
async fn usage(app: &TestApp, access: &str) -> (u16, Value) {
    app.get(access, "/api/v2/usage").await
}

/// Status of a refresh with `refresh`.
async fn refresh_status(app: &TestApp, refresh: &str) -> u16 {
    app.client
        .post(app.url("/api/token/refresh/"))
        .json(&json!({"refresh": refresh}))
        .send()
        .await
        .expect("refresh request")
        .status()
        .as_u16()
}

async fn revoke(app: &TestApp, access: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v2/sessions/revoke"))
        .bearer_auth(access)
        .send()
        .await
        .expect("revoke request")
}

/// The tokens are dead: access 401 `token_not_valid`, refresh 401.
async fn assert_ended(app: &TestApp, (refresh, access): &(String, String), what: &str) {
    let (s, body) = usage(app, access).await;
    assert_eq!(s, 401, "{what}: access token {body}");
    assert_eq!(body["code"], "token_not_valid", "{what}");
    assert_eq!(
        refresh_status(app, refresh).await,
        401,
        "{what}: refresh token"
    );
}

/// `mtfu ARGS` against the stores `app` uses (its data directory, its database).
fn cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtfu"));
    cmd.args(args)
        .env("MTFU_SERVER__DATA_DIR", app.dir.path())
        .env("MTFU_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = &app.state.cfg.metadata.postgres.url
        && app.state.cfg.metadata.backend == mtfu::config::MetadataBackend::Postgres
    {
        cmd.env("MTFU_METADATA__BACKEND", "postgres")
            .env("MTFU_METADATA__POSTGRES__URL", url);
    }
    let mut child = cmd.spawn().expect("spawn mtfu");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("mtfu runs");
    assert!(
        out.status.success(),
        "mtfu {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub async fn a_password_change_ends_every_session() {
    let app = spawn_with(|_| {}).await;
    let first = pair(&app, "john1", "test").await;
    let second = pair(&app, "john1", "test").await;
    let other = pair(&app, "john2", "test").await;
    assert_eq!(usage(&app, &first.1).await.0, 200);

    let out = cli(&app, &["tenant", "passwd", "john1"], Some("a new one\n"));
    assert!(out.contains("sessions are ended"), "{out}");
    assert_ended(&app, &first, "first session").await;
    assert_ended(&app, &second, "second session").await;
    // Another tenant's sessions go on.
    assert_eq!(usage(&app, &other.1).await.0, 200);
    assert_eq!(refresh_status(&app, &other.0).await, 200);

    assert_eq!(login_status(&app, "john1", "test").await, 401);
    let new = pair(&app, "john1", "a new one").await;
    assert_eq!(usage(&app, &new.1).await.0, 200);
    assert_eq!(refresh_status(&app, &new.0).await, 200);
}

pub async fn logout_from_the_command_line_ends_every_session() {
    let app = spawn_with(|_| {}).await;
    let before = pair(&app, "john1", "test").await;
    // A rotated refresh token is a session of the same epoch: it ends too.
    let rotated: Value = app
        .client
        .post(app.url("/api/token/refresh/"))
        .json(&json!({"refresh": before.0}))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    let rotated = (
        rotated["refresh"].as_str().expect("refresh").to_owned(),
        rotated["access"].as_str().expect("access").to_owned(),
    );
    assert_eq!(usage(&app, &rotated.1).await.0, 200);

    let out = cli(&app, &["tenant", "logout", "john1"], None);
    assert!(out.contains("sessions of john1 ended"), "{out}");
    assert_ended(&app, &rotated, "rotated session").await;
    assert_eq!(usage(&app, &before.1).await.0, 401);

    let new = pair(&app, "john1", "test").await;
    assert_eq!(usage(&app, &new.1).await.0, 200);
}

pub async fn revoking_ends_the_callers_sessions_and_only_its_own() {
    let app = spawn_with(|_| {}).await;
    let first = pair(&app, "john1", "test").await;
    let second = pair(&app, "john1", "test").await;
    let other = pair(&app, "john2", "test").await;

    let r = app
        .client
        .post(app.url("/api/v2/sessions/revoke"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 401, "no token, no revocation");
    assert_eq!(usage(&app, &first.1).await.0, 200);

    let r = revoke(&app, &first.1).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["revoked_before"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    // The caller's own token is spent too, and every other session of the tenant.
    assert_ended(&app, &first, "the revoking session").await;
    assert_ended(&app, &second, "another session").await;
    assert_eq!(revoke(&app, &first.1).await.status(), 401);
    // Another tenant is untouched.
    assert_eq!(usage(&app, &other.1).await.0, 200);
    assert_eq!(refresh_status(&app, &other.0).await, 200);

    let new = pair(&app, "john1", "test").await;
    assert_eq!(usage(&app, &new.1).await.0, 200);
    assert_eq!(refresh_status(&app, &new.0).await, 200);
}

crate::store_matrix!(
    a_password_change_ends_every_session,
    logout_from_the_command_line_ends_every_session,
    revoking_ends_the_callers_sessions_and_only_its_own,
);

/// A token of an earlier version has no `epoch` claim: it counts as epoch 0, so it works until
/// the first revocation, and not after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_an_epoch_are_of_epoch_0() {
    const SECRET: &str = "a secret of at least 32 bytes for this test";
    let app = spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let now = chrono::Utc::now().timestamp();
    let old = |token_type: &str| {
        let claims = json!({"token_type": token_type, "exp": now + 600, "iat": now,
            "jti": uuid::Uuid::new_v4().simple().to_string(), "user_id": 1, "username": "john1"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode")
    };
    let (old_access, old_refresh) = (old("access"), old("refresh"));
    let (old_access2, old_refresh2) = (old("access"), old("refresh"));
    assert_eq!(usage(&app, &old_access).await.0, 200);
    assert_eq!(refresh_status(&app, &old_refresh).await, 200);

    let current = pair(&app, "john1", "test").await;
    assert_eq!(revoke(&app, &current.1).await.status(), 200);
    assert_ended(&app, &(old_refresh2, old_access2), "an epoch-less session").await;
    assert_eq!(usage(&app, &old_access).await.0, 401);
}

/// Two nodes on one PostgreSQL database: a session ended through node B is refused by node A at
/// once, access and refresh tokens alike; a new login on A works on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn a_session_ended_on_one_node_is_refused_by_the_other() {
    crate::store::META
        .scope(crate::store::MetaStore::Postgres, async {
            const SECRET: &str = "a shared secret for both nodes, 32+ bytes";
            let mut url = None;
            let a = spawn_with(|c| {
                c.auth.jwt_secret = Some(SECRET.into());
                url = c.metadata.postgres.url.clone();
            })
            .await;
            let b = spawn_with(|c| {
                c.auth.jwt_secret = Some(SECRET.into());
                c.metadata.postgres.url = url.clone();
            })
            .await;
            let on_a = pair(&a, "john1", "test").await;
            let on_b = pair(&b, "john1", "test").await;
            assert_eq!(usage(&a, &on_b.1).await.0, 200, "B's token works on A");

            assert_eq!(revoke(&b, &on_b.1).await.status(), 200);
            assert_ended(&a, &on_a, "A's session, ended through B").await;
            assert_ended(&b, &on_a, "A's session on B").await;
            assert_eq!(usage(&a, &on_b.1).await.0, 401);

            let new = pair(&a, "john1", "test").await;
            assert_eq!(usage(&b, &new.1).await.0, 200);

            // A password change through node A's store ends the new session on B too.
            let hash = a
                .state
                .auth
                .hash_password("changed".into())
                .await
                .expect("hash");
            let name = mtfu::domain::TenantName::parse("john1").expect("name");
            assert!(
                a.state
                    .files
                    .meta
                    .set_password(&name, &hash)
                    .await
                    .expect("passwd")
            );
            assert_ended(&b, &new, "after a password change").await;
        })
        .await
}
