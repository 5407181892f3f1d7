//! The failed-login limiter: how many passwords may be tried, per client address, per
//! (username, address) pair and per username, in a sliding window (`auth.login_window_secs`).
//!
//! **An attempt is counted when it arrives**, before its password is checked, and given back
//! when the password turns out right ([`Attempt::succeeded`]). So N guesses sent at once cost as
//! much of the budget as N sent one after the other: past the budget they are refused (429)
//! without being checked, whatever the queue in front of argon2.
//!
//! **Nobody can lock a tenant out.** A username's guesses are bounded without refusing its owner:
//! - per address, all usernames (`auth.max_failed_logins_per_ip`): an address over it gets 429;
//! - per (username, address) (`auth.max_failed_logins_per_user_address`): an address gets that
//!   many tries at one username, then 429 for that username only;
//! - per username, all addresses (`auth.max_failed_logins_per_user`): past this ceiling the
//!   username is *guarded*, which only slows: an address that logged in as this user before
//!   (remembered for [`KNOWN_FOR`]) keeps its own budget, any other address gets **one** try at
//!   this username per window (its first is checked, so a right password from a fresh address
//!   gets through); no address is refused because of what other addresses did.
//!
//! Per window, a username therefore gets at most `per_user` + one guess per further address
//! + `per_user_address` per address it was used from before, and every address at most
//!   `per_ip` in all. IPv6 addresses count per /64 (one host usually owns a whole /64).
//!
//! Per node: each mtfu process counts its own attempts (documented in README). Memory is
//! bounded: at most [`MAX_KEYS`] counters and [`MAX_KNOWN`] remembered addresses; when the
//! counters are full of live entries, new keys are refused (429) rather than forgotten.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters kept before old ones are swept; past it (all live), attempts needing a new counter
/// are refused, so a flood of usernames cannot grow memory unbounded.
pub const MAX_KEYS: usize = 100_000;
/// Addresses remembered as having logged in (per username).
pub const MAX_KNOWN: usize = 100_000;
/// How long a successful login keeps its address known for that username.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The limits, from `[auth]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failed logins per username, all addresses, before the username is guarded.
    pub per_user: u32,
    /// Failed logins per (username, address).
    pub per_user_address: u32,
    /// Failed logins per address, all usernames.
    pub per_ip: u32,
    pub window: Duration,
}

#[derive(Default)]
struct State {
    /// Arrival times of the attempts counted, per key (`a:`, `p:`, `u:`).
    attempts: HashMap<String, VecDeque<Instant>>,
    /// `name|net` → last successful login from there.
    known: HashMap<String, Instant>,
}

pub struct LoginLimiter {
    limits: Limits,
    state: Mutex<State>,
}

/// An attempt counted against the budgets; its password may now be checked.
#[must_use = "an attempt whose password was right must be given back"]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: [String; 3],
    known_key: String,
    at: Instant,
}

