//! SIGTERM on the real `mtfu serve` process: in-flight uploads finish within the grace period,
//! or are cancelled cleanly when it runs out (nothing half-visible, no blob, intent or S3
//! multipart upload left), and the process exits 0. The client negotiates HTTP/2, whose
//! requests run in tasks of their own (the harder case: see `StreamExecutor` in the server).

use std::path::Path;
use std::time::Duration;

use mtfu::config::Config;

use crate::cli::{ChildServer, mtfu};
use crate::helpers::{streamed_form, test_config};
use crate::s3::S3Server;

/// Files listed for product/1, as john1 sees them.
async fn listed(server: &ChildServer) -> Vec<(String, u64)> {
    let token = server.token("john1").await;
    let v: serde_json::Value = server
        .client
        .get(server.url("/api/files/product/1"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    v["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or_default().to_owned(),
                f["size"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Intents and blobs (finished or not) left in the stores of `cfg`.
async fn leftovers(cfg: &Config) -> (usize, usize) {
    let (meta, blob) = mtfu::app::open_stores(cfg).await.expect("stores");
    let intents = meta.stale_intents(i64::MAX).await.expect("intents").len();
    let far = std::time::SystemTime::now() + Duration::from_secs(86_400);
    let blobs = blob.list_older_than(far).await.expect("blobs").len();
    (intents, blobs)
}

fn config(dir: &Path, s3: Option<&S3Server>) -> Config {
    let mut cfg = test_config(dir);
    if let Some(s3) = s3 {
        s3.configure(&mut cfg);
    }
    cfg
}

fn env(grace: u64, s3: Option<&S3Server>) -> Vec<(&'static str, String)> {
    let mut env = vec![("MTFU_SERVER__SHUTDOWN_GRACE_SECS", grace.to_string())];
    if let Some(s3) = s3 {
        env.extend(s3.env());
    }
    env
}

/// An upload still streaming when SIGTERM arrives finishes within the grace period; new
/// connections are refused meanwhile; the file is there after a restart.
async fn upload_in_flight_completes_within_the_grace_period(s3: Option<&S3Server>) {
    let dir = tempfile::tempdir().expect("tempdir");
    mtfu(dir.path(), &["init-data"], None);
    let mut server = ChildServer::start_with(dir.path(), &env(60, s3));
    let token = server.token("john1").await;
    // 6 MiB over ~2 s (crosses an S3 part boundary).
    let form = streamed_form(24, 256 * 1024, Duration::from_millis(80), None);
    let upload = server
        .client
        .post(server.url("/api/upload"))
        .bearer_auth(&token)
        .multipart(form)
        .send();
    let upload = tokio::spawn(upload);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = server.url("/healthz");
    let client = server.client.clone();
    let status = tokio::spawn(async move {
        // Give the signal a moment, then try a new connection: the listener is closed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("client")
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let exit = server.terminate(Duration::from_secs(30)).await;
    drop(client);
    let resp = upload.await.expect("join").expect("upload answered");
    assert_eq!(resp.status(), 200, "the in-flight upload completed");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        status.await.expect("join").is_err(),
        "a new connection after SIGTERM is refused"
    );

    let server = ChildServer::start_with(dir.path(), &env(60, s3));
    assert_eq!(
        listed(&server).await,
        vec![("big.bin".into(), 24 * 256 * 1024)]
    );
    drop(server);
    assert_eq!(leftovers(&config(dir.path(), s3)).await, (0, 1));
}

/// An upload still streaming when the grace period ends is cancelled: the client gets an
/// error, nothing of it is listed, and no intent, blob or multipart upload is left.
async fn upload_past_the_grace_period_is_cancelled_cleanly(s3: Option<&S3Server>) {
    let dir = tempfile::tempdir().expect("tempdir");
    mtfu(dir.path(), &["init-data"], None);
    let mut server = ChildServer::start_with(dir.path(), &env(1, s3));
    let token = server.token("john1").await;
    // 12 MiB over ~24 s: two S3 parts are sent before the grace period ends.
    let form = streamed_form(48, 256 * 1024, Duration::from_millis(500), None);
    let upload = tokio::spawn(
        server
            .client
            .post(server.url("/api/upload"))
            .bearer_auth(&token)
            .multipart(form)
            .send(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let exit = server.terminate(Duration::from_secs(20)).await;
    assert!(exit.success(), "exit status {exit:?}");
    match upload.await.expect("join") {
        Err(_) => {}
        Ok(r) => assert_ne!(r.status(), 200, "the cancelled upload must not succeed"),
    }
    if let Some(s3) = s3 {
        assert_eq!(
            s3.uploads_in_progress(),
            Vec::<String>::new(),
            "the multipart upload was aborted before exit"
        );
    }
    assert_eq!(
        leftovers(&config(dir.path(), s3)).await,
        (0, 0),
        "no intent and no blob left"
    );
    let server = ChildServer::start_with(dir.path(), &env(1, s3));
    assert_eq!(listed(&server).await, vec![]);
}

#[tokio::test]
async fn sigterm_lets_an_upload_finish_local() {
    upload_in_flight_completes_within_the_grace_period(None).await;
}

#[tokio::test]
async fn sigterm_lets_an_upload_finish_s3() {
    let s3 = S3Server::start().await;
    upload_in_flight_completes_within_the_grace_period(Some(&s3)).await;
}

#[tokio::test]
async fn sigterm_past_the_grace_period_cancels_cleanly_local() {
    upload_past_the_grace_period_is_cancelled_cleanly(None).await;
}

#[tokio::test]
async fn sigterm_past_the_grace_period_cancels_cleanly_s3() {
    let s3 = S3Server::start().await;
    upload_past_the_grace_period_is_cancelled_cleanly(Some(&s3)).await;
}
