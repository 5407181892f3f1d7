//! Two mtfu nodes sharing one PostgreSQL database and one S3 bucket (s3s-fs), each with a data
//! directory of its own: a resumable upload begun on node A continues and finishes on node B,
//! chunk by chunk alternating, and the two nodes' leases keep one `PATCH` at a time. Skipped
//! (with a message) when `MTFU_TEST_POSTGRES_URL` is unset.

use futures_util::StreamExt;

use crate::store::{BLOBS, BlobStore, META, MetaStore};
use crate::tus::{Node, Tus, data, fresh_config, leftovers, product};

const MIB: usize = 1024 * 1024;
const SECRET: &str = "one secret shared by both nodes, 32+ bytes";

/// Nodes A and B on one database and bucket, the S3 server kept alive by the result.
async fn two_nodes() -> (
    Node,
    Node,
    Option<crate::s3::S3Server>,
    [tempfile::TempDir; 2],
) {
    let (cfg, dir_a, s3) = fresh_config(|c| {
        c.limits.max_file_size = 64 << 20;
        c.auth.jwt_secret = Some(SECRET.into());
    })
    .await;
    let dir_b = tempfile::tempdir().expect("tempdir");
    let mut cfg_b = cfg.clone();
    cfg_b.server.data_dir = dir_b.path().to_owned();
    let a = Node::start(cfg).await;
    let b = Node::start(cfg_b).await;
    (a, b, s3, [dir_a, dir_b])
}

async fn on_postgres_and_s3<F: std::future::Future<Output = ()>>(f: F) {
    META.scope(MetaStore::Postgres, BLOBS.scope(BlobStore::S3, f))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn an_upload_begun_on_node_a_finishes_on_node_b() {
    on_postgres_and_s3(async {
        let (a, b, s3, dirs) = two_nodes().await;
        let ta = a.tus("john1").await;
        let tb = Tus {
            base: b.base.clone(),
            client: b.client.clone(),
            token: ta.token.clone(), // A's token works on B: same secret, same tenants.
        };
        let d = data(13 * MIB + 5, 21);
        let url_a = ta.start(d.len() as u64, &product("nodes.bin")).await;
        let url_b = tb.here(&url_a);
        // A: a whole part and a tail; B: small tails; A: enough to fold them into a part; B:
        // the rest.
        ta.send(&url_a, &d[..5 * MIB + 3], 0, &[5 * MIB + 3]).await;
        assert_eq!(tb.offset(&url_b).await, (5 * MIB + 3) as u64);
        let mut at = 5 * MIB + 3;
        for (i, n) in [1, 4096, 3 * MIB, 100_000, 2 * MIB + 9]
            .into_iter()
            .enumerate()
        {
            let (t, url) = if i % 2 == 0 {
                (&tb, &url_b)
            } else {
                (&ta, &url_a)
            };
            let r = t.patch(url, at as u64, &d[at..at + n]).await;
            assert_eq!(r.status(), 204, "chunk {i}");
            at += n;
        }
        assert_eq!(ta.offset(&url_a).await, at as u64);
        tb.send(&url_b, &d, at, &[MIB]).await;
        ta.assert_file("nodes.bin", &d).await;
        tb.assert_file("nodes.bin", &d).await;
        assert_eq!(ta.head(&url_a).await.status(), 404);
        assert_eq!(leftovers(dirs[0].path(), s3.as_ref()), Vec::<String>::new());
        assert_eq!(leftovers(dirs[1].path(), s3.as_ref()), Vec::<String>::new());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(mtfu_no_pg, ignore = "no PostgreSQL: set MTFU_TEST_POSTGRES_URL")]
async fn a_patch_on_node_b_waits_for_node_as_lease() {
    on_postgres_and_s3(async {
        let (a, b, _s3, _dirs) = two_nodes().await;
        let ta = a.tus("john1").await;
        let tb = b.tus("john1").await;
        let d = data(MIB, 22);
        let url_a = ta.start(d.len() as u64, &product("lease.bin")).await;
        let url_b = tb.here(&url_a);
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (first, second) = (
            bytes::Bytes::copy_from_slice(&d[..1000]),
            bytes::Bytes::copy_from_slice(&d[1000..]),
        );
        let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
            futures_util::stream::once(async move {
                let _ = go_rx.await;
                Ok(second)
            }),
        );
        let slow = {
            let (t, url) = (ta.clone(), url_a.clone());
            tokio::spawn(async move {
                t.patch_with(&url, 0, reqwest::Body::wrap_stream(body), None)
                    .await
                    .status()
            })
        };
        // Node B is refused while A's PATCH holds the upload.
        let id = url_a.rsplit('/').next().expect("id");
        assert!(crate::tus::leased(&b.state, "john1", id).await);
        assert_eq!(tb.patch(&url_b, 0, &d).await.status(), 423);
        assert_eq!(tb.offset(&url_b).await, 0);
        let _ = go_tx.send(());
        assert_eq!(slow.await.expect("task"), 204);
        tb.assert_file("lease.bin", &d).await;
    })
    .await
}
