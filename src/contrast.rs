//! The null-query contrast (domain-conditional PMI: Holtzman et al., EMNLP 2021, arXiv
//! 2104.08315; SCIENCE.md §4.3 "Anchoring" 2 and target (d); docs/DESIGN.md §1
//! "Interventions"): against *attractor answers*, the answer a model gives to many queries of
//! one kind whatever they name (one city for many countries), score each token by how much more
//! the query makes it likely than a content-free query of the same kind does.
//!
//! The host runs a second sequence on a null query — the same prompt with its subject replaced
//! by "N/A", say — fed the same tokens, and hands its logits row u to the processor before the
//! step ([`GravityProcessor::set_contrast`](crate::GravityProcessor::set_contrast)). With q =
//! softmax(u) and p the measured distribution, the step then runs on
//!
//!   z'_v = z_v − β·log q_v   for v in the head {v : p_v ≥ α·p_max},   z'_v = z_v otherwise,
//!
//! β = `contrast.beta`, α = `contrast.plausibility`. Inside the head the order is log p − β log q
//! (PMI at β = 1); a token outside it is never raised, so the choice stays among tokens the
//! query itself finds plausible (the adaptive plausibility constraint of contrastive decoding,
//! Li et al., arXiv 2210.15097) and a confident step (nothing else within α of p_max) keeps its
//! token. A token the null row masks counts as the null row's least likely finite token.
//!
//! Under `contrast.prior_top_only` (the default) a step is reordered only where its most
//! likely token is also the null row's: an attractor candidate, the answer the relation's prior
//! gives whatever the query names. Elsewhere it stays plain, so a right answer the query itself
//! makes likely is not demoted for being common a priori (" China" for a Chinese city, whose
//! null query expects " the"); ungated, PMI did that (docs/EVALUATION.md §7).
//!
//! Cost: at `set_contrast`, one measurement pass and one pass writing log q (4 bytes × V per
//! sequence that is given a row, kept for reuse until it ends); at a step that reads it, one
//! pass writing z' and the usual measurement pass over it (4 bytes × V per worker thread).

use crate::error::{Result, try_reserve};
use crate::field::{self, Field, Logit};

/// A sequence's null-query row: log q, waiting for the step at its position. Kept until a
/// token is accepted (so a re-stepped position reads it again), dropped by a rewind or a reset.
#[derive(Debug, Default)]
pub(crate) struct NullRow {
    /// log q_v (−inf where the null row masks v).
    lp: Vec<f32>,
    /// The least finite log q (what a masked token counts as).
    floor: f32,
    /// The null row's most likely token.
    top: u32,
    pending: bool,
}

impl Clone for NullRow {
    /// A pending row is copied (`fork` copies a pending step); a spent buffer is not.
    fn clone(&self) -> Self {
        if self.pending {
            NullRow {
                lp: self.lp.clone(),
                floor: self.floor,
                top: self.top,
                pending: true,
            }
        } else {
            NullRow::default()
        }
    }
}

impl NullRow {
    /// Store the null-query row `row` for the next step. It is measured first (NaN, +inf or
    /// every token masked is refused), so on error nothing changes.
    pub(crate) fn set<E: Logit>(&mut self, row: &[E]) -> Result<()> {
        let f = field::measure(row)?;
        if self.lp.capacity() < row.len() {
            self.lp.clear();
            try_reserve(&mut self.lp, row.len(), "null-query row (4 bytes × V)")?;
        }
        self.lp.clear();
        let mut floor = 0f32;
        self.lp.extend(row.iter().map(|z| {
            let l = (z.to_f32() as f64 - f.log_z) as f32;
            if l.is_finite() {
                floor = floor.min(l);
            }
            l
        }));
        self.floor = floor;
        self.top = f.argmax;
        self.pending = true;
        Ok(())
    }

    /// A row waits for the step.
    pub(crate) fn pending(&self) -> bool {
        self.pending
    }

    /// The null row's most likely token (the lowest index among ties).
    pub(crate) fn top(&self) -> u32 {
        self.top
    }

