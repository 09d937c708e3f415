//! Truncation (min-p, top-k, top-p) and seeded selection (DESIGN.md §1 "Pipeline order").
//!
//! Truncation runs after the temperature, in the order min-p → top-k → top-p, each on what the
//! previous kept (vLLM applies temperature first as well). Every truncation is expressed as one
//! logit cut τ: the kept set is {i : z_i ≥ τ}. Ties at the boundary are kept (top-k may keep
//! more than k tokens when the k-th logit is tied), so the kept set is a function of the logits
//! alone and the "processed logits" a host receives are exactly z/T above τ and −inf below.
//!
//! Selection is inverse-CDF with one uniform draw from a SplitMix64 stream (no per-element random
//! numbers). Sampling does not need a second pass over the vocabulary: the measurement pass
//! gathers every token within a window of the maximum (the candidates), and
//! - if τ lies inside the window, the kept set is exactly the candidates above τ;
//! - with no truncation at all, the tail below the window is handled by an exact rejection
//!   step against an upper bound of its weight (from the field's log Z), so only a rare draw
//!   that lands in the tail pays for a pass over the row;
//! - otherwise (top-k or top-p reaching below the window, or a candidate buffer overflow) an
//!   exact second pass builds the complete kept set. Top-p alone, with neither min-p nor top-k,
//!   always takes that pass (it needs the full normaliser): pair it with min-p.

use crate::field::{Cand, Logit};

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, passes BigCrush; one draw per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    /// A stream for a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The truncation knobs (0 / 0 / 1 disable them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truncation {
    pub min_p: f32,
    pub top_k: u32,
    pub top_p: f32,
}

impl Truncation {
    /// No truncation.
    pub const NONE: Truncation = Truncation {
        min_p: 0.0,
        top_k: 0,
        top_p: 1.0,
    };
    fn needs_order(&self) -> bool {
        self.top_k > 0 || self.top_p < 1.0
    }
}

/// A list of tokens with their (edited) logits, plus what is known of the rest of the row.
pub(crate) struct Known<'a> {
    /// Every token with z ≥ `gate` is here (plus possibly some below it).
    pub list: &'a mut [Cand],
    /// Below this the list is incomplete (−inf: the list is the whole row).
    pub gate: f32,
    /// Upper bound of Σ e^{z − gate} over the tokens not in the list (all of which are < gate).
    pub tail_sum: f64,
    /// Number of tokens not in the list.
    pub tail_len: usize,
}

/// What the cut decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cut {
    /// Keep z ≥ tau; `max` is the largest logit.
    Tau { tau: f32, max: f32 },
    /// The known list cannot decide it exactly: build the complete list and retry.
    NeedFull,
}

fn desc(a: &Cand, b: &Cand) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Compute τ at temperature `t` (> 0), sorting `k.list` in descending order if top-k/top-p
/// need it.
pub(crate) fn cut(k: &mut Known<'_>, t: f32, tr: &Truncation) -> Cut {
    let Some(max) = k.list.iter().map(|c| c.logit).reduce(f32::max) else {
        return Cut::NeedFull;
    };
    if max < k.gate || max == f32::NEG_INFINITY {
        return Cut::NeedFull;
    }
    let mut tau = if tr.min_p > 0.0 {
        max + t * tr.min_p.ln()
    } else {
        f32::NEG_INFINITY
    };
    if !tr.needs_order() {
        return Cut::Tau { tau, max };
    }
    k.list.sort_unstable_by(desc);
    if tr.top_k > 0 {
        let kth = k.list.get(tr.top_k as usize - 1).map(|c| c.logit);
        match kth {
            // The k-th largest of the row is known only if it lies in the complete region.
            Some(z) if z >= k.gate => tau = tau.max(z),
            // Fewer than k tokens in the row at all: top-k keeps everything.
            None if k.tail_len == 0 => {}
            // min-p already keeps fewer than k known tokens: top-k changes nothing.
            _ if tau >= k.gate => {}
            _ => return Cut::NeedFull,
        }
    }
    if tr.top_p < 1.0 {
        if tau < k.gate {
            return Cut::NeedFull;
        }
        let inv_t = 1.0 / t as f64;
        let w = |c: &Cand| ((c.logit as f64 - max as f64) * inv_t).exp();
        let total: f64 = k.list.iter().take_while(|c| c.logit >= tau).map(w).sum();
        let mut acc = 0.0;
        for c in k.list.iter().take_while(|c| c.logit >= tau) {
            acc += w(c);
            if acc >= tr.top_p as f64 * total {
                tau = c.logit;
                break;
            }
        }
    }
    Cut::Tau { tau, max }
}

