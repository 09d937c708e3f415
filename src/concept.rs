//! Concept-direction anchoring (docs/DESIGN.md §1 "Interventions", seed 003; SCIENCE.md §4.2):
//! a dense logit tilt toward a concept, gated by the void score and bounded in KL.
//!
//! At the last layer the logits are z = Γ·h, Γ the unembedding (V × d). Moving the final
//! hidden state along a concept direction ℓ (Park, Choe, Veitch, arXiv 2311.03658: the mean
//! unembedding of the concept's tokens, or the contrast of two sets) adds α·Γℓ to the logits:
//! a fixed vector b = Γℓ, so a logits-only processor applies it exactly. [`Concept`] holds b,
//! standardised to mean 0 and SD 1 over the vocabulary (adding a constant to every logit
//! changes nothing, and the scale makes α "nats per SD of the tilt").
//!
//! At a step with void score v ≥ `concept.min_void` — and, for a concept that carries its own
//! tokens ([`Concept::with_tokens`]), where those tokens hold less than `concept.max_type_mass`
//! of the step's probability — the processor tilts the row to
//! z + α·b with α = min(λ·v, α_KL), α_KL the largest α with KL(p_α ‖ p) ≤ `concept.max_kl`.
//! KL(p_α ‖ p) = α·E_α[b] − (log Z_α − log Z) grows monotonically with α ≥ 0 (its derivative
//! is α·Var_α[b]), so α_KL is found by a bracketed search ([`strength`]).
//!
//! Cost, only at the steps where the tilt acts: 2 passes over the row per KL evaluation, 1 when
//! λ·v already satisfies the bound and at most [`MAX_EVALS`] otherwise (Illinois regula falsi,
//! typically 4–6), then one pass to write the tilted row and the usual measurement pass over
//! it. Memory: 4 bytes × V per concept (shared by the sequences that use it) and per worker
//! thread once a concept is set.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::field::{Field, Logit, exp_scalar};

/// The most KL evaluations of one step's search.
pub const MAX_EVALS: u32 = 24;

/// A concept direction as a standardised logit bias over the vocabulary (see the module docs).
/// Cloning shares the vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Concept {
    bias: Arc<[f32]>,
    /// The SD of the bias as given, before standardising (what λ's unit corresponds to).
    scale: f32,
    /// The concept's own tokens, sorted and distinct (its type, for `concept.max_type_mass`).
    tokens: Option<Arc<[u32]>>,
}

