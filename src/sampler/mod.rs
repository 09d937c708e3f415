//! Truncation (min-p, top-nσ, top-k, top-p) and seeded selection: pipeline stages 6–7
//! (docs/DESIGN.md §1 "Pipeline order"). `select` owns the whole protocol; the processor calls
//! it once per row.
//!
//! Truncation runs after the temperature, in the order min-p and top-nσ → top-k → top-p, each on
//! what the previous kept (vLLM applies temperature first as well). Top-nσ (Tang et al. 2024,
//! arXiv:2411.07641) keeps z ≥ max − n·σ, σ the standard deviation of the row's finite (edited)
//! logits, as llama.cpp's `top_n_sigma` does: a cut in logit units, so the kept set does not
//! depend on T. Every truncation is expressed as one
//! logit cut τ: the kept set is {i : z_i ≥ τ}. Ties at the boundary are kept (top-k may keep
//! more than k tokens when the k-th logit is tied), so the kept set is a function of the logits
//! alone and the "processed logits" a host receives are exactly z/T above τ and −inf below.
//!
//! The interventions' sparse edits (`Edit`) are an overlay on the row: selection sees
//! z'_i = the edited value where an edit exists, z_i elsewhere. The edited values are already
//! rounded to the row's element type, so what is selected, where the cut falls and what a
//! `Logits`-mode host receives all agree bit for bit, for f16 and bf16 rows too. In
//! [`StepMode::Sample`] the row is only read; in [`StepMode::Logits`] it is overwritten with the
//! final logits (`write`).
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

mod cut;
mod write;

use crate::field::{Cand, Candidates, Field, Logit};

pub(crate) use cut::{Bounds, Cut, Pick, cut, pick, resolve_tail};
pub(crate) use write::force;

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

/// The truncation knobs (0 / +inf / 0 / 1 disable them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truncation {
    pub min_p: f32,
    /// The top-nσ width n·σ of this step's row, in logit units (+inf: off). Set per step by
    /// [`nsigma_width`] from `sampler.top_nsigma`.
    pub nsigma_width: f32,
    pub top_k: u32,
    pub top_p: f32,
}

impl Truncation {
    /// No truncation.
    pub const NONE: Truncation = Truncation {
        min_p: 0.0,
        nsigma_width: f32::INFINITY,
        top_k: 0,
        top_p: 1.0,
    };
    fn needs_order(&self) -> bool {
        self.top_k > 0 || self.top_p < 1.0
    }
}

/// What the host wants from a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepMode {
    /// Select a token (seeded). The row is only read.
    #[default]
    Sample,
    /// Overwrite the row with the final logits (z'/T, −inf below the cut); the host selects.
    Logits,
}

/// A sparse change to one token's logit, made by an intervention (`interventions`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Edit {
    pub id: u32,
    /// The measured logit.
    pub orig: f32,
    /// The edited logit, already rounded to the row's element type (finite when `orig` is).
    pub new: f32,
}

/// n·σ of the edited row's finite logits (top-nσ's width; +inf when n = 0 or when fewer than
/// one finite logit leaves σ undefined). One pass over the row, in f64 about the measured
/// maximum so no cancellation can make the variance negative.
pub(crate) fn nsigma_width<E: Logit>(row: &[E], edits: &[Edit], field: &Field, n: f32) -> f32 {
    if n <= 0.0 {
        return f32::INFINITY;
    }
    let c = field.max as f64;
    let (mut k, mut s1, mut s2) = (0usize, 0.0f64, 0.0f64);
    for_each_edited(row, edits, |_, z| {
        if z.is_finite() {
            let d = z as f64 - c;
            k += 1;
            s1 += d;
            s2 += d * d;
        }
    });
    if k == 0 {
        return f32::INFINITY;
    }
    let mean = s1 / k as f64;
    let var = (s2 / k as f64 - mean * mean).max(0.0);
    (n as f64 * var.sqrt()) as f32
}

/// The measured (pre-edit) logit of token `i`.
#[inline]
pub(crate) fn measured<E: Logit>(row: &[E], edits: &[Edit], i: u32) -> f32 {
    edits
        .binary_search_by_key(&i, |e| e.id)
        .map_or_else(|_| row[i as usize].to_f32(), |k| edits[k].orig)
}

/// Visit every (id, edited value) of the row in id order: one pass, edits merged as it goes.
#[inline]
fn for_each_edited<E: Logit>(row: &[E], edits: &[Edit], mut f: impl FnMut(u32, f32)) {
    let mut k = 0;
    for (i, e) in row.iter().enumerate() {
        let i = i as u32;
        let z = match edits.get(k) {
            Some(ed) if ed.id == i => {
                k += 1;
                ed.new
            }
            _ => e.to_f32(),
        };
        f(i, z);
    }
}

/// What [`select`] decided.
pub(crate) struct Selection<'a> {
    /// The selected token (`Sample` mode), or None (`Logits` mode: the host selects).
    pub token: Option<u32>,
    /// An exact pass over the row was needed.
    pub full_pass: bool,
    /// The kept candidates (edited logits), for remembering the host's likely choices.
    pub list: &'a [Cand],
}

