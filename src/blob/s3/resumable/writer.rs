//! One session of a resumable S3 blob: bytes fill parts of `part_size` (the first with room for
//! the starting state's tails, read back just before it is sent), parts go to S3 while the next
//! fills, and acknowledged parts become checkpoints in order. A pause sends what is held as a
//! part when it is at least a smallest part, else as a tail object.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use super::{MAX_TAILS, Part, State, Tail, tail_bytes};
use crate::blob::s3::Shared;
use crate::blob::{BlobError, BlobResult, Checkpoint, ResumableWriter};
use crate::budget::BudgetPermit;

/// The part being filled. `front` bytes at its start are kept for the tails of the starting
/// state, read back just before the part is sent.
pub(super) struct Filling {
    buf: BytesMut,
    cap: usize,
    front: usize,
    permit: BudgetPermit,
}

pub(super) struct S3Resumable {
    pub(super) s: Arc<Shared>,
    pub(super) key: String,
    pub(super) upload_id: String,
    /// The durable prefix: the starting state's parts, then this session's acknowledged ones in
    /// order.
    pub(super) parts: Vec<Part>,
    /// The starting state's tails.
    pub(super) tails: Vec<Tail>,
    pub(super) tail_len: usize,
    /// The next part starts with room for the tails.
    pub(super) fold_pending: bool,
    /// The number of the part that holds the tails, once sent.
    pub(super) fold_part: Option<i32>,
    /// A checkpoint has already handed the folded tails out as obsolete.
    pub(super) fold_reported: bool,
    /// What a pause sends as a part rather than a tail.
    pub(super) min_part: usize,
    pub(super) filling: Option<Filling>,
    /// Bytes this session may still be given.
    pub(super) room: u64,
    pub(super) next_part: i32,
    pub(super) uploading: JoinSet<BlobResult<Part>>,
    /// Parts acknowledged out of order, waiting for the ones before them.
    pub(super) acked: BTreeMap<i32, Part>,
    /// Offset of the last checkpoint handed out.
    pub(super) reported: u64,
}

impl S3Resumable {
    fn collect(
        &mut self,
        joined: Result<BlobResult<Part>, tokio::task::JoinError>,
    ) -> BlobResult<()> {
        match joined {
            Ok(Ok(p)) => {
                self.acked.insert(p.n, p);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(BlobError::Other(format!("part upload task: {e}"))),
        }
    }

    /// Move acknowledged parts that follow the durable prefix into it.
    fn advance(&mut self) {
        while let Some(p) = self.acked.remove(&(self.parts.len() as i32 + 1)) {
            self.parts.push(p);
        }
    }

    /// The capacity of a part that starts with `front` bytes of tails when the session can still
    /// bring `incoming` bytes: a whole part, or all of it when less than a part and a smallest
    /// part remain (one part of up to `part_size + min_part` rather than a short one, then a
    /// tail).
    fn cap_for(&self, front: usize, incoming: u64) -> usize {
        let total = (front as u64).saturating_add(incoming);
        let part = self.s.part_size as u64;
        let cap = if total < part + self.min_part as u64 {
            total
        } else {
            part
        };
        usize::try_from(cap).unwrap_or(usize::MAX)
    }

    fn folded(&self) -> bool {
        self.fold_part
            .is_some_and(|n| self.parts.last().is_some_and(|p| p.n >= n))
    }

    /// The durable state now, and the tails it no longer names (handed out once).
    fn state(&mut self) -> (State, Vec<String>) {
        let folded = self.folded();
        let obsolete = if folded && !self.fold_reported {
            self.fold_reported = true;
            self.tails.iter().map(|t| t.name.clone()).collect()
        } else {
            Vec::new()
        };
        let st = State {
            upload_id: self.upload_id.clone(),
            parts: self.parts.clone(),
            tails: if folded {
                Vec::new()
            } else {
                self.tails.clone()
            },
        };
        (st, obsolete)
    }

    /// Send the full part (the tails read into its front first, if it keeps room for them).
    async fn send_part(&mut self) -> BlobResult<()> {
        let Some(Filling {
            mut buf,
            front,
            permit,
            ..
        }) = self.filling.take()
        else {
            return Ok(());
        };
        if front > 0 {
            self.s
                .read_tails(&self.key, &self.tails, &mut buf[..front])
                .await?;
            self.fold_part = Some(self.next_part);
        }
        while self.uploading.len() >= self.s.parts_in_flight {
            if let Some(j) = self.uploading.join_next().await {
                self.collect(j)?;
            }
        }
        let n = self.next_part;
        self.next_part += 1;
        let task =
            self.s
                .clone()
                .upload_part(self.key.clone(), self.upload_id.clone(), n, buf.freeze());
        self.uploading.spawn(async move {
            let r = task.await;
            // The part is in S3 (or failed): its budget is free.
            drop(permit);
            r
        });
        Ok(())
    }
}

#[async_trait]
impl ResumableWriter for S3Resumable {
    fn to_next_boundary(&self) -> u64 {
        // A part that is sent as soon as it is full ends at a boundary; one too short for a
        // part waits for the pause (no boundary in this session).
        let (cap, used) = match &self.filling {
            Some(f) => (f.cap, f.buf.len()),
            None => {
                let front = if self.fold_pending { self.tail_len } else { 0 };
                (self.cap_for(front, self.room), front)
            }
        };
        if cap >= self.min_part {
            cap.saturating_sub(used) as u64
        } else {
            u64::MAX
        }
    }

