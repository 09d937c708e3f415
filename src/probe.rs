//! A linear probe of the final hidden state, read from the logits (docs/DESIGN.md §1 "Answer
//! aggregates"; SCIENCE.md §5; docs/EVALUATION.md §1c).
//!
//! At the last layer the logits are z = Γh (Γ the unembedding, V × d; no bias, no soft-capping),
//! so any d independent rows of Γ determine h: over a set S of rows, ĥ = (Γ_SᵀΓ_S)⁻¹Γ_Sᵀz_S.
//! A linear probe θ·ĥ + c of the hidden state is therefore a fixed linear function of the
//! logits at S: θ·ĥ + c = Σ_{t∈S} w_t z_t + c with w_S = Γ_S(Γ_SᵀΓ_S)⁻¹θ. A [`Probe`] holds
//! those (token, weight) pairs and c; it needs neither Γ nor the model at run time. The
//! evaluation fits one per model (`infogravity eval qa --hidden` writes `probe.json`, a
//! mass-mean direction over the answer's states) and the processor streams its value at every
//! step, the first step's and the mean over the answer ([`crate::AnswerStats`]).
//!
//! It reads the raw logits: a row already edited by another sampler (a penalty, a grammar's
//! mask at a probe token) or scaled by a temperature gives another value; a non-finite logit at
//! a probe token makes the step's value NaN, left out of the mean.
//!
//! Cost: |S| multiply-adds per step (2d for the evaluation's probes: 3072 on a 1.5B model,
//! against V ≈ 152k for the field); 8 bytes per term, shared by the sequences.
//!
//! File, JSON, format version 1:
//!
//! ```json
//! { "format": "infogravity-probe", "version": 1, "provenance": "what fit it",
//!   "vocab": 151936, "bias": -0.3, "tokens": [0, 49, 98], "weights": [0.01, -0.2, 0.07] }
//! ```
//! Unknown keys, a wrong tag or version, a token ≥ `vocab`, lengths that differ, more terms
//! than `vocab` and non-finite numbers are errors.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::field::Logit;

/// Format tag of probe files.
pub const PROBE_FORMAT: &str = "infogravity-probe";
/// Format version this build reads and writes.
pub const PROBE_VERSION: u32 = 1;
/// The largest probe file read (2d terms of a 8192-wide model are well under it).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// A probe as a linear function of the logits: `bias + Σ weights[k]·z[tokens[k]]`. Cloning
/// shares the terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    vocab: usize,
    tokens: Arc<[u32]>,
    weights: Arc<[f32]>,
    bias: f32,
}

/// The file form of a [`Probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeFile {
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub provenance: String,
    pub vocab: usize,
    pub bias: f32,
    pub tokens: Vec<u32>,
    pub weights: Vec<f32>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(format!("probe: {msg}"))
}

