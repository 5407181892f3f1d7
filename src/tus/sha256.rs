//! SHA-256 that stops and resumes across processes: the state between two chunks of a resumable
//! upload (the eight words of the compression function, the length so far and the < 64 bytes not
//! yet compressed) is a short string kept in the metadata store next to the upload's offset, so
//! the whole file's digest is known at the end without reading the file back, whichever node
//! received which chunk.
//!
//! The blocks go through `sha2::compress256`, the same (CPU-accelerated where available)
//! compression function `Sha256` uses; only the padding is done here.

use sha2::digest::generic_array::GenericArray;

/// FIPS 180-4 §5.3.3: the initial hash value.
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
const BLOCK: usize = 64;
/// Blocks handed to `compress256` per call: one call per 64 KiB keeps the per-call overhead
/// negligible and the copy small.
const BATCH: usize = 1024;

/// A SHA-256 computation that can be saved ([`encode`](Self::encode)) and resumed
/// ([`decode`](Self::decode)) at any byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far, compressed or pending.
    len: u64,
    /// The tail shorter than a block, not yet compressed.
    pending: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl ResumableSha256 {
    pub fn new() -> Self {
        Self {
            state: H0,
            len: 0,
            pending: Vec::with_capacity(BLOCK),
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (BLOCK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < BLOCK {
                return;
            }
            let block = GenericArray::clone_from_slice(&self.pending);
            sha2::compress256(&mut self.state, &[block]);
            self.pending.clear();
        }
        let whole = data.len() / BLOCK * BLOCK;
        let mut batch = Vec::with_capacity((whole / BLOCK).min(BATCH));
        for blocks in data[..whole].chunks(BLOCK * BATCH) {
            batch.clear();
            batch.extend(
                blocks
                    .chunks_exact(BLOCK)
                    .map(GenericArray::clone_from_slice),
            );
            sha2::compress256(&mut self.state, &batch);
        }
        self.pending.extend_from_slice(&data[whole..]);
    }

    /// The digest of everything hashed so far (the computation itself can go on).
    pub fn digest(&self) -> [u8; 32] {
        let mut state = self.state;
        // Padding: 0x80, zeros up to 56 mod 64, the length in bits as a big-endian u64.
        let mut tail = self.pending.clone();
        tail.push(0x80);
        while tail.len() % BLOCK != BLOCK - 8 {
            tail.push(0);
        }
        tail.extend_from_slice(&self.len.wrapping_mul(8).to_be_bytes());
        let blocks: Vec<_> = tail
            .chunks_exact(BLOCK)
            .map(GenericArray::clone_from_slice)
            .collect();
        sha2::compress256(&mut state, &blocks);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    pub fn hex_digest(&self) -> String {
        hex::encode(self.digest())
    }

    /// `s1:{state, 64 hex digits}:{length}:{pending bytes, hex}`.
    pub fn encode(&self) -> String {
        let words: Vec<u8> = self.state.iter().flat_map(|w| w.to_be_bytes()).collect();
        format!(
            "s1:{}:{}:{}",
            hex::encode(words),
            self.len,
            hex::encode(&self.pending)
        )
    }

    /// What [`encode`](Self::encode) made; `None` for anything else, or an inconsistent state.
    pub fn decode(s: &str) -> Option<Self> {
        let mut it = s.split(':');
        if it.next()? != "s1" {
            return None;
        }
        let words = hex::decode(it.next()?).ok()?;
        let len: u64 = it.next()?.parse().ok()?;
        let pending = hex::decode(it.next()?).ok()?;
        if it.next().is_some() || words.len() != 32 || pending.len() >= BLOCK {
            return None;
        }
        if len % BLOCK as u64 != pending.len() as u64 {
            return None;
        }
        let mut state = [0u32; 8];
        for (w, b) in state.iter_mut().zip(words.chunks_exact(4)) {
            *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        let mut p = Vec::with_capacity(BLOCK);
        p.extend_from_slice(&pending);
        Some(Self {
            state,
            len,
            pending: p,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn data(n: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_empty_input_has_sha256s_empty_digest() {
        assert_eq!(
            ResumableSha256::new().hex_digest(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn any_split_into_two_matches_sha256_of_the_whole() {
        for n in [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000] {
            let d = data(n);
            let want: [u8; 32] = Sha256::digest(&d).into();
            for cut in 0..=n {
                let mut h = ResumableSha256::new();
                h.update(&d[..cut]);
                h.update(&d[cut..]);
                assert_eq!(h.digest(), want, "n={n} cut={cut}");
            }
        }
    }

    #[test]
    fn saving_and_resuming_at_every_split_point_matches_sha256() {
        let d = data(3 * 64 * BATCH + 777);
        let want: [u8; 32] = Sha256::digest(&d).into();
        // Uneven pieces, saved and restored through the text form after each one.
        let sizes = [
            1,
            63,
            64,
            65,
            7,
            4096,
            64 * BATCH,
            64 * BATCH + 1,
            3,
            100_000,
        ];
        let mut h = ResumableSha256::new();
        let (mut at, mut i) = (0, 0);
        while at < d.len() {
            let n = sizes[i % sizes.len()].min(d.len() - at);
            h.update(&d[at..at + n]);
            at += n;
            i += 1;
            let saved = h.encode();
            h = ResumableSha256::decode(&saved).expect("decodes");
            assert_eq!(h.len(), at as u64);
            assert_eq!(h.encode(), saved);
        }
        assert_eq!(h.digest(), want);
    }

    #[test]
    fn the_digest_can_be_taken_midway_without_disturbing_the_computation() {
        let d = data(300);
        let mut h = ResumableSha256::new();
        h.update(&d[..100]);
        let mid: [u8; 32] = Sha256::digest(&d[..100]).into();
        assert_eq!(h.digest(), mid);
        h.update(&d[100..]);
        let whole: [u8; 32] = Sha256::digest(&d).into();
        assert_eq!(h.digest(), whole);
    }

    #[test]
    fn malformed_or_inconsistent_states_do_not_decode() {
        let mut h = ResumableSha256::new();
        h.update(b"abc");
        let good = h.encode();
        assert!(ResumableSha256::decode(&good).is_some());
        for bad in [
            String::new(),
            "s1".into(),
            good.replace("s1:", "s2:"),
            good.replacen(":3:", ":4:", 1),
            good.replacen(":3:", ":x:", 1),
            format!("{good}:00"),
            format!("{good}zz"),
            good.replacen("s1:6a", "s1:6", 1),
        ] {
            assert_eq!(ResumableSha256::decode(&bad), None, "{bad}");
        }
    }
}