impl Concept {
    /// A concept from a dense bias vector (one finite value per token), standardised to mean 0
    /// and SD 1. A constant vector has no direction and is refused.
    pub fn from_bias(bias: &[f32]) -> Result<Concept> {
        if bias.is_empty() {
            return Err(Error::InvalidArgument("concept bias: empty vector".into()));
        }
        if let Some(i) = bias.iter().position(|b| !b.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "concept bias: element {i} is {} (every element must be finite)",
                bias[i]
            )));
        }
        let n = bias.len() as f64;
        let mean = bias.iter().map(|&b| b as f64).sum::<f64>() / n;
        let var = bias.iter().map(|&b| (b as f64 - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt();
        if sd.is_nan() || sd <= 1e-12 * mean.abs().max(1.0) {
            return Err(Error::InvalidArgument(
                "concept bias: the vector is constant (a constant tilt changes nothing)".into(),
            ));
        }
        let mut out = Vec::new();
        crate::error::try_reserve(&mut out, bias.len(), "concept bias (4 bytes × V)")?;
        out.extend(bias.iter().map(|&b| ((b as f64 - mean) / sd) as f32));
        Ok(Concept {
            bias: out.into(),
            scale: sd as f32,
            tokens: None,
        })
    }

    /// The same concept carrying its own tokens — the answer type it stands for (e.g. the first
    /// tokens of every capital's name) — so that `concept.max_type_mass` can leave alone a step
    /// whose probability already lies on them. Each token must be < [`len`](Self::len); the
    /// set is kept sorted and distinct (4 bytes per token); an empty set clears it.
    pub fn with_tokens(mut self, tokens: &[u32]) -> Result<Concept> {
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.bias.len()) {
            return Err(Error::TokenOutOfRange {
                what: "concept tokens",
                id: t as u64,
                vocab: self.bias.len(),
            });
        }
        let mut set = Vec::new();
        crate::error::try_reserve(&mut set, tokens.len(), "concept tokens (4 bytes each)")?;
        set.extend_from_slice(tokens);
        set.sort_unstable();
        set.dedup();
        self.tokens = (!set.is_empty()).then(|| set.into());
        Ok(self)
    }

    /// The concept's own tokens, sorted and distinct (None: not given).
    pub fn tokens(&self) -> Option<&[u32]> {
        self.tokens.as_deref()
    }

    /// The concept of a set of tokens in unembedding space: b_v = γ_v · ℓ with ℓ =
    /// [`direction`]`(vocab, dim, row, toward, away)`. `row(v, out)` writes the unembedding
    /// row γ_v (d values) of token v < `vocab` into `out`; it is called twice per token, so a
    /// host can dequantise rows on the fly instead of holding V × d floats.
    pub fn from_rows(
        vocab: usize,
        dim: usize,
        mut row: impl FnMut(usize, &mut [f32]),
        toward: &[u32],
        away: &[u32],
    ) -> Result<Concept> {
        let dir = direction(vocab, dim, &mut row, toward, away)?;
        Concept::from_direction(vocab, row, &dir)
    }

    /// The concept of a direction ℓ (d values) in unembedding space: b_v = γ_v · ℓ, with
    /// `row` as in [`from_rows`](Self::from_rows) (called once per token).
    pub fn from_direction(
        vocab: usize,
        mut row: impl FnMut(usize, &mut [f32]),
        dir: &[f32],
    ) -> Result<Concept> {
        if vocab == 0 || dir.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "concept: unembedding of {vocab} × {}",
                dir.len()
            )));
        }
        if let Some(i) = dir.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "concept: the unembedding has a non-finite value (direction element {i})"
            )));
        }
        let mut g = vec![0f32; dir.len()];
        let mut bias = Vec::new();
        crate::error::try_reserve(&mut bias, vocab, "concept bias (4 bytes × V)")?;
        for v in 0..vocab {
            row(v, &mut g);
            bias.push(g.iter().zip(dir).map(|(&a, &b)| a * b).sum::<f32>());
        }
        Concept::from_bias(&bias)
    }

    /// [`from_rows`](Self::from_rows) on a row-major V × d matrix held in memory.
    pub fn from_unembedding(
        unembed: &[f32],
        dim: usize,
        toward: &[u32],
        away: &[u32],
    ) -> Result<Concept> {
        if dim == 0 || !unembed.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "concept: an unembedding of {} floats is not rows of {dim}",
                unembed.len()
            )));
        }
        let vocab = unembed.len() / dim;
        Concept::from_rows(
            vocab,
            dim,
            |v, out| out.copy_from_slice(&unembed[v * dim..(v + 1) * dim]),
            toward,
            away,
        )
    }

    /// Vocabulary size.
    pub fn len(&self) -> usize {
        self.bias.len()
    }
    /// Never true (an empty vector is refused).
    pub fn is_empty(&self) -> bool {
        self.bias.is_empty()
    }
    /// The standardised bias (mean 0, SD 1).
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }
    /// The SD of the bias as it was given (one unit of α is this many of its logits).
    pub fn scale(&self) -> f32 {
        self.scale
    }
}

