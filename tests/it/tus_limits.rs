//! A tenant's unfinished resumable uploads are bounded (`tus.max_unfinished_per_tenant`), also
//! against concurrent creations, and count in `/api/v2/usage` whether or not a quota is set.

use crate::helpers::spawn_with;
use crate::tus::{Tus, product};

pub async fn unfinished_uploads_per_tenant_are_bounded_and_counted_in_usage() {
    let app = spawn_with(|c| c.tus.max_unfinished_per_tenant = 3).await;
    let t = Tus::of(&app, "john1").await;
    // Ten creations at once: exactly three are admitted.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                t.create(1000 + i, &product(&format!("u{i}.bin")))
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 201 | 429)),
        "{statuses:?}"
    );
    let r = t.create(10, &product("more.bin")).await;
    assert_eq!(r.status(), 429);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "too_many_unfinished_uploads", "{v}");

    // No quota is set, yet their declared lengths show as reserved.
    let (s, usage) = t.get("/api/v2/usage").await;
    assert_eq!(s, 200, "{usage}");
    assert_eq!(usage["reserved_files"], 3, "{usage}");
    let reserved = usage["reserved_bytes"].as_u64().expect("bytes");
    assert!((3000..=3027).contains(&reserved), "{usage}");

    // Another tenant is not limited by them.
    let other = Tus::of(&app, "john2").await;
    assert_eq!(other.create(10, &product("x.bin")).await.status(), 201);
}

crate::store_matrix!(unfinished_uploads_per_tenant_are_bounded_and_counted_in_usage);
