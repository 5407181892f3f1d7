//! Quota admission for one upload: the tenant's reservation grows ahead of the bytes that
//! arrive (see [`crate::meta::quota`] for the invariant), so an upload over quota stops at the
//! chunk that would pass it and keeps nothing.

use crate::domain::{BlobKey, TenantId, now_micros};
use crate::meta::Meta;
use crate::meta::quota::{Defaults, Reserved};
use crate::upload::{Admit, UploadError};

/// Reservations grow by at least this much, and by half of what is held (so a large upload
/// needs a logarithmic number of metadata round trips), never past what the quota has room for.
const MIN_STEP: u64 = 64 * 1024;
/// How long the tenant's oldest upload in flight waits for room held by younger uploads (which
/// are refused when they next grow, and release it) before it is refused too.
const OLDEST_WAITS: std::time::Duration = std::time::Duration::from_secs(5);
/// How often it looks again.
const OLDEST_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// Drop the quota reservation of a finished or abandoned upload (best effort: gc drops a
/// reservation whose upload is gone).
pub async fn release(meta: &Meta, key: &BlobKey) {
    if let Err(e) = meta.release(key).await {
        tracing::warn!(%key, error = %e, "could not release a quota reservation; gc will");
    }
}

/// The quota reservation of one upload in flight.
pub struct Reservation {
    meta: Meta,
    tenant: TenantId,
    key: BlobKey,
    defaults: Defaults,
    /// Bytes held; `None`: the tenant has no limit, nothing is held.
    held: Option<u64>,
    recorded: bool,
}

impl Reservation {
    /// Take the first reservation for the upload `key`: one file, and `expected` bytes (or as
    /// many of them as fit; at least `at_least`). Fails with [`UploadError::QuotaExceeded`] when
    /// not even that fits.
    pub async fn begin(
        meta: &Meta,
        tenant: TenantId,
        key: &BlobKey,
        defaults: Defaults,
        at_least: u64,
        expected: u64,
    ) -> Result<Reservation, UploadError> {
        let held = match meta
            .reserve(
                tenant,
                key,
                at_least,
                expected.max(at_least),
                defaults,
                now_micros(),
            )
            .await?
        {
            Reserved::Unlimited => None,
            Reserved::Held(n) => Some(n),
            Reserved::Exceeded => return Err(UploadError::QuotaExceeded),
        };
        Ok(Reservation {
            meta: meta.clone(),
            tenant,
            key: key.clone(),
            defaults,
            held,
            recorded: held.is_some(),
        })
    }

    /// Bytes held (`None`: no limit applies).
    pub fn held(&self) -> Option<u64> {
        self.held
    }

    /// Whether a reservation row may exist for this upload, to be released when it ends: one
    /// was taken at the start (limits lifted since leave it in place). A tenant without limits
    /// never gets one, so its uploads need no release, and no metadata write for it.
    pub fn recorded(&self) -> bool {
        self.recorded
    }
}

#[async_trait::async_trait]
impl Admit for Reservation {
    async fn admit(&mut self, total: u64) -> Result<(), UploadError> {
        let Some(held) = self.held else {
            return Ok(());
        };
        if total <= held {
            return Ok(());
        }
        let need = total - held;
        let want = need.max(MIN_STEP).max(held / 2);
        let deadline = tokio::time::Instant::now() + OLDEST_WAITS;
        loop {
            let r = self
                .meta
                .reserve(
                    self.tenant,
                    &self.key,
                    need,
                    want,
                    self.defaults,
                    now_micros(),
                )
                .await?;
            match r {
                Reserved::Held(n) => {
                    self.held = Some(n);
                    return Ok(());
                }
                // The limits were lifted meanwhile.
                Reserved::Unlimited => {
                    self.held = None;
                    return Ok(());
                }
                Reserved::Exceeded => {
                    // Uploads that grow together could otherwise all be refused at once,
                    // though one would fit: the tenant's oldest upload in flight waits for the
                    // younger ones, which are refused and give their room back.
                    let oldest = self.meta.oldest_reservation(self.tenant).await?;
                    if oldest.as_deref() != Some(self.key.as_str())
                        || tokio::time::Instant::now() >= deadline
                    {
                        return Err(UploadError::QuotaExceeded);
                    }
                    tokio::time::sleep(OLDEST_RETRY).await;
                }
            }
        }
    }
}