/// Outcome of selection on the known list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pick {
    Token(u32),
    /// The draw landed in the tail's bound: `x` is the draw's position past the known weight
    /// `known` (both in units of e^{(z − max)/T}).
    Tail {
        x: f64,
        known: f64,
    },
}

/// Inverse-CDF selection over the kept list at temperature `t` with draw `u` ∈ [0, 1).
pub(crate) fn pick(k: &Known<'_>, tau: f32, max: f32, t: f32, u: f64) -> Pick {
    let inv_t = 1.0 / t as f64;
    let w = |z: f32| ((z as f64 - max as f64) * inv_t).exp();
    let known: f64 = k
        .list
        .iter()
        .filter(|c| c.logit >= tau)
        .map(|c| w(c.logit))
        .sum();
    let tail_bound = if tau >= k.gate || k.tail_len == 0 {
        0.0
    } else {
        // Σ_tail e^{(z − max)/T} = e^{(gate − max)/T} Σ x_i^{1/T}, x_i = e^{z_i − gate} < 1.
        // T ≤ 1: Σ x^{1/T} ≤ Σ x. T > 1: power-mean bound n^{1 − 1/T} (Σ x)^{1/T}.
        let a = inv_t;
        let s = k.tail_sum.max(0.0);
        let sum_pow = if a >= 1.0 {
            s
        } else {
            (k.tail_len as f64).powf(1.0 - a) * s.powf(a)
        };
        ((k.gate as f64 - max as f64) * a).exp() * sum_pow
    };
    let x = u * (known + tail_bound);
    if x >= known && tail_bound > 0.0 {
        return Pick::Tail {
            x: x - known,
            known,
        };
    }
    let mut acc = 0.0;
    let mut last = None;
    for c in k.list.iter().filter(|c| c.logit >= tau) {
        acc += w(c.logit);
        last = Some(c.id);
        if x < acc {
            return Pick::Token(c.id);
        }
    }
    // Rounding at the very top of the CDF: the last kept token.
    Pick::Token(last.expect("the maximum is always kept"))
}