/// The address as the limiter counts it: IPv4 (and IPv4-mapped IPv6) whole, IPv6 per /64.
fn net(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// Count an attempt to log in as `username` from `ip`, or say how many seconds to wait.
    pub fn begin(&self, username: &str, ip: IpAddr) -> Result<Attempt<'_>, u64> {
        let now = Instant::now();
        let window = self.limits.window;
        let net = net(ip);
        let keys = [
            format!("a:{net}"),
            format!("p:{username}|{net}"),
            format!("u:{username}"),
        ];
        let known_key = format!("{username}|{net}");
        let mut st = self.state.lock().map_err(|_| 1u64)?;
        let st = &mut *st;
        let missing = keys
            .iter()
            .filter(|k| !st.attempts.contains_key(*k))
            .count();
        if st.attempts.len() + missing > MAX_KEYS {
            st.attempts
                .retain(|_, q| q.back().is_some_and(|t| now - *t < window));
            if st.attempts.len() + missing > MAX_KEYS {
                tracing::warn!("login limiter full: refusing attempts with new keys");
                return Err(window.as_secs().max(1));
            }
        }
        // Seconds until the oldest attempt of `key` leaves the window, if `key` holds `limit`.
        let mut counts = [0u32; 3];
        let mut waits = [1u64; 3];
        for (i, key) in keys.iter().enumerate() {
            if let Some(q) = st.attempts.get_mut(key) {
                while q.front().is_some_and(|t| now - *t >= window) {
                    q.pop_front();
                }
                counts[i] = q.len() as u32;
                if let Some(oldest) = q.front() {
                    waits[i] = (window - (now - *oldest)).as_secs().max(1);
                }
            }
        }
        let [addr, pair, user] = counts;
        let known = st
            .known
            .get(&known_key)
            .is_some_and(|t| now - *t < KNOWN_FOR);
        if addr >= self.limits.per_ip {
            return Err(waits[0]);
        }
        if pair >= self.limits.per_user_address {
            return Err(waits[1]);
        }
        // Guarded: one try per window for an address this user never logged in from.
        if user >= self.limits.per_user && !known && pair >= 1 {
            return Err(waits[1]);
        }
        for key in &keys {
            st.attempts.entry(key.clone()).or_default().push_back(now);
        }
        Ok(Attempt {
            limiter: self,
            keys,
            known_key,
            at: now,
        })
    }

    /// Attempts counted now for `username` from `ip`: (address, pair, username).
    pub fn counted(&self, username: &str, ip: IpAddr) -> (usize, usize, usize) {
        let now = Instant::now();
        let net = net(ip);
        let Ok(st) = self.state.lock() else {
            return (0, 0, 0);
        };
        let n = |key: String| {
            st.attempts.get(&key).map_or(0, |q| {
                q.iter().filter(|t| now - **t < self.limits.window).count()
            })
        };
        (
            n(format!("a:{net}")),
            n(format!("p:{username}|{net}")),
            n(format!("u:{username}")),
        )
    }
}

