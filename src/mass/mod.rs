//! Query information mass M(Q) = α·ẑ(H) + β·ẑ(D) + γ·ẑ(N) (docs/DESIGN.md §1 "Query information mass"; Vyshnyvetska 2025, arXiv:2504.20951, eqs. 1–4).
//!
//! Computed once per sequence at `begin`, from what the host can supply (any subset):
//! - prompt logits `[P, V]` (row j = the distribution after prompt token j; the last row is the
//!   first answer position), or per-position prompt entropies in nats → H(Q);
//! - the context gain D(Q) = KL(p(·|C⊕Q) ‖ p(·|Q)) in nats, computed by the host or engine;
//! - the query's token ids with a [`Prior`] → N_KL = KL(q̂ ‖ u); with prompt logits whose rows
//!   align with the tokens, also the mean query surprisal −(1/|Q|) Σ log p(q_i | q_<i).
//!
//! Each component is reported raw and flagged when missing; M uses the components present,
//! with α, β, γ renormalised over them, and is absent when none is. Nothing is invented.

pub mod prior;

pub use prior::Prior;

use crate::calibration::{Calibration, MIN_STD, MassStats, Standard};
use crate::config::{MassConfig, MassScale};
use crate::error::{Error, Result};
use crate::field;

/// What the host knows about the query. Every field is optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryInput<'a> {
    /// Row-major `[P, V]` prompt logits (f32), P ≥ 1.
    pub prompt_logits: Option<&'a [f32]>,
    /// Per-position prompt entropies in nats (last = answer position); used when no logits.
    pub prompt_entropies: Option<&'a [f32]>,
    /// D(Q) in nats (≥ 0).
    pub context_gain: Option<f32>,
    /// The query's token ids. With prompt logits of P rows and exactly P tokens, row j is taken
    /// to predict token j + 1 (mean surprisal).
    pub query_tokens: Option<&'a [u32]>,
}

/// M(Q) and its raw components. `None` = not supplied.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueryMass {
    /// H at the answer position, normalised by log V, in [0, 1].
    pub h: Option<f32>,
    /// Mean prompt entropy over positions, nats.
    pub h_prompt_mean: Option<f32>,
    /// D(Q), nats.
    pub d: Option<f32>,
    /// N_KL against the prior, nats.
    pub n_kl: Option<f32>,
    /// Mean query surprisal under the model, nats per token.
    pub n_surprisal: Option<f32>,
    /// The combined mass M(Q) over the present components.
    pub m: Option<f32>,
}

/// Compute M(Q). `vocab` is V; `scratch` is reused for sorting ids.
pub fn compute(
    input: &QueryInput<'_>,
    vocab: usize,
    cfg: &MassConfig,
    prior: Option<&Prior>,
    stats: Option<&MassStats>,
    scratch: &mut Vec<u32>,
) -> Result<QueryMass> {
    let mut out = QueryMass::default();
    let log_v = (vocab.max(2) as f64).ln();
    if let Some(q) = input.query_tokens {
        if let Some(&id) = q.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::TokenOutOfRange {
                what: "query token",
                id: id as u64,
                vocab,
            });
        }
    }
    if let Some(pl) = input.prompt_logits {
        if pl.is_empty() || pl.len() % vocab != 0 {
            return Err(Error::SizeMismatch {
                what: "prompt logits (must be a whole number of rows of V)",
                expected: vocab,
                got: pl.len(),
            });
        }
        let rows = pl.len() / vocab;
        let align = input.query_tokens.filter(|q| q.len() == rows && rows >= 2);
        let (mut h_sum, mut s_sum) = (0.0f64, 0.0f64);
        let mut last = 0.0;
        for (j, row) in pl.chunks_exact(vocab).enumerate() {
            let f = field::measure(row)?;
            h_sum += f.entropy;
            last = f.entropy_norm();
            if let Some(q) = align {
                if j + 1 < rows {
                    s_sum += f.potential(row[q[j + 1] as usize]);
                }
            }
        }
        out.h = Some(last as f32);
        out.h_prompt_mean = Some((h_sum / rows as f64) as f32);
        if align.is_some() {
            out.n_surprisal = Some((s_sum / (rows - 1) as f64) as f32);
        }
    } else if let Some(e) = input.prompt_entropies {
        if e.is_empty() || e.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(Error::InvalidArgument(
                "prompt entropies must be non-empty, finite and ≥ 0".into(),
            ));
        }
        out.h = Some((e[e.len() - 1] as f64 / log_v).clamp(0.0, 1.0) as f32);
        out.h_prompt_mean =
            Some((e.iter().map(|&x| x as f64).sum::<f64>() / e.len() as f64) as f32);
    }
    if let Some(d) = input.context_gain {
        if !d.is_finite() || d < 0.0 {
            return Err(Error::InvalidArgument(format!(
                "context gain D must be finite and ≥ 0, got {d}"
            )));
        }
        out.d = Some(d);
    }
    if let (Some(q), Some(p)) = (input.query_tokens, prior) {
        if p.vocab() != vocab {
            return Err(Error::SizeMismatch {
                what: "prior vocabulary",
                expected: vocab,
                got: p.vocab(),
            });
        }
        if !q.is_empty() {
            out.n_kl = Some(p.novelty_kl(q, cfg.prior_smoothing as f64, scratch)? as f32);
        }
    }
    out.m = combine(&out, cfg, stats);
    Ok(out)
}

/// Set `q.m` from the raw components `q` holds (for hosts or engines that measured them
/// themselves), standardised by `stats` (see [`standards`]).
pub fn with_mass(mut q: QueryMass, cfg: &MassConfig, stats: Option<&MassStats>) -> QueryMass {
    q.m = combine(&q, cfg, stats);
    q
}

