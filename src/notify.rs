//! systemd service notifications (`sd_notify(3)`): `READY=1` once the server is built, a
//! `STATUS=` line naming its addresses, `WATCHDOG=1` pings, and `STOPPING=1` when shutdown
//! begins. `systemd/mtfu.service` (`Type=notify`, `WatchdogSec=`) relies on them.
//!
//! Outside systemd (no `NOTIFY_SOCKET`, no `WATCHDOG_USEC`) every call does nothing, so
//! `mtfu serve` behaves the same in a terminal, under another supervisor and in tests.

use std::future::Future;
use std::net::SocketAddr;

use sd_notify::NotifyState;

/// Tell systemd the service is up. Call it after [`crate::app::App::build`] succeeded: the stores
/// answered (they were migrated), TLS is loaded and the listeners are bound.
pub fn ready(https: SocketAddr, plain: Option<SocketAddr>) {
    let status = match plain {
        Some(p) => format!("serving https://{https} and plain http://{p}"),
        None => format!("serving https://{https}"),
    };
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tell systemd the service is stopping: no new connections, in-flight requests get their grace.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing in-flight requests"),
    ]);
}

/// `shutdown`, followed by [`stopping`] the moment it resolves. Wrap the future given to
/// [`crate::app::App::run_until_stopped`] in it.
pub async fn stopping_after(shutdown: impl Future<Output = ()>) {
    shutdown.await;
    stopping();
}

/// When systemd's watchdog is on (`WatchdogSec=` sets `WATCHDOG_USEC` for the main process),
/// spawn a task sending `WATCHDOG=1` at half the interval, as `sd_watchdog_enabled(3)` advises.
/// The pings come from the same runtime that serves requests, so a runtime that stops scheduling
/// tasks misses them and systemd kills and restarts the service. `None` when the watchdog is off.
/// Must be called inside a tokio runtime.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let every = sd_notify::watchdog_enabled()? / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        // After a stall, ping once and keep the rhythm; a burst of late pings proves nothing.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

fn send(states: &[NotifyState]) {
    // A notification that cannot be sent is not a reason to stop serving; systemd then times the
    // start or the watchdog out and says so in its own log.
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify to NOTIFY_SOCKET failed");
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::os::unix::net::UnixDatagram;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// Set in the child process of `under_systemd_...`; unset, [`child_service`] does nothing.
    const CHILD: &str = "MTFU_NOTIFY_TEST_CHILD";

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        match sock.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no notification from the child process")
            }
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }

    // The sd-notify crate reads NOTIFY_SOCKET and WATCHDOG_USEC from the environment, which is
    // process-global (and setting it is unsafe), so the service side runs in a child process: this
    // test binary again, running only `child_service`, with the variables systemd would set.
    #[test]
    fn under_systemd_it_reports_ready_then_watchdog_pings_then_stopping() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        // Only a guard against hanging forever if the child never speaks.
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        // Test names are module paths without the crate: "notify::tests::child_service".
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", &format!("{module}::child_service")])
            .env(CHILD, "1")
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "100000")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the child");

        assert_eq!(
            recv(&sock),
            "READY=1\nSTATUS=serving https://127.0.0.1:443 and plain http://127.0.0.1:80\n"
        );
        assert_eq!(recv(&sock), "WATCHDOG=1\n");
        assert_eq!(recv(&sock), "WATCHDOG=1\n");
        // Closing its stdin is the child's shutdown signal.
        drop(child.stdin.take());
        let stopping = "STOPPING=1\nSTATUS=stopping: finishing in-flight requests\n";
        loop {
            let msg = recv(&sock);
            if msg == stopping {
                break;
            }
            assert_eq!(msg, "WATCHDOG=1\n", "only pings may come before STOPPING");
        }
        assert!(child.wait().expect("wait").success(), "the child failed");
    }

    /// The service half of the test above, which runs it in a child process with
    /// `NOTIFY_SOCKET` set; run directly (without that child's marker variable) it does nothing.
    #[test]
    fn child_service() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            ready(
                SocketAddr::from(([127, 0, 0, 1], 443)),
                Some(SocketAddr::from(([127, 0, 0, 1], 80))),
            );
            let watchdog = spawn_watchdog().expect("WATCHDOG_USEC is set, so the watchdog is on");
            stopping_after(async {
                let mut sink = Vec::new();
                let _ = tokio::io::stdin().read_to_end(&mut sink).await;
            })
            .await;
            watchdog.abort();
        });
    }
}