impl Attempt<'_> {
    /// The password was right: the attempt is given back, and the address is known for this
    /// username from now on.
    pub fn succeeded(self) {
        self.give_back(true);
    }

    /// No password was checked (the store failed): the attempt is given back.
    pub fn not_checked(self) {
        self.give_back(false);
    }

    fn give_back(self, remember: bool) {
        let Ok(mut st) = self.limiter.state.lock() else {
            return;
        };
        for key in &self.keys {
            if let Some(q) = st.attempts.get_mut(key)
                && let Some(i) = q.iter().rposition(|t| *t == self.at)
            {
                q.remove(i);
            }
        }
        if remember {
            let now = Instant::now();
            if st.known.len() >= MAX_KNOWN && !st.known.contains_key(&self.known_key) {
                st.known.retain(|_, t| now - *t < KNOWN_FOR);
            }
            if st.known.len() < MAX_KNOWN || st.known.contains_key(&self.known_key) {
                st.known.insert(self.known_key, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn limits(per_user: u32, per_user_address: u32, per_ip: u32) -> Limits {
        Limits {
            per_user,
            per_user_address,
            per_ip,
            window: Duration::from_secs(60),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_limiter_blocks_after_the_limit_and_only_that_user() {
        let l = LoginLimiter::new(limits(3, 3, 100));
        let a = ip("127.0.0.1");
        for _ in 0..3 {
            let _failed = l.begin("a", a).expect("within the budget");
        }
        assert!(l.begin("a", a).is_err());
        assert!(l.begin("b", a).is_ok());
    }

    /// Many attempts at once, each holding its slot while its (slow) password check runs: only
    /// the budget's worth is let through to the check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_attempts_beyond_the_budget_are_not_checked() {
        let l = Arc::new(LoginLimiter::new(limits(1000, 7, 1000)));
        let checked = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Barrier::new(201));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (l, checked, release) = (l.clone(), checked.clone(), release.clone());
                tokio::spawn(async move {
                    let attempt = l.begin("john1", ip("10.0.0.1"));
                    // The password check is slow: every attempt has arrived before any of them
                    // is found wrong.
                    release.wait().await;
                    if attempt.is_ok() {
                        checked.fetch_add(1, Ordering::SeqCst);
                    }
                    drop(attempt);
                })
            })
            .collect();
        release.wait().await;
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(checked.load(Ordering::SeqCst), 7);
        assert_eq!(l.counted("john1", ip("10.0.0.1")), (7, 7, 7));
    }

    #[test]
    fn a_right_password_gives_its_attempt_back() {
        let l = LoginLimiter::new(limits(1000, 3, 1000));
        let a = ip("10.0.0.1");
        let first = l.begin("john1", a).expect("1");
        let _second = l.begin("john1", a).expect("2");
        let _third = l.begin("john1", a).expect("3");
        assert!(
            l.begin("john1", a).is_err(),
            "three in flight fill the budget"
        );
        first.succeeded();
        assert_eq!(l.counted("john1", a), (2, 2, 2));
        let _fourth = l.begin("john1", a).expect("the given-back slot");
        assert!(l.begin("john1", a).is_err());
    }

    #[test]
    fn failures_from_one_address_do_not_lock_out_another() {
        let l = LoginLimiter::new(limits(10, 5, 100));
        for _ in 0..5 {
            let _ = l.begin("john1", ip("10.0.0.1")).expect("attacker's budget");
        }
        assert!(l.begin("john1", ip("10.0.0.1")).is_err());
        l.begin("john1", ip("10.0.0.2"))
            .expect("another address")
            .succeeded();
    }

    #[test]
    fn a_guarded_username_gives_fresh_addresses_one_try_and_known_ones_their_budget() {
        let l = LoginLimiter::new(limits(10, 5, 100));
        // The owner logged in from .200 before the attack.
        l.begin("john1", ip("10.0.0.200"))
            .expect("owner")
            .succeeded();
        // Many attacker addresses: the ceiling of 10, then one try each.
        let mut checked = 0;
        for i in 0..100 {
            for _ in 0..5 {
                if l.begin("john1", ip(&format!("10.0.1.{i}"))).is_ok() {
                    checked += 1;
                }
            }
        }
        // 2 addresses use 5 each (10: the ceiling), the 98 others get one try each.
        assert_eq!(checked, 10 + 98);
        // A fresh address still gets its one try (a right password gets through)...
        l.begin("john1", ip("10.0.2.1")).expect("fresh").succeeded();
        // ...a fresh address that failed once waits...
        let _ = l.begin("john1", ip("10.0.2.2")).expect("first try");
        assert!(l.begin("john1", ip("10.0.2.2")).is_err());
        // ...and the owner's known address keeps its own budget.
        for _ in 0..4 {
            let _ = l.begin("john1", ip("10.0.0.200")).expect("known address");
        }
        l.begin("john1", ip("10.0.0.200"))
            .expect("known")
            .succeeded();
    }

    #[test]
    fn an_address_over_its_limit_is_refused_for_every_username() {
        let l = LoginLimiter::new(limits(100, 100, 3));
        for u in ["a", "b", "c"] {
            let _ = l.begin(u, ip("10.0.0.1")).expect("budget");
        }
        assert!(l.begin("d", ip("10.0.0.1")).is_err());
        assert!(l.begin("d", ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let l = LoginLimiter::new(limits(100, 2, 100));
        let _ = l.begin("a", ip("2001:db8:1:2::1")).expect("1");
        let _ = l.begin("a", ip("2001:db8:1:2:ffff::9")).expect("2");
        assert!(l.begin("a", ip("2001:db8:1:2::77")).is_err(), "same /64");
        assert!(l.begin("a", ip("2001:db8:1:3::1")).is_ok(), "another /64");
        assert_eq!(net(ip("::ffff:10.1.2.3")), "10.1.2.3");
    }
}
