//! The global buffer budget: a byte-counting semaphore that bounds the bytes all uploads hold in
//! memory together. The blob writers hold it for what they buffer; the upload pipeline
//! ([`crate::upload`]) and the stores are handed one shared [`Budget`] when the app starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget counts in KiB: one semaphore permit per KiB keeps the permit count far below
/// tokio's limit even for budgets of many GiB.
const UNIT: u64 = 1024;

/// A byte-counting semaphore shared by every upload. The blob writers hold it for what they
/// buffer: the local store a chunk until it is written, the S3 store a whole part from before it
/// fills until S3 has it. When the budget is spent, uploads wait before pulling more, so TCP
/// flow control slows the clients instead of memory growing.
pub struct Budget {
    sem: Arc<Semaphore>,
    units: u64,
    in_use: AtomicU64,
    high_water: AtomicU64,
}

/// Bytes of the budget held; released on drop.
pub struct BudgetPermit {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    budget: Arc<Budget>,
}

impl Budget {
    pub fn new(bytes: u64) -> Arc<Budget> {
        let units = (bytes / UNIT).max(1);
        Arc::new(Budget {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
            in_use: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
        })
    }

    /// Total bytes of the budget.
    pub fn capacity(&self) -> u64 {
        self.units * UNIT
    }

    /// Bytes held for upload buffers right now.
    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Most bytes ever held at once for upload buffers.
    pub fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Relaxed)
    }

    /// Wait until `bytes` (rounded up to whole KiB, at most the whole budget) are free.
    pub async fn acquire(self: &Arc<Self>, bytes: usize) -> BudgetPermit {
        let units = (bytes as u64).div_ceil(UNIT).clamp(1, self.units);
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = match self.sem.clone().acquire_many_owned(units as u32).await {
            Ok(p) => p,
            Err(_) => unreachable!("the budget semaphore is never closed"),
        };
        self.held(permit, units)
    }

    /// `bytes` (as [`Budget::acquire`] counts them) if they are free now; never waits. A writer
    /// that gathers chunks before writing them uses it to learn that it must give back what it
    /// holds (write its gathered chunks) before it waits: writers waiting while holding budget
    /// could hold all of it between them.
    pub fn try_acquire(self: &Arc<Self>, bytes: usize) -> Option<BudgetPermit> {
        let units = (bytes as u64).div_ceil(UNIT).clamp(1, self.units);
        let permit = self.sem.clone().try_acquire_many_owned(units as u32).ok()?;
        Some(self.held(permit, units))
    }

    fn held(self: &Arc<Self>, permit: OwnedSemaphorePermit, units: u64) -> BudgetPermit {
        let held = units * UNIT;
        let now = self.in_use.fetch_add(held, Ordering::Relaxed) + held;
        self.high_water.fetch_max(now, Ordering::Relaxed);
        metrics::gauge!("mtfu_buffer_bytes_in_use").set(now as f64);
        metrics::gauge!("mtfu_buffer_bytes_high_water").set(self.high_water() as f64);
        BudgetPermit {
            _permit: permit,
            bytes: held,
            budget: self.clone(),
        }
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        let left = self.budget.in_use.fetch_sub(self.bytes, Ordering::Relaxed) - self.bytes;
        metrics::gauge!("mtfu_buffer_bytes_in_use").set(left as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_never_hands_out_more_than_its_capacity() {
        let b = Budget::new(4 * 1024);
        let p1 = b.acquire(3000).await;
        assert_eq!(b.in_use(), 3 * 1024);
        // The remaining KiB is free, a second 2 KiB must wait.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), b.acquire(2048));
        assert!(waiting.await.is_err());
        drop(p1);
        let _p2 = b.acquire(2048).await;
        assert_eq!(b.in_use(), 2 * 1024);
        assert_eq!(b.high_water(), 3 * 1024);
    }

    #[tokio::test]
    async fn try_acquire_takes_what_is_free_and_never_waits() {
        let b = Budget::new(4 * 1024);
        let p = b.try_acquire(3000).expect("free");
        assert_eq!(b.in_use(), 3 * 1024);
        assert!(b.try_acquire(2048).is_none(), "one KiB is free, not two");
        let _q = b.try_acquire(1024).expect("the last KiB");
        drop(p);
        assert_eq!(b.in_use(), 1024);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_budget_takes_the_whole_budget() {
        let b = Budget::new(2048);
        let _p = b.acquire(1 << 20).await;
        assert_eq!(b.in_use(), b.capacity());
    }
}