/// The selection protocol for one row at temperature `t` (0 = greedy): merge the edits into the
/// measured candidates, cut, then pick a token with one draw from `rng` (`Sample`) or write the
/// final logits into `row` (`Logits`), falling back to an exact pass over the row when the
/// candidates cannot decide. Total: every path ends in a token or a row with at least one
/// finite entry.
#[allow(clippy::too_many_arguments)] // the stage's inputs, each distinct; one call site
pub(crate) fn select<'a, E: Logit>(
    row: &mut [E],
    field: &Field,
    cands: &'a mut Candidates,
    edits: &[Edit],
    full: &'a mut Vec<Cand>,
    t: f32,
    trunc: &Truncation,
    mode: StepMode,
    rng: &mut Rng,
) -> Selection<'a> {
    let vocab = row.len();
    let gate = field.max - cands.window;
    let tail_sum = merge_edits(field, gate, cands, edits);
    let complete = !cands.overflow;
    let listed = Bounds {
        gate,
        tail_sum,
        tail_len: vocab - cands.items.len(),
    };

    if t == 0.0 {
        // Greedy: the largest edited logit (lowest id among ties).
        let best = complete
            .then(|| argmax(&cands.items))
            .flatten()
            .filter(|c| c.logit >= gate);
        let (best, full_pass) = match best {
            Some(b) => (b, false),
            None => (row_argmax(row, edits), true),
        };
        if mode == StepMode::Logits {
            write::greedy(row, edits, best.logit);
        }
        return Selection {
            token: (mode == StepMode::Sample).then_some(best.id),
            full_pass,
            list: &cands.items,
        };
    }

    let decided = if complete {
        cut(&mut cands.items, &listed, t, trunc)
    } else {
        Cut::NeedFull
    };
    let (list, bounds, tau, max, mut full_pass): (&'a [Cand], _, _, _, _) = match decided {
        Cut::Tau { tau, max } => (&cands.items, listed, tau, max, false),
        Cut::NeedFull => {
            build_full(row, edits, t, trunc, full);
            let whole = Bounds::WHOLE_ROW;
            let (tau, max) = match cut(full, &whole, t, trunc) {
                Cut::Tau { tau, max } => (tau, max),
                // A complete, non-empty list always decides the cut; keep the maximum if not.
                Cut::NeedFull => {
                    let m = argmax(full).map_or(field.max, |c| c.logit);
                    (m, m)
                }
            };
            (&full[..], whole, tau, max, true)
        }
    };
    let token = match mode {
        StepMode::Logits => {
            write::final_logits(row, edits, tau, t);
            None
        }
        StepMode::Sample => Some(match pick(list, &bounds, tau, max, t, rng.uniform()) {
            Pick::Token(id) => id,
            Pick::Tail { x, known } => {
                full_pass = true;
                resolve_tail(row, edits, list, &bounds, tau, max, t, x, known, rng)
            }
        }),
    };
    Selection {
        token,
        full_pass,
        list,
    }
}

/// Merge the edits into the candidate list (ids ascending before the merge) and return the
/// upper bound of Σ e^{z − gate} over the tokens left out (unedited tokens below the gate).
fn merge_edits(f: &Field, gate: f32, cands: &mut Candidates, edits: &[Edit]) -> f64 {
    let g = gate as f64;
    let e = |z: f32| (z as f64 - g).exp();
    let total = (f.log_z - g).exp();
    let mut listed: f64 = cands.items.iter().map(|c| e(c.logit)).sum();
    let n0 = cands.items.len();
    for ed in edits {
        match cands.items[..n0].binary_search_by_key(&ed.id, |c| c.id) {
            Ok(i) => cands.items[i].logit = ed.new,
            Err(_) => {
                if ed.orig < gate {
                    listed += e(ed.orig);
                }
                if cands.items.len() < cands.items.capacity() {
                    cands.items.push(Cand {
                        logit: ed.new,
                        id: ed.id,
                    });
                } else {
                    cands.overflow = true;
                }
            }
        }
    }
    // f32 sums in the kernel carry ~1e-6 relative error: widen the bound so it stays one.
    (total - listed).max(0.0) + 1e-5 * total
}

/// The complete kept-set superset, from one pass over the edited row: every finite token with
/// z' ≥ max(max' + T·ln(min_p), max' − n·σ) (every finite token without either). Never reallocates: `full` has
/// room for the whole row.
fn build_full<E: Logit>(
    row: &[E],
    edits: &[Edit],
    t: f32,
    trunc: &Truncation,
    full: &mut Vec<Cand>,
) {
    let m = row_argmax(row, edits).logit;
    let thr = if trunc.min_p > 0.0 {
        m + t * trunc.min_p.ln()
    } else {
        f32::NEG_INFINITY
    }
    .max(m - trunc.nsigma_width);
    full.clear();
    for_each_edited(row, edits, |id, z| {
        if z >= thr && z > f32::NEG_INFINITY {
            full.push(Cand { logit: z, id });
        }
    });
}

fn argmax(list: &[Cand]) -> Option<Cand> {
    list.iter().copied().reduce(|a, b| {
        if b.logit > a.logit || (b.logit == a.logit && b.id < a.id) {
            b
        } else {
            a
        }
    })
}

/// The largest edited logit of the row (lowest id among ties).
fn row_argmax<E: Logit>(row: &[E], edits: &[Edit]) -> Cand {
    let mut best = Cand {
        logit: f32::NEG_INFINITY,
        id: 0,
    };
    for_each_edited(row, edits, |id, z| {
        if z > best.logit {
            best = Cand { logit: z, id };
        }
    });
    best
}
