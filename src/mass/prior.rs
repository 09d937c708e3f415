//! `Prior`: a reference unigram table over a tokenizer's vocabulary (docs/DESIGN.md §1, N(Q)).
//!
//! # File format, version 1 (all integers little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `IGPRIOR\0` |
//! | 8 | 4 | format version, `1` |
//! | 12 | 4 | V, vocabulary size (≥ 1) |
//! | 16 | 8 | total, Σ counts |
//! | 24 | 4 | L, provenance length in bytes (≤ 65,536) |
//! | 28 | L | provenance, UTF-8: corpus, tokenizer, tool and date |
//! | 28+L | 4·V | counts, u32 per token id |
//! | 28+L+4V | 8 | FNV-1a 64 of every preceding byte |
//!
//! Loading checks the magic, version, sizes (the file must be exactly this long), UTF-8, that
//! the counts sum to `total`, and the checksum; any failure is [`Error::CorruptFile`].

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"IGPRIOR\0";
/// The format version this build reads and writes.
pub const PRIOR_VERSION: u32 = 1;
const MAX_PROVENANCE: usize = 65_536;
/// The largest Prior file: header, the longest provenance and one u32 count per token of the
/// largest vocabulary ([`crate::processor::MAX_VOCAB`]), and the checksum.
pub const MAX_FILE_BYTES: u64 =
    28 + MAX_PROVENANCE as u64 + 4 * crate::processor::MAX_VOCAB as u64 + 8;

/// A unigram count table with additive smoothing applied at look-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    counts: Vec<u32>,
    total: u64,
    provenance: String,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn corrupt<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::CorruptFile {
        what: "prior",
        msg: msg.into(),
    })
}

impl Prior {
    /// Build from counts (one per token id) and a provenance note.
    pub fn from_counts(counts: Vec<u32>, provenance: &str) -> Result<Prior> {
        if counts.is_empty() {
            return Err(Error::InvalidArgument(
                "a prior needs at least one token".into(),
            ));
        }
        if provenance.len() > MAX_PROVENANCE {
            return Err(Error::InvalidArgument(
                "provenance longer than 64 KiB".into(),
            ));
        }
        let total = counts.iter().map(|&c| c as u64).sum();
        Ok(Prior {
            counts,
            total,
            provenance: provenance.to_string(),
        })
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.counts.len()
    }
    /// Σ counts.
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Where the counts came from.
    pub fn provenance(&self) -> &str {
        &self.provenance
    }
    /// Raw count of a token (0 for ids past the table).
    pub fn count(&self, id: u32) -> u32 {
        self.counts.get(id as usize).copied().unwrap_or(0)
    }

    /// ln u_i with u_i = (c_i + α) / (total + α·V).
    pub fn log_prob(&self, id: u32, alpha: f64) -> f64 {
        let v = self.counts.len() as f64;
        ((self.count(id) as f64 + alpha) / (self.total as f64 + alpha * v)).ln()
    }

    /// N_KL = KL(q̂ ‖ u) of a query's token histogram q̂ against the smoothed prior, nats.
    /// `scratch` is reused to sort the ids (no allocation once it has grown).
    pub fn novelty_kl(&self, query: &[u32], alpha: f64, scratch: &mut Vec<u32>) -> Result<f64> {
        if query.is_empty() {
            return Err(Error::InvalidArgument("novelty of an empty query".into()));
        }
        if let Some(&id) = query.iter().find(|&&id| id as usize >= self.counts.len()) {
            return Err(Error::TokenOutOfRange {
                what: "query token (prior)",
                id: id as u64,
                vocab: self.counts.len(),
            });
        }
        scratch.clear();
        scratch.extend_from_slice(query);
        scratch.sort_unstable();
        let n = query.len() as f64;
        let mut kl = 0.0;
        for run in scratch.chunk_by(|a, b| a == b) {
            let q = run.len() as f64 / n;
            kl += q * (q.ln() - self.log_prob(run[0], alpha));
        }
        Ok(kl.max(0.0))
    }