/// The direction of a set of tokens in unembedding space (Park et al. 2024): ℓ = mean
/// γ(toward) − mean γ(away), or minus the mean over the whole vocabulary when `away` is empty;
/// `row` as in [`Concept::from_rows`]. Cost: one row per token named (V rows without `away`).
pub fn direction(
    vocab: usize,
    dim: usize,
    mut row: impl FnMut(usize, &mut [f32]),
    toward: &[u32],
    away: &[u32],
) -> Result<Vec<f32>> {
    if vocab == 0 || dim == 0 {
        return Err(Error::InvalidArgument(format!(
            "concept: unembedding of {vocab} × {dim}"
        )));
    }
    if toward.is_empty() {
        return Err(Error::InvalidArgument(
            "concept: no tokens to point toward".into(),
        ));
    }
    if let Some(&t) = toward.iter().chain(away).find(|&&t| t as usize >= vocab) {
        return Err(Error::TokenOutOfRange {
            what: "concept token",
            id: t as u64,
            vocab,
        });
    }
    let mut g = vec![0f32; dim];
    let mut mean = |ids: &mut dyn Iterator<Item = usize>| -> Vec<f64> {
        let (mut sum, mut n) = (vec![0f64; dim], 0f64);
        for v in ids {
            row(v, &mut g);
            for (o, &x) in sum.iter_mut().zip(&g) {
                *o += x as f64;
            }
            n += 1.0;
        }
        sum.iter_mut().for_each(|x| *x /= n);
        sum
    };
    let pos = mean(&mut toward.iter().map(|&t| t as usize));
    let neg = if away.is_empty() {
        mean(&mut (0..vocab))
    } else {
        mean(&mut away.iter().map(|&t| t as usize))
    };
    Ok(pos.iter().zip(&neg).map(|(p, n)| (p - n) as f32).collect())
}

/// KL(p_α ‖ p) of the row tilted by α·b, p the measured distribution (log Z from `f`). Two
/// passes: the tilted maximum, then the tilted sums.
fn kl<E: Logit>(row: &[E], f: &Field, bias: &[f32], alpha: f32) -> f64 {
    let mut m = f32::NEG_INFINITY;
    for (z, &b) in row.iter().zip(bias) {
        m = m.max(alpha.mul_add(b, z.to_f32()));
    }
    let (mut s, mut sb) = (0f64, 0f64);
    for (z, &b) in row.iter().zip(bias) {
        let e = exp_scalar(alpha.mul_add(b, z.to_f32()) - m) as f64;
        s += e;
        sb += e * b as f64;
    }
    // log Z_α = m + ln s; E_α[b] = sb / s.
    let kl = alpha as f64 * (sb / s) - (m as f64 + s.ln() - f.log_z);
    kl.max(0.0)
}

/// The tilt of one step: the largest α ≤ `alpha_max` with KL(p_α ‖ p) ≤ `max_kl`, and that KL.
/// `alpha_max` ≤ 0 gives (0, 0).
pub(crate) fn strength<E: Logit>(
    row: &[E],
    f: &Field,
    bias: &[f32],
    alpha_max: f32,
    max_kl: f32,
) -> (f32, f32) {
    if alpha_max.is_nan() || alpha_max <= 0.0 {
        return (0.0, 0.0);
    }
    let target = max_kl as f64;
    let k_hi = kl(row, f, bias, alpha_max);
    if k_hi <= target {
        return (alpha_max, k_hi as f32);
    }
    // Illinois regula falsi on g(α) = KL(α) − target, bracketed by [lo, hi]: g(lo) ≤ 0 < g(hi).
    let (mut lo, mut g_lo) = (0f32, -target);
    let (mut hi, mut g_hi) = (alpha_max, k_hi - target);
    let mut side = 0i8;
    for _ in 1..MAX_EVALS {
        let a = (lo as f64 - g_lo * (hi - lo) as f64 / (g_hi - g_lo)) as f32;
        let a = if a > lo && a < hi { a } else { 0.5 * (lo + hi) };
        let g = kl(row, f, bias, a) - target;
        if g <= 0.0 {
            (lo, g_lo) = (a, g);
            if side == -1 {
                g_hi *= 0.5;
            }
            side = -1;
            // Close enough below the bound.
            if g >= -0.02 * target {
                break;
            }
        } else {
            (hi, g_hi) = (a, g);
            if side == 1 {
                g_lo *= 0.5;
            }
            side = 1;
        }
        if hi - lo <= 1e-6 * hi {
            break;
        }
    }
    (lo, (g_lo + target).max(0.0) as f32)
}

/// The probability the measured row puts on `tokens`: Σ exp(z_t − log Z) over its finite
/// entries (`f` the row's field).
pub(crate) fn type_mass<E: Logit>(row: &[E], f: &Field, tokens: &[u32]) -> f64 {
    tokens
        .iter()
        .filter_map(|&t| row.get(t as usize))
        .map(|z| z.to_f32())
        .filter(|z| z.is_finite())
        .map(|z| (z as f64 - f.log_z).exp())
        .sum()
}

