//! Pause points: named places in the upload and commit paths where a test can stop the server
//! and make something happen in between (a client hanging up during a commit, gc running
//! between two steps), so that a race is forced in the same order on every run instead of
//! hoped for. Unarmed (always, outside tests) a point costs one atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// The points of one server instance (each test's server has its own).
#[derive(Clone, Default)]
pub struct Hooks(Arc<Inner>);

#[derive(Default)]
struct Inner {
    any: AtomicBool,
    armed: Mutex<HashMap<&'static str, Arc<Pause>>>,
}

/// An armed point: every task that reaches it waits there until released.
pub struct Pause {
    arrived: Semaphore,
    release: Semaphore,
}

impl Pause {
    /// Wait until a task has reached the point (one arrival per call).
    pub async fn reached(&self) {
        if let Ok(p) = self.arrived.acquire().await {
            p.forget();
        }
    }

    /// Let `n` waiting (or future) arrivals go on.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }
}

impl Hooks {
    /// Arm `name`: from now on, tasks reaching it wait for [`Pause::release`].
    pub fn arm(&self, name: &'static str) -> Arc<Pause> {
        let pause = Arc::new(Pause {
            arrived: Semaphore::new(0),
            release: Semaphore::new(0),
        });
        let mut armed = self.0.armed.lock().unwrap_or_else(|e| e.into_inner());
        armed.insert(name, pause.clone());
        self.0.any.store(true, Ordering::SeqCst);
        pause
    }

    /// Disarm `name`, letting every task waiting there go on.
    pub fn disarm(&self, name: &'static str) {
        let mut armed = self.0.armed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = armed.remove(name) {
            p.release.close();
        }
        self.0.any.store(!armed.is_empty(), Ordering::SeqCst);
    }

    /// The point `name`: returns at once unless a test armed it.
    pub async fn point(&self, name: &'static str) {
        if !self.0.any.load(Ordering::Relaxed) {
            return;
        }
        let pause = {
            let armed = self.0.armed.lock().unwrap_or_else(|e| e.into_inner());
            armed.get(name).cloned()
        };
        if let Some(p) = pause {
            p.arrived.add_permits(1);
            // Closed (disarmed): go on.
            if let Ok(permit) = p.release.acquire().await {
                permit.forget();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_armed_point_holds_until_released() {
        let hooks = Hooks::default();
        let pause = hooks.arm("x");
        let h = hooks.clone();
        let task = tokio::spawn(async move { h.point("x").await });
        pause.reached().await;
        assert!(!task.is_finished());
        pause.release(1);
        task.await.expect("task");
        // Other points, and disarmed ones, do not wait.
        hooks.point("y").await;
        hooks.disarm("x");
        hooks.point("x").await;
    }
}