    /// Serialise in format version 1.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(36 + self.provenance.len() + 4 * self.counts.len());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&PRIOR_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.counts.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.total.to_le_bytes());
        b.extend_from_slice(&(self.provenance.len() as u32).to_le_bytes());
        b.extend_from_slice(self.provenance.as_bytes());
        for c in &self.counts {
            b.extend_from_slice(&c.to_le_bytes());
        }
        let h = fnv1a(&b);
        b.extend_from_slice(&h.to_le_bytes());
        b
    }

    /// Parse and validate format version 1.
    pub fn from_bytes(b: &[u8]) -> Result<Prior> {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        if b.len() < 36 {
            return corrupt(format!(
                "{} bytes is shorter than the 36-byte minimum",
                b.len()
            ));
        }
        if &b[..8] != MAGIC {
            return corrupt("bad magic (not an infogravity prior)");
        }
        let version = u32_at(8);
        if version != PRIOR_VERSION {
            return corrupt(format!(
                "format version {version}; this build reads version {PRIOR_VERSION}"
            ));
        }
        let v = u32_at(12) as usize;
        let total = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
        let l = u32_at(24) as usize;
        if v == 0 {
            return corrupt("vocabulary size 0");
        }
        if l > MAX_PROVENANCE {
            return corrupt("provenance longer than 64 KiB");
        }
        let want = 28u64 + l as u64 + 4 * v as u64 + 8;
        if b.len() as u64 != want {
            return corrupt(format!(
                "length {} does not match the header (expected {want})",
                b.len()
            ));
        }
        let body = b.len() - 8;
        let stored = u64::from_le_bytes(b[body..].try_into().expect("8 bytes"));
        if fnv1a(&b[..body]) != stored {
            return corrupt("checksum mismatch");
        }
        let provenance = std::str::from_utf8(&b[28..28 + l])
            .map_err(|_| Error::CorruptFile {
                what: "prior",
                msg: "provenance is not UTF-8".into(),
            })?
            .to_string();
        let counts: Vec<u32> = b[28 + l..body]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let sum: u64 = counts.iter().map(|&c| c as u64).sum();
        if sum != total {
            return corrupt(format!("counts sum to {sum}, header says {total}"));
        }
        Ok(Prior {
            counts,
            total,
            provenance,
        })
    }

    /// Read and validate a file: a regular file of at most [`MAX_FILE_BYTES`].
    pub fn load(path: &std::path::Path) -> Result<Prior> {
        Prior::from_bytes(&crate::io::read_bounded(path, MAX_FILE_BYTES, "prior")?)
    }

    /// Write a file.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, self.to_bytes())
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption() {
        let p = Prior::from_counts(vec![5, 0, 3, 2], "test corpus").unwrap();
        let b = p.to_bytes();
        assert_eq!(Prior::from_bytes(&b).unwrap(), p);
        for i in [0usize, 9, 13, 20, 30, b.len() - 1] {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(
                matches!(Prior::from_bytes(&c), Err(Error::CorruptFile { .. })),
                "flip at {i}"
            );
        }
        assert!(Prior::from_bytes(&b[..b.len() - 1]).is_err());
        assert!(Prior::from_bytes(b"short").is_err());
    }

    #[test]
    fn novelty_is_kl_of_histogram() {
        let p = Prior::from_counts(vec![10, 10, 10, 10], "uniform").unwrap();
        let mut s = vec![];
        // A query spread evenly over all tokens has KL 0 against a uniform prior.
        assert!(p.novelty_kl(&[0, 1, 2, 3], 0.5, &mut s).unwrap().abs() < 1e-12);
        // One repeated token: KL = ln(1/u) = ln 4.
        let kl = p.novelty_kl(&[2, 2, 2], 0.5, &mut s).unwrap();
        assert!((kl - 4f64.ln()).abs() < 1e-12);
        assert!(p.novelty_kl(&[9], 0.5, &mut s).is_err());
    }
}