/// Write the tilted row z + α·b into `out` as f32, each value rounded to the row's element type
/// (finite stays finite, a masked token stays masked).
pub(crate) fn tilt<E: Logit>(row: &[E], bias: &[f32], alpha: f32, out: &mut Vec<f32>) {
    out.clear();
    out.extend(row.iter().zip(bias).map(|(z, &b)| {
        let z = z.to_f32();
        if z == f32::NEG_INFINITY {
            z
        } else {
            E::from_f32_finite(alpha.mul_add(b, z)).to_f32()
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field;

    fn exact_kl(z: &[f32], b: &[f32], a: f32) -> f64 {
        let lse = |x: &[f64]| {
            let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        };
        let z0: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let za: Vec<f64> = z
            .iter()
            .zip(b)
            .map(|(&v, &w)| v as f64 + a as f64 * w as f64)
            .collect();
        let (l0, la) = (lse(&z0), lse(&za));
        za.iter()
            .zip(&z0)
            .map(|(&x, &y)| {
                let p = (x - la).exp();
                p * ((x - la) - (y - l0))
            })
            .sum()
    }

    #[test]
    fn standardised_and_validated() {
        let c = Concept::from_bias(&[1.0, 2.0, 3.0, 6.0]).unwrap();
        let mean: f32 = c.bias().iter().sum::<f32>() / 4.0;
        let var: f32 = c.bias().iter().map(|b| b * b).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        assert!(Concept::from_bias(&[2.0; 5]).is_err());
        assert!(Concept::from_bias(&[]).is_err());
        assert!(Concept::from_bias(&[0.0, f32::NAN]).is_err());
    }

    #[test]
    fn unembedding_direction_is_the_mean_contrast() {
        // Four tokens in 2-d: tokens 0, 1 point along x, 2 and 3 along y.
        let g = [1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9];
        let c = Concept::from_unembedding(&g, 2, &[0, 1], &[2, 3]).unwrap();
        let b = c.bias();
        assert!(
            b[0] > 0.0 && b[1] > 0.0 && b[2] < 0.0 && b[3] < 0.0,
            "{b:?}"
        );
        assert!(Concept::from_unembedding(&g, 2, &[9], &[]).is_err());
        assert!(Concept::from_unembedding(&g, 3, &[0], &[]).is_err());
    }

    #[test]
    fn strength_meets_the_kl_bound() {
        let z: Vec<f32> = (0..300).map(|i| ((i * 37 % 101) as f32) * 0.07).collect();
        let raw: Vec<f32> = (0..300).map(|i| ((i * 13 % 29) as f32) - 14.0).collect();
        let c = Concept::from_bias(&raw).unwrap();
        let f = field::measure(&z).unwrap();
        for max_kl in [0.001f32, 0.05, 0.1, 0.5] {
            let (a, k) = strength(&z, &f, c.bias(), 50.0, max_kl);
            let exact = exact_kl(&z, c.bias(), a);
            assert!(exact <= max_kl as f64 * 1.001, "{max_kl}: α {a} KL {exact}");
            assert!(exact >= max_kl as f64 * 0.97, "{max_kl}: α {a} KL {exact}");
            assert!((exact - k as f64).abs() < 1e-4 * max_kl.max(1e-2) as f64);
        }
        // A bound the cap already meets: α is the cap.
        let (a, k) = strength(&z, &f, c.bias(), 0.01, 10.0);
        assert_eq!(a, 0.01);
        assert!((k as f64 - exact_kl(&z, c.bias(), 0.01)).abs() < 1e-6);
        assert_eq!(strength(&z, &f, c.bias(), 0.0, 0.1), (0.0, 0.0));
    }

    #[test]
    fn tilt_keeps_masks_and_saturates() {
        let z = [f32::NEG_INFINITY, 1.0, f32::MAX];
        let mut out = Vec::new();
        tilt(&z, &[1.0, 1.0, 1.0], 1e38, &mut out);
        assert_eq!(out, vec![f32::NEG_INFINITY, 1e38 + 1.0, f32::MAX]);
    }
}