/// The standardisation M(Q) uses under `cfg.scale` (docs/DESIGN.md §1 "Query information
/// mass"): `auto` takes each component's mean and SD from the calibration where it has them,
/// else from the running statistics once they cover `cfg.warmup` queries (a component with
/// neither is left out of M); `minmax` returns None (the fixed ranges).
pub fn standards(
    cfg: &MassConfig,
    calib: Option<&Calibration>,
    running: &RunningMass,
) -> Option<MassStats> {
    match cfg.scale {
        MassScale::MinMax => None,
        MassScale::Auto => {
            let c = calib.and_then(|c| c.mass);
            let pick = |cal: Option<Standard>, run: &Welford| {
                cal.or_else(|| run.standard(cfg.warmup as u64))
            };
            Some(MassStats {
                h: pick(c.and_then(|c| c.h), &running.h),
                d: pick(c.and_then(|c| c.d), &running.d),
                n: pick(c.and_then(|c| c.n), &running.n),
            })
        }
    }
}

/// Running mean and variance of one component (Welford 1962), O(1) memory.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Welford {
    count: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    /// Add one finite value (others are ignored).
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
    }
    /// Values seen.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Mean and (population) SD once at least `min_count` (≥ 2) values were seen and the SD
    /// is at least [`MIN_STD`]: a constant component carries no information.
    pub fn standard(&self, min_count: u64) -> Option<Standard> {
        if self.count < min_count.max(2) {
            return None;
        }
        let std = (self.m2 / self.count as f64).max(0.0).sqrt();
        (std >= MIN_STD).then_some(Standard {
            mean: self.mean,
            std,
        })
    }
}

/// The running statistics of the raw components over the queries a processor has started
/// decoding (each counted once, at its first step, when its query is complete).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunningMass {
    pub h: Welford,
    pub d: Welford,
    pub n: Welford,
}

impl RunningMass {
    /// Count one query's raw components (those present).
    pub fn push(&mut self, q: &QueryMass) {
        if let Some(h) = q.h {
            self.h.push(h as f64);
        }
        if let Some(d) = q.d {
            self.d.push(d as f64);
        }
        if let Some(n) = q.n_kl.or(q.n_surprisal) {
            self.n.push(n as f64);
        }
    }
}

/// Bound of each standardised component, so M(Q) is always finite (|M| ≤ 10).
pub const Z_LIMIT: f64 = 10.0;

/// M over the present components: with `stats` (the `auto` scale), z-scores (each clamped to
/// ±[`Z_LIMIT`]) of the components that have a standard, the others left out; without, min-max
/// to [0, 1].
fn combine(q: &QueryMass, cfg: &MassConfig, stats: Option<&MassStats>) -> Option<f32> {
    let n = q.n_kl.or(q.n_surprisal);
    let parts = [
        (q.h, cfg.alpha, 1.0, stats.and_then(|s| s.h)),
        (q.d, cfg.beta, cfg.d_max, stats.and_then(|s| s.d)),
        (n, cfg.gamma, cfg.n_max, stats.and_then(|s| s.n)),
    ];
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (x, w, max, st) in parts {
        let (Some(x), true) = (x, w > 0.0) else {
            continue;
        };
        let z = match (stats, st) {
            // A z-score beyond ±Z_LIMIT says nothing more and would only push T to a clamp.
            (_, Some(s)) => ((x as f64 - s.mean) / s.std).clamp(-Z_LIMIT, Z_LIMIT),
            (Some(_), None) => continue,
            (None, None) => (x as f64 / max as f64).clamp(0.0, 1.0),
        };
        num += w as f64 * z;
        den += w as f64;
    }
    (den > 0.0).then(|| (num / den) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn missing_components_are_flagged_not_invented() {
        let cfg = Config::default().mass;
        let mut s = vec![];
        let q = compute(&QueryInput::default(), 10, &cfg, None, None, &mut s).unwrap();
        assert_eq!(q, QueryMass::default());
        let q = compute(
            &QueryInput {
                context_gain: Some(2.0),
                ..Default::default()
            },
            10,
            &cfg,
            None,
            None,
            &mut s,
        )
        .unwrap();
        assert_eq!(q.d, Some(2.0));
        assert_eq!(q.h, None);
        assert_eq!(q.m, Some(0.5)); // 2 / d_max(4), the only component present
    }

    #[test]
    fn prompt_logits_give_h_and_surprisal() {
        let cfg = Config::default().mass;
        let v = 4;
        // Row 0 uniform, row 1 certain on token 2.
        let logits = [0.0, 0.0, 0.0, 0.0, -50.0, -50.0, 50.0, -50.0];
        let toks = [1u32, 3];
        let mut s = vec![];
        let q = compute(
            &QueryInput {
                prompt_logits: Some(&logits),
                query_tokens: Some(&toks),
                ..Default::default()
            },
            v,
            &cfg,
            None,
            None,
            &mut s,
        )
        .unwrap();
        assert!(q.h.unwrap() < 1e-6);
        assert!((q.h_prompt_mean.unwrap() as f64 - 4f64.ln() / 2.0).abs() < 1e-5);
        // Token 3 after row 0: surprisal ln 4.
        assert!((q.n_surprisal.unwrap() as f64 - 4f64.ln()).abs() < 1e-5);
        assert!(
            compute(
                &QueryInput {
                    prompt_logits: Some(&logits[..7]),
                    ..Default::default()
                },
                v,
                &cfg,
                None,
                None,
                &mut s
            )
            .is_err()
        );
    }
}
