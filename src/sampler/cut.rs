//! The cut τ and inverse-CDF selection over a candidate list (see the module docs of
//! [`crate::sampler`]).

use super::{Edit, Rng, Truncation};
use crate::field::{Cand, Logit};

/// What is known of the row beyond a candidate list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bounds {
    /// Every token with z ≥ `gate` is in the list (plus possibly some below it); −inf: the
    /// list is the whole row.
    pub gate: f32,
    /// Upper bound of Σ e^{z − gate} over the tokens not in the list (all of which are < gate).
    pub tail_sum: f64,
    /// Number of tokens not in the list.
    pub tail_len: usize,
}

impl Bounds {
    /// The list is the whole (kept) row.
    pub const WHOLE_ROW: Bounds = Bounds {
        gate: f32::NEG_INFINITY,
        tail_sum: 0.0,
        tail_len: 0,
    };
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

/// Compute τ at temperature `t` (> 0), sorting `list` in descending order if top-k/top-p need it.
pub(crate) fn cut(list: &mut [Cand], b: &Bounds, t: f32, tr: &Truncation) -> Cut {
    let Some(max) = list.iter().map(|c| c.logit).reduce(f32::max) else {
        return Cut::NeedFull;
    };
    if max < b.gate || max == f32::NEG_INFINITY {
        return Cut::NeedFull;
    }
    let mut tau = if tr.min_p > 0.0 {
        max + t * tr.min_p.ln()
    } else {
        f32::NEG_INFINITY
    }
    .max(max - tr.nsigma_width);
    if !tr.needs_order() {
        return Cut::Tau { tau, max };
    }
    list.sort_unstable_by(desc);
    if tr.top_k > 0 {
        let kth = list.get(tr.top_k as usize - 1).map(|c| c.logit);
        match kth {
            // The k-th largest of the row is known only if it lies in the complete region.
            Some(z) if z >= b.gate => tau = tau.max(z),
            // Fewer than k tokens in the row at all: top-k keeps everything.
            None if b.tail_len == 0 => {}
            // min-p already keeps fewer than k known tokens: top-k changes nothing.
            _ if tau >= b.gate => {}
            _ => return Cut::NeedFull,
        }
    }
    if tr.top_p < 1.0 {
        if tau < b.gate {
            return Cut::NeedFull;
        }
        let inv_t = 1.0 / t as f64;
        let w = |c: &Cand| ((c.logit as f64 - max as f64) * inv_t).exp();
        let total: f64 = list.iter().take_while(|c| c.logit >= tau).map(w).sum();
        let mut acc = 0.0;
        for c in list.iter().take_while(|c| c.logit >= tau) {
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

/// The last kept token of `list` whose cumulative weight exceeds `x` (inverse CDF), or the
/// last kept token when rounding leaves `x` at the very top; None only for an empty kept set.
fn inverse_cdf(list: &[Cand], tau: f32, w: impl Fn(f32) -> f64, x: f64) -> Option<u32> {
    let mut acc = 0.0;
    let mut last = None;
    for c in list.iter().filter(|c| c.logit >= tau) {
        acc += w(c.logit);
        last = Some(c.id);
        if x < acc {
            return last;
        }
    }
    last
}

/// The first token holding the maximum of `list` (the kept set always contains it).
fn top(list: &[Cand], max: f32) -> u32 {
    list.iter()
        .find(|c| c.logit == max)
        .or(list.first())
        .map_or(0, |c| c.id)
}

/// Inverse-CDF selection over the kept list at temperature `t` with draw `u` ∈ [0, 1).
pub(crate) fn pick(list: &[Cand], b: &Bounds, tau: f32, max: f32, t: f32, u: f64) -> Pick {
    let inv_t = 1.0 / t as f64;
    let w = |z: f32| ((z as f64 - max as f64) * inv_t).exp();
    let known: f64 = list
        .iter()
        .filter(|c| c.logit >= tau)
        .map(|c| w(c.logit))
        .sum();
    let tail_bound = if tau >= b.gate || b.tail_len == 0 {
        0.0
    } else {
        // Σ_tail e^{(z − max)/T} = e^{(gate − max)/T} Σ x_i^{1/T}, x_i = e^{z_i − gate} < 1.
        // T ≤ 1: Σ x^{1/T} ≤ Σ x. T > 1: power-mean bound n^{1 − 1/T} (Σ x)^{1/T}.
        let a = inv_t;
        let s = b.tail_sum.max(0.0);
        let sum_pow = if a >= 1.0 {
            s
        } else {
            (b.tail_len as f64).powf(1.0 - a) * s.powf(a)
        };
        ((b.gate as f64 - max as f64) * a).exp() * sum_pow
    };
    let x = u * (known + tail_bound);
    if x >= known && tail_bound > 0.0 {
        return Pick::Tail {
            x: x - known,
            known,
        };
    }
    Pick::Token(inverse_cdf(list, tau, w, x).unwrap_or_else(|| top(list, max)))
}

/// Resolve a tail draw exactly with one pass over the row. The tail is every token below the
/// gate that is not in `list`: unedited (edited tokens are in the list with their new value),
/// with z ≥ τ. A draw in the bound's slack is redrawn from `rng` against the exact total.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
pub(crate) fn resolve_tail<E: Logit>(
    row: &[E],
    edits: &[Edit],
    list: &[Cand],
    b: &Bounds,
    tau: f32,
    max: f32,
    t: f32,
    x: f64,
    known: f64,
    rng: &mut Rng,
) -> u32 {
    let inv_t = 1.0 / t as f64;
    let w = |z: f32| ((z as f64 - max as f64) * inv_t).exp();
    let in_tail = |i: usize, z: f32| {
        z < b.gate && z >= tau && edits.binary_search_by_key(&(i as u32), |e| e.id).is_err()
    };
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
    let y = rng.uniform() * (known + exact);
    if y < known || exact <= 0.0 {
        return inverse_cdf(list, tau, w, y).unwrap_or_else(|| top(list, max));
    }
    scan(y - known).unwrap_or_else(|| top(list, max))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let Cut::Tau { tau, .. } = cut(&mut l, &Bounds::WHOLE_ROW, 1.0, &tr) else {
            panic!()
        };
        assert_eq!(l.iter().filter(|c| c.logit >= tau).count(), 3);
        // top-k 2 with a tie at the boundary keeps the tie.
        let tr = Truncation {
            top_k: 2,
            ..Truncation::NONE
        };
        let Cut::Tau { tau, .. } = cut(&mut l, &Bounds::WHOLE_ROW, 1.0, &tr) else {
            panic!()
        };
        assert_eq!(tau, 2.0);
        // top-p 0.6: p(3) = 0.52 < 0.6, so the next (2.0, tied) is included.
        let tr = Truncation {
            top_p: 0.6,
            ..Truncation::NONE
        };
        let Cut::Tau { tau, .. } = cut(&mut l, &Bounds::WHOLE_ROW, 1.0, &tr) else {
            panic!()
        };
        assert_eq!(tau, 2.0);
    }

    #[test]
    fn incomplete_lists_ask_for_the_full_pass() {
        let mut l = cands(&[5.0]);
        let b = Bounds {
            gate: 4.0,
            tail_sum: 1.0,
            tail_len: 10,
        };
        let tr = Truncation {
            top_k: 3,
            ..Truncation::NONE
        };
        assert_eq!(cut(&mut l, &b, 1.0, &tr), Cut::NeedFull);
        let tr = Truncation {
            top_p: 0.9,
            ..Truncation::NONE
        };
        assert_eq!(cut(&mut l, &b, 1.0, &tr), Cut::NeedFull);
    }

    #[test]
    fn pick_follows_the_cdf() {
        let l = cands(&[0.0, 0.0, 0.0, 0.0]);
        let b = Bounds::WHOLE_ROW;
        assert_eq!(
            pick(&l, &b, f32::NEG_INFINITY, 0.0, 1.0, 0.0),
            Pick::Token(0)
        );
        assert_eq!(
            pick(&l, &b, f32::NEG_INFINITY, 0.0, 1.0, 0.30),
            Pick::Token(1)
        );
        assert_eq!(
            pick(&l, &b, f32::NEG_INFINITY, 0.0, 1.0, 0.99),
            Pick::Token(3)
        );
        // An empty kept set (a cut above every logit) still picks: the maximum.
        assert_eq!(pick(&l, &b, 1.0, 0.0, 1.0, 0.5), Pick::Token(0));
    }
}