    /// The step's position moved (a token accepted, a rewind): the row no longer applies.
    pub(crate) fn clear(&mut self) {
        self.pending = false;
    }
}

/// Write the contrasted row z' (see the module docs) into `out` as f32, each value rounded to
/// the row's element type (finite stays finite, masked stays masked); `f` is the row's field.
/// Returns how many tokens the head holds.
pub(crate) fn apply<E: Logit>(
    row: &[E],
    f: &Field,
    null: &NullRow,
    beta: f32,
    plausibility: f32,
    out: &mut Vec<f32>,
) -> u32 {
    // p_v ≥ α·p_max ⇔ z_v ≥ z_max + ln α.
    let cut = f.max + plausibility.ln();
    let mut head = 0u32;
    out.clear();
    out.extend(row.iter().zip(&null.lp).map(|(z, &l)| {
        let z = z.to_f32();
        if z >= cut {
            head += 1;
            let l = if l.is_finite() { l } else { null.floor };
            E::from_f32_finite((-beta).mul_add(l, z)).to_f32()
        } else {
            z
        }
    }));
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of(p: &[f64]) -> Vec<f32> {
        p.iter().map(|&x| x.ln() as f32).collect()
    }

    #[test]
    fn pmi_reorders_the_head_only() {
        // The query: 0 at 0.5, 1 at 0.3, 2 at 0.15, 3 at 0.05. The null query: 0 at 0.7 (the
        // attractor), 1 at 0.05, 2 at 0.05, 3 at 0.2.
        let z = row_of(&[0.5, 0.3, 0.15, 0.05]);
        let mut null = NullRow::default();
        null.set(&row_of(&[0.7, 0.05, 0.05, 0.2])).unwrap();
        let f = field::measure(&z).unwrap();
        let mut out = Vec::new();
        // α = 0.2: the head is {0, 1, 2} (0.05 < 0.2·0.5).
        assert_eq!(apply(&z, &f, &null, 1.0, 0.2, &mut out), 3);
        let pmi = |i: usize, q: f64| (z[i] as f64 - q.ln()) as f32;
        assert!((out[0] - pmi(0, 0.7)).abs() < 1e-5);
        assert!((out[1] - pmi(1, 0.05)).abs() < 1e-5);
        assert_eq!(out[3], z[3], "outside the head: unchanged");
        // Token 1 now leads: log 0.3 − log 0.05 > log 0.5 − log 0.7.
        let best = (0..4).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
        assert_eq!(best, 1);
        // β = 0 changes nothing; α = 1 boosts only the argmax, which keeps it.
        apply(&z, &f, &null, 0.0, 0.2, &mut out);
        assert_eq!(out, z);
        assert_eq!(apply(&z, &f, &null, 1.0, 1.0, &mut out), 1);
        let best = (0..4).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
        assert_eq!(best, 0);
    }

    #[test]
    fn masks_and_bad_rows() {
        let z = [0.0f32, 0.0, f32::NEG_INFINITY];
        let mut null = NullRow::default();
        // Token 1 masked under the null query: it counts as the least likely finite token.
        null.set(&[0.0f32, f32::NEG_INFINITY, -3.0]).unwrap();
        let floor = null.floor;
        assert!((floor - (-3.0 - (1.0f64 + (-3.0f64).exp()).ln()) as f32).abs() < 1e-5);
        let f = field::measure(&z).unwrap();
        let mut out = Vec::new();
        apply(&z, &f, &null, 1.0, 0.5, &mut out);
        assert!(out[1] > out[0] && out[1].is_finite());
        assert_eq!(out[2], f32::NEG_INFINITY, "masked stays masked");
        // Refused rows leave the stored one as it was.
        for bad in [
            [f32::NAN, 0.0, 0.0],
            [f32::INFINITY, 0.0, 0.0],
            [f32::NEG_INFINITY; 3],
        ] {
            assert!(null.set(&bad).is_err());
            assert!(null.pending() && null.floor == floor);
        }
        let copy = null.clone();
        assert!(copy.pending() && copy.lp == null.lp);
        null.clear();
        assert!(!null.clone().pending() && null.clone().lp.is_empty());
    }
}