impl Probe {
    /// A probe over a vocabulary of `vocab` tokens: one finite weight per token of `tokens`
    /// (each < `vocab`, at most `vocab` terms), and a finite `bias`.
    pub fn new(vocab: usize, tokens: &[u32], weights: &[f32], bias: f32) -> Result<Probe> {
        if tokens.len() != weights.len() {
            return Err(invalid(format!(
                "{} tokens but {} weights",
                tokens.len(),
                weights.len()
            )));
        }
        if tokens.len() > vocab {
            return Err(invalid(format!(
                "{} terms for a vocabulary of {vocab}",
                tokens.len()
            )));
        }
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(invalid(format!(
                "token {t} is outside the vocabulary ({vocab})"
            )));
        }
        if let Some(k) = weights.iter().position(|w| !w.is_finite()) {
            return Err(invalid(format!("weight {k} is {}", weights[k])));
        }
        if !bias.is_finite() {
            return Err(invalid(format!("bias is {bias}")));
        }
        Ok(Probe {
            vocab,
            tokens: tokens.into(),
            weights: weights.into(),
            bias,
        })
    }

    /// The vocabulary size it was fitted for.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Its terms: (tokens, weights), and the bias.
    pub fn terms(&self) -> (&[u32], &[f32], f32) {
        (&self.tokens, &self.weights, self.bias)
    }

    /// Its value on a row of raw logits (the caller checks the row's length against
    /// [`vocab`](Self::vocab)); NaN when a logit at a probe token is not finite.
    pub fn read<E: Logit>(&self, row: &[E]) -> f32 {
        let mut s = self.bias as f64;
        for (&t, &w) in self.tokens.iter().zip(self.weights.iter()) {
            s += w as f64 * row[t as usize].to_f32() as f64;
        }
        if s.is_finite() { s as f32 } else { f32::NAN }
    }

    /// Parse and validate a probe file's text.
    pub fn from_json(text: &str) -> Result<Probe> {
        let corrupt = |msg: String| Error::CorruptFile { what: "probe", msg };
        let f: ProbeFile = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        if f.format != PROBE_FORMAT {
            return Err(corrupt(format!(
                "format is `{}`, expected `{PROBE_FORMAT}`",
                f.format
            )));
        }
        if f.version != PROBE_VERSION {
            return Err(corrupt(format!(
                "version {}; this build reads version {PROBE_VERSION}",
                f.version
            )));
        }
        Probe::new(f.vocab, &f.tokens, &f.weights, f.bias).map_err(|e| corrupt(e.to_string()))
    }

    /// Read and validate a file: a regular file of at most [`MAX_FILE_BYTES`].
    pub fn load(path: &std::path::Path) -> Result<Probe> {
        let b = crate::io::read_bounded(path, MAX_FILE_BYTES, "probe")?;
        let t = std::str::from_utf8(&b).map_err(|_| Error::CorruptFile {
            what: "probe",
            msg: "not UTF-8".into(),
        })?;
        Probe::from_json(t)
    }

    /// Its file form, with `provenance`.
    pub fn to_file(&self, provenance: &str) -> ProbeFile {
        ProbeFile {
            format: PROBE_FORMAT.into(),
            version: PROBE_VERSION,
            provenance: provenance.into(),
            vocab: self.vocab,
            bias: self.bias,
            tokens: self.tokens.to_vec(),
            weights: self.weights.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_linear_function_of_the_logits() {
        let p = Probe::new(4, &[0, 3], &[2.0, -1.0], 0.5).unwrap();
        assert_eq!(p.read(&[1.0f32, 9.0, 9.0, 4.0]), 0.5 + 2.0 - 4.0);
        // Tokens outside the probe do not matter; a masked probe token gives NaN.
        assert_eq!(p.read(&[1.0f32, -1e30, f32::NEG_INFINITY, 4.0]), -1.5);
        assert!(p.read(&[f32::NEG_INFINITY, 0.0, 0.0, 0.0]).is_nan());
        assert!(p.read(&[f32::NAN, 0.0, 0.0, 0.0]).is_nan());
    }

    #[test]
    fn bad_probes_are_errors() {
        assert!(Probe::new(4, &[0, 4], &[1.0, 1.0], 0.0).is_err());
        assert!(Probe::new(4, &[0], &[1.0, 1.0], 0.0).is_err());
        assert!(Probe::new(1, &[0, 0], &[1.0, 1.0], 0.0).is_err());
        assert!(Probe::new(4, &[0], &[f32::NAN], 0.0).is_err());
        assert!(Probe::new(4, &[0], &[1.0], f32::INFINITY).is_err());
        assert!(Probe::new(4, &[], &[], 0.0).is_ok());
    }

    #[test]
    fn files_round_trip_and_bad_files_are_errors() {
        let p = Probe::new(5, &[1, 2], &[0.25, -3.0], 1.0).unwrap();
        let text = serde_json::to_string(&p.to_file("test")).unwrap();
        assert_eq!(Probe::from_json(&text).unwrap(), p);
        for bad in [
            text.replace(PROBE_FORMAT, "other"),
            text.replace("\"version\":1", "\"version\":2"),
            text.replace("\"vocab\":5", "\"vocab\":2"),
            text.replace("\"bias\":1.0", "\"bias\":1.0,\"extra\":0"),
            text.replace("[1,2]", "[1]"),
            "{".into(),
        ] {
            assert!(
                matches!(Probe::from_json(&bad), Err(Error::CorruptFile { .. })),
                "{bad}"
            );
        }
    }
}
