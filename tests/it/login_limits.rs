//! The failed-login limiter over HTTPS: attempts count when they arrive (a burst of concurrent
//! guesses is checked no more than the budget allows, and the right password inside the burst
//! is refused), a right password gives its attempt back, and nobody can lock a tenant out: an
//! attacker's failures from some addresses do not stop the owner logging in from another, while
//! the attacker's own guesses stay bounded. Client addresses are real: each client binds its own
//! loopback address (127.0.0.0/8).

use std::net::IpAddr;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{TestApp, eventually, spawn_with};

/// A client trusting `app`'s certificate, connecting from `local`.
fn client_from(app: &TestApp, local: &str) -> reqwest::Client {
    let pem = std::fs::read(app.dir.path().join("tls/self-signed.crt")).expect("certificate");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .local_address(local.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

async fn login(app: &TestApp, client: &reqwest::Client, user: &str, password: &str) -> u16 {
    client
        .post(app.url("/api/token/"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16()
}

/// 200 wrong passwords for one username at once, from one address: only the budget's worth
/// (10) is checked (401), the rest refused unchecked (429), and the right password sent while
/// they are being checked is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cost_as_much_as_sequential_ones() {
    let app = spawn_with(|c| {
        c.auth.max_failed_logins_per_user_address = 10;
        c.auth.max_failed_logins_per_user = 1000;
        c.auth.max_failed_logins_per_ip = 1000;
        c.auth.max_concurrent_hashes = 1;
    })
    .await;
    let ip: IpAddr = "127.0.0.1".parse().expect("ip");
    let burst: Vec<_> = (0..200)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/api/token/"));
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"username": "john1", "password": "wrong"}))
                    .send()
                    .await
                    .expect("token request")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // Once the budget is taken by attempts in flight, the right password is refused unchecked.
    let limiter = &app.state.auth.limiter;
    assert!(eventually(30, || async { limiter.counted("john1", ip).1 >= 10 }).await);
    assert_eq!(login(&app, &app.client, "john1", "test").await, 429);
    let statuses: Vec<u16> = join_all(burst)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (10, 190), "{statuses:?}");
    assert_eq!(limiter.counted("john1", ip), (10, 10, 10));
}

/// Right passwords cost nothing: between failures, any number of logins succeed, and the budget
/// is still the failures'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_password_gives_its_attempt_back() {
    let app = spawn_with(|c| c.auth.max_failed_logins_per_user_address = 2).await;
    let c = &app.client;
    assert_eq!(login(&app, c, "john1", "wrong").await, 401);
    for _ in 0..4 {
        assert_eq!(login(&app, c, "john1", "test").await, 200);
    }
    assert_eq!(login(&app, c, "john1", "wrong").await, 401);
    assert_eq!(login(&app, c, "john1", "test").await, 429);
}

/// An attacker cannot lock john1 out, and cannot guess without bound either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_cannot_lock_a_tenant_out_nor_guess_without_bound() {
    const PAIR: usize = 5;
    const USER: usize = 10;
    let app = spawn_with(|c| {
        c.auth.max_failed_logins_per_user_address = PAIR as u32;
        c.auth.max_failed_logins_per_user = USER as u32;
        c.auth.max_failed_logins_per_ip = 50;
    })
    .await;
    // The owner logged in from 127.0.0.200 before (that address is known for john1).
    let owner = client_from(&app, "127.0.0.200");
    assert_eq!(login(&app, &owner, "john1", "test").await, 200);

    // One attacking address: its own budget, then 429 for it only.
    let attacker = client_from(&app, "127.0.0.2");
    let mut checked = 0;
    for _ in 0..20 {
        if login(&app, &attacker, "john1", "wrong").await == 401 {
            checked += 1;
        }
    }
    assert_eq!(checked, PAIR);
    assert_eq!(login(&app, &attacker, "john1", "test").await, 429);
    // The owner, from an address it never used, is not locked out.
    assert_eq!(
        login(&app, &client_from(&app, "127.0.0.3"), "john1", "test").await,
        200
    );

    // Many attacking addresses, 20 guesses each: past the username's ceiling, a fresh address
    // gets one try. Count what gets checked.
    const ADDRESSES: usize = 30;
    let mut checked_total = checked;
    for i in 1..=ADDRESSES {
        let c = client_from(&app, &format!("127.0.1.{i}"));
        for _ in 0..20 {
            if login(&app, &c, "john1", "wrong").await == 401 {
                checked_total += 1;
            }
        }
    }
    // 127.0.0.2 and 127.0.1.1 fill the ceiling (5 + 5), the 29 others get one guess each.
    assert_eq!(checked_total, USER + (ADDRESSES - 1));
    assert!(checked_total < (ADDRESSES + 1) * PAIR);

    // Under that attack: the owner's known address keeps its own budget (a typo, then in)...
    assert_eq!(login(&app, &owner, "john1", "typo").await, 401);
    assert_eq!(login(&app, &owner, "john1", "test").await, 200);
    // ...a fresh address still gets its one try, so a right password gets through...
    assert_eq!(
        login(&app, &client_from(&app, "127.0.0.4"), "john1", "test").await,
        200
    );
    // ...and a fresh address that already failed waits for the window.
    let typo = client_from(&app, "127.0.0.5");
    assert_eq!(login(&app, &typo, "john1", "typo").await, 401);
    assert_eq!(login(&app, &typo, "john1", "test").await, 429);
    // Other tenants are not concerned.
    assert_eq!(login(&app, &attacker, "john2", "test").await, 200);
}