/// Resolve a tail draw exactly with one pass over the row. `skip` (sorted ids) are tokens whose
/// weight is already in `known` (the known list's tokens below the gate: edited tokens);
/// tokens ≥ gate are in the known list by construction. `redraw` supplies a second uniform if
/// the draw fell in the bound's slack.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
pub(crate) fn resolve_tail<E: Logit>(
    row: &[E],
    k: &Known<'_>,
    skip: &[u32],
    tau: f32,
    max: f32,
    t: f32,
    x: f64,
    known: f64,
    redraw: &mut dyn FnMut() -> f64,
) -> u32 {
    let inv_t = 1.0 / t as f64;
    let w = |z: f32| ((z as f64 - max as f64) * inv_t).exp();
    let in_tail =
        |i: usize, z: f32| z < k.gate && z >= tau && skip.binary_search(&(i as u32)).is_err();
    let exact: f64 = row
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let z = e.to_f32();
            in_tail(i, z).then(|| w(z))
        })
        .sum();
    let scan = |mut x: f64| -> Option<u32> {
        let mut last = None;
        for (i, e) in row.iter().enumerate() {
            let z = e.to_f32();
            if in_tail(i, z) {
                x -= w(z);
                last = Some(i as u32);
                if x < 0.0 {
                    return Some(i as u32);
                }
            }
        }
        last
    };
    if x < exact {
        if let Some(id) = scan(x) {
            return id;
        }
    }
    // The draw fell in the slack of the bound: draw again from the now exact total.
    let y = redraw() * (known + exact);
    if y < known || exact <= 0.0 {
        let mut acc = 0.0;
        let mut last = 0;
        for c in k.list.iter().filter(|c| c.logit >= tau) {
            acc += w(c.logit);
            last = c.id;
            if y < acc {
                return c.id;
            }
        }
        return last;
    }
    scan(y - known).unwrap_or(k.list[0].id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(list: &mut [Cand]) -> Known<'_> {
        Known {
            list,
            gate: f32::NEG_INFINITY,
            tail_sum: 0.0,
            tail_len: 0,
        }
    }

    fn cands(z: &[f32]) -> Vec<Cand> {
        z.iter()
            .enumerate()
            .map(|(i, &logit)| Cand {
                logit,
                id: i as u32,
            })
            .collect()
    }

    #[test]
    fn rng_is_deterministic_and_uniform() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<f64> = (0..10_000).map(|_| a.uniform()).collect();
        assert!(
            xs.iter()
                .zip((0..).map(|_| b.uniform()))
                .all(|(x, y)| *x == y)
        );
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.01);
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn cuts() {
        let z = [3.0, 2.0, 1.0, 0.0, 2.0];
        // min-p 0.3 at T=1 keeps z ≥ 3 + ln 0.3 = 1.796.
        let mut l = cands(&z);
        let tr = Truncation {
            min_p: 0.3,
            ..Truncation::NONE
        };
        let Cut::Tau { tau, .. } = cut(&mut known(&mut l), 1.0, &tr) else {
            panic!()
        };
        assert_eq!(l.iter().filter(|c| c.logit >= tau).count(), 3);
        // top-k 2 with a tie at the boundary keeps the tie.
        let tr = Truncation {
            top_k: 2,
            ..Truncation::NONE
        };
        let Cut::Tau { tau, .. } = cut(&mut known(&mut l), 1.0, &tr) else {
            panic!()
        };
        assert_eq!(tau, 2.0);
        // top-p 0.6: p(3) = 0.52 < 0.6, so the next (2.0, tied) is included.
        let tr = Truncation {
            top_p: 0.6,
            ..Truncation::NONE
        };
        let Cut::Tau { tau, .. } = cut(&mut known(&mut l), 1.0, &tr) else {
            panic!()
        };
        assert_eq!(tau, 2.0);
    }

    #[test]
    fn incomplete_lists_ask_for_the_full_pass() {
        let mut l = cands(&[5.0]);
        let mut k = Known {
            list: &mut l,
            gate: 4.0,
            tail_sum: 1.0,
            tail_len: 10,
        };
        let tr = Truncation {
            top_k: 3,
            ..Truncation::NONE
        };
        assert_eq!(cut(&mut k, 1.0, &tr), Cut::NeedFull);
        let tr = Truncation {
            top_p: 0.9,
            ..Truncation::NONE
        };
        assert_eq!(cut(&mut k, 1.0, &tr), Cut::NeedFull);
    }

    #[test]
    fn pick_follows_the_cdf() {
        let mut l = cands(&[0.0, 0.0, 0.0, 0.0]);
        let k = known(&mut l);
        assert_eq!(pick(&k, f32::NEG_INFINITY, 0.0, 1.0, 0.0), Pick::Token(0));
        assert_eq!(pick(&k, f32::NEG_INFINITY, 0.0, 1.0, 0.30), Pick::Token(1));
        assert_eq!(pick(&k, f32::NEG_INFINITY, 0.0, 1.0, 0.99), Pick::Token(3));
    }
}