    async fn write(&mut self, mut chunk: Bytes) -> BlobResult<()> {
        // A part that failed fails the session now, not at the end.
        while let Some(j) = self.uploading.try_join_next() {
            self.collect(j)?;
        }
        if chunk.len() as u64 > self.room {
            return Err(BlobError::Other(
                "more bytes than the session's bound".into(),
            ));
        }
        self.room -= chunk.len() as u64;
        let min_part = self.min_part;
        while !chunk.is_empty() {
            match &mut self.filling {
                Some(f) if f.buf.len() < f.cap => {
                    let take = (f.cap - f.buf.len()).min(chunk.len());
                    f.buf.extend_from_slice(&chunk.split_to(take));
                }
                Some(f) if f.cap >= min_part => self.send_part().await?,
                // Never: a short part's capacity covers all the session may bring.
                Some(_) => return Err(BlobError::Other("part buffer overflow".into())),
                None => {
                    let front = if self.fold_pending { self.tail_len } else { 0 };
                    self.fold_pending = false;
                    let cap = self.cap_for(front, chunk.len() as u64 + self.room);
                    let permit = self.s.budget.acquire(cap).await;
                    let mut buf = BytesMut::with_capacity(cap);
                    buf.resize(front, 0);
                    self.filling = Some(Filling {
                        buf,
                        cap,
                        front,
                        permit,
                    });
                }
            }
        }
        // A part full to the byte is sent at once: its end is a boundary.
        if self
            .filling
            .as_ref()
            .is_some_and(|f| f.buf.len() == f.cap && f.cap >= min_part)
        {
            self.send_part().await?;
        }
        Ok(())
    }

    async fn durable(&mut self) -> BlobResult<Option<Checkpoint>> {
        while let Some(j) = self.uploading.try_join_next() {
            self.collect(j)?;
        }
        self.advance();
        let offset = self.parts.iter().map(|p| p.size).sum::<u64>()
            + if self.folded() {
                0
            } else {
                tail_bytes(&self.tails)
            };
        if offset <= self.reported {
            return Ok(None);
        }
        self.reported = offset;
        let (st, obsolete) = self.state();
        Ok(Some(Checkpoint {
            offset,
            state: st.encode()?,
            obsolete,
        }))
    }

    async fn pause(mut self: Box<Self>) -> BlobResult<Checkpoint> {
        // Enough for a part (the tails read into its front, if reserved): a part, not a tail.
        if self
            .filling
            .as_ref()
            .is_some_and(|f| f.buf.len() > f.front && f.buf.len() >= self.min_part)
        {
            self.send_part().await?;
        }
        while let Some(j) = self.uploading.join_next().await {
            self.collect(j)?;
        }
        self.advance();
        if !self.acked.is_empty() {
            return Err(BlobError::Other(
                "a part is missing from the sequence".into(),
            ));
        }
        let (mut st, mut obsolete) = self.state();
        if let Some(f) = self.filling.take()
            && f.buf.len() > f.front
        {
            let Filling {
                mut buf,
                front,
                permit,
                ..
            } = f;
            if front > 0 && st.tails.len() + 1 > MAX_TAILS {
                // Too many tails: one object of them all and the new bytes.
                self.s
                    .read_tails(&self.key, &st.tails, &mut buf[..front])
                    .await?;
                let merged = self.s.put_tail(&self.key, buf.freeze()).await?;
                obsolete.extend(st.tails.iter().map(|t| t.name.clone()));
                st.tails = vec![merged];
            } else {
                let data = buf.freeze().slice(front..);
                st.tails.push(self.s.put_tail(&self.key, data).await?);
            }
            drop(permit);
        }
        Ok(Checkpoint {
            offset: st.len(),
            state: st.encode()?,
            obsolete,
        })
    }

    async fn abort(mut self: Box<Self>) {
        // Parts sent but never in a persisted state are overwritten by the next session or left
        // out of the completed object.
        self.filling = None;
        self.uploading.shutdown().await;
    }
}
