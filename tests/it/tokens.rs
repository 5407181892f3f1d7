//! Tokens: SimpleJWT's obtain/refresh shapes, rotation, and every kind of bad token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_with};

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("send");
    let s = r.status().as_u16();
    (s, r.json().await.expect("json"))
}

async fn list_with(app: &TestApp, token: &str) -> (u16, Value) {
    app.get(token, "/api/list_files").await
}

fn token_not_valid() -> Value {
    json!({"detail": "Given token not valid for any token type", "code": "token_not_valid"})
}

pub async fn bad_credentials_and_missing_fields_get_the_seed_answers() {
    let app = spawn_app().await;
    let (s, body) = post(
        &app,
        "/api/token/",
        json!({"username": "john1", "password": "no"}),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(
        body,
        json!({"detail": "No active account found with the given credentials"})
    );
    let (s, body) = post(
        &app,
        "/api/token/",
        json!({"username": "ghost", "password": "test"}),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(
        body,
        json!({"detail": "No active account found with the given credentials"})
    );
    let (s, body) = post(&app, "/api/token/", json!({"password": "test"})).await;
    assert_eq!(s, 400);
    assert_eq!(body, json!({"username": ["This field is required."]}));
    let (s, body) = post(&app, "/api/token/", json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(
        body,
        json!({"username": ["This field is required."], "password": ["This field is required."]})
    );
}

pub async fn a_form_encoded_login_works_like_json() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/api/token/"))
        .form(&[("username", "john1"), ("password", "test")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert!(body["access"].is_string() && body["refresh"].is_string());
}

pub async fn refresh_rotates_and_a_used_refresh_token_is_refused() {
    let app = spawn_app().await;
    let (_, pair) = post(
        &app,
        "/api/token/",
        json!({"username": "john1", "password": "test"}),
    )
    .await;
    let r1 = pair["refresh"].as_str().expect("refresh").to_owned();
    let (s, new) = post(&app, "/api/token/refresh/", json!({"refresh": r1})).await;
    assert_eq!(s, 200);
    let access = new["access"].as_str().expect("access");
    let r2 = new["refresh"].as_str().expect("rotated refresh");
    assert_ne!(r2, r1);
    assert_eq!(list_with(&app, access).await.0, 200);
    // Reuse of the spent token is refused; the new one works once.
    let (s, body) = post(&app, "/api/token/refresh/", json!({"refresh": r1})).await;
    assert_eq!(s, 401);
    assert_eq!(
        body,
        json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
    );
    assert_eq!(
        post(&app, "/api/token/refresh/", json!({"refresh": r2}))
            .await
            .0,
        200
    );
    let (s, body) = post(&app, "/api/token/refresh/", json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(body, json!({"refresh": ["This field is required."]}));
}

pub async fn a_refresh_token_is_not_an_access_token_nor_the_reverse() {
    let app = spawn_app().await;
    let (_, pair) = post(
        &app,
        "/api/token/",
        json!({"username": "john1", "password": "test"}),
    )
    .await;
    let (s, body) = list_with(&app, pair["refresh"].as_str().expect("r")).await;
    assert_eq!(s, 401);
    assert_eq!(body, token_not_valid());
    let (s, _) = post(
        &app,
        "/api/token/refresh/",
        json!({"refresh": pair["access"]}),
    )
    .await;
    assert_eq!(s, 401);
}

fn secret(app: &TestApp) -> Vec<u8> {
    std::fs::read_to_string(app.dir.path().join("jwt.secret"))
        .expect("secret")
        .trim()
        .as_bytes()
        .to_vec()
}

fn sign(secret: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

fn claims(exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"token_type": "access", "exp": now + exp_offset, "iat": now, "jti": "x",
           "user_id": 1, "username": "john1"})
}

pub async fn forged_expired_and_alg_none_tokens_are_refused() {
    let app = spawn_app().await;
    // Control: a token we sign ourselves with the server's secret is accepted.
    assert_eq!(
        list_with(&app, &sign(&secret(&app), claims(60))).await.0,
        200
    );

    let forged = sign(b"another secret that is long enough!!", claims(60));
    let expired = sign(&secret(&app), claims(-5));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(60).to_string());
    let none = format!("{header}.{payload}.");
    let valid = app.token("john1").await;
    let mut tampered = valid.clone();
    tampered.pop();
    tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });
    for (what, tok) in [
        ("forged", forged),
        ("expired", expired),
        ("alg none", none),
        ("tampered", tampered),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let (s, body) = list_with(&app, &tok).await;
        assert_eq!(s, 401, "{what}");
        assert_eq!(body, token_not_valid(), "{what}");
    }
}

pub async fn repeated_failed_logins_are_throttled_per_username() {
    let app = spawn_with(|c| c.auth.max_failed_logins_per_user = 3).await;
    for _ in 0..3 {
        let (s, _) = post(
            &app,
            "/api/token/",
            json!({"username": "john1", "password": "x"}),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, body) = post(
        &app,
        "/api/token/",
        json!({"username": "john1", "password": "test"}),
    )
    .await;
    assert_eq!(s, 429);
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .starts_with("Request was throttled.")
    );
    // Another user is not affected.
    let (s, _) = post(
        &app,
        "/api/token/",
        json!({"username": "john2", "password": "test"}),
    )
    .await;
    assert_eq!(s, 200);
}

crate::store_matrix!(
    bad_credentials_and_missing_fields_get_the_seed_answers,
    a_form_encoded_login_works_like_json,
    refresh_rotates_and_a_used_refresh_token_is_refused,
    a_refresh_token_is_not_an_access_token_nor_the_reverse,
    forged_expired_and_alg_none_tokens_are_refused,
    repeated_failed_logins_are_throttled_per_username,
);
