//! Interventions: what the processor does about a regime, pipeline stage 4 (docs/DESIGN.md §1
//! "Interventions"). Each is switched by its configuration section and recorded in the step's
//! flags:
//!
//! - **abstention** (`abstain`): decided once, at a sequence's first step, from the void score:
//!   stop at once or force the configured text, then stop;
//! - **anchoring** (`anchor`): add λ·v to the logit of each anchor token while v ≥ `min_void`;
//! - **escape** (`escape`): before a loop completes, a graded penalty on the tokens that would
//!   extend a running back-to-back repeat and a guard on the token that would complete one;
//!   while in a black hole, a temperature kick and a penalty on the token that would extend the
//!   detected cycle; with `escape.rollback`, where the guard fires the step also advises the host
//!   to rewind the copy, and a rewound position masks the token that began it.
//!
//! Anchoring and the escape penalties are sparse `Edit`s that selection overlays on the row; the
//! edited values are rounded to the row's element type here, once, so every later stage sees
//! exactly what a `Logits`-mode host receives.

use crate::config::{AbstainConfig, Config};
use crate::field::Logit;
use crate::policy::{LoopDetector, Regimes};
use crate::report::flags;
use crate::sampler::Edit;

/// Where a sequence is in the abstention decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AbstainState {
    /// Before the first step.
    Undecided,
    /// Decided to answer.
    Answering,
    /// Abstaining; the index of the next abstention token to force.
    Abstaining(u32),
}

/// The abstention decision for one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abstain {
    /// Answer normally.
    Answer,
    /// Force this token of the abstention text.
    Force(u32),
    /// The abstention is complete: the host should stop.
    Stop,
}

/// Abstention (Kalai et al. 2025, arXiv:2509.04664): at the first step, abstain when the
/// confidence 1 − v is below the break-even `target`. Returns this step's decision and the next
/// state.
pub(crate) fn abstention(
    cfg: &AbstainConfig,
    state: AbstainState,
    void_score: f32,
) -> (Abstain, AbstainState) {
    let state = match state {
        AbstainState::Undecided if cfg.enabled && 1.0 - void_score < cfg.target => {
            AbstainState::Abstaining(0)
        }
        AbstainState::Undecided => AbstainState::Answering,
        s => s,
    };
    match state {
        AbstainState::Abstaining(i) => {
            let next = AbstainState::Abstaining(i.saturating_add(1));
            match cfg.tokens.get(i as usize) {
                Some(&tok) => (Abstain::Force(tok), next),
                None => (Abstain::Stop, next),
            }
        }
        s => (Abstain::Answer, s),
    }
}

/// What the edits do besides the row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    /// Temperature multiplier (1 unless escaping).
    pub kick: f32,
    /// [`flags`] bits of the interventions applied.
    pub flags: u32,
    /// Tokens the step advises rewinding (0: none).
    pub rollback: u32,
}

/// What a plan reads of the sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeqView<'a> {
    pub loops: &'a LoopDetector,
    pub anchors: &'a [u32],
    /// The most tokens a rewind advised now may drop (0: advise none).
    pub allow: u32,
    /// Tokens an earlier rewind banned at this position.
    pub banned: &'a [u32],
}

/// The would-close guard's penalty: far below any logit a model produces, yet finite, so a row
/// whose every token were guarded would still be a distribution.
pub(crate) const GUARD_PENALTY: f32 = 1e4;

/// The longest match the windowed graded penalty measures (bounds its work and exponent).
const MAX_MATCH: usize = 64;

/// Anchor bias and escape for one step: fills `edits` (sorted by id, values rounded to `E`).
/// `pens` is scratch for the escape penalties (capacity `black_hole.max_period +
/// escape.repeat_window + 1` and the bans).
pub(crate) fn plan<E: Logit>(
    cfg: &Config,
    reg: &Regimes,
    seq: SeqView<'_>,
    row: &[E],
    edits: &mut Vec<Edit>,
    pens: &mut Vec<(u32, f32)>,
) -> Plan {
    edits.clear();
    let mut out = Plan {
        kick: 1.0,
        flags: 0,
        rollback: 0,
    };
    let (ac, anchors) = (&cfg.anchor, seq.anchors);
    if ac.enabled && ac.lambda != 0.0 && reg.void_score >= ac.min_void && !anchors.is_empty() {
        let delta = ac.lambda * reg.void_score;
        // `anchors` is sorted and deduplicated, so the edits are in id order.
        edits.extend(anchors.iter().map(|&id| shifted(row, id, delta)));
        out.flags |= flags::ANCHOR;
    }
    if !cfg.escape.enabled {
        return out;
    }
    let (bits, rollback) = escape_penalties(cfg, reg, seq, pens);
    out.flags |= bits;
    out.rollback = rollback;
    if reg.in_black_hole() {
        out.kick = cfg.escape.kick;
        out.flags |= flags::KICK;
    }
    // The largest penalty per token, merged into the id-ordered edits.
    pens.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    pens.dedup_by_key(|p| p.0);
    for &(id, pen) in pens.iter() {
        match edits.binary_search_by_key(&id, |e| e.id) {
            Ok(i) => edits[i].new = round::<E>(edits[i].new, -pen),
            Err(i) => edits.insert(i, shifted(row, id, -pen)),
        }
    }
    out
}

/// The escape penalties of this step into `pens` (unsorted; a token may appear more than
/// once); returns their flags and the rewind advised (the longest guarded copy that `seq.allow`
/// allows, 0 for none). O(P + banned).
fn escape_penalties(
    cfg: &Config,
    reg: &Regimes,
    seq: SeqView<'_>,
    pens: &mut Vec<(u32, f32)>,
) -> (u32, u32) {
    let loops = seq.loops;
    let ec = &cfg.escape;
    let mut bits = 0;
    let mut rollback = 0;
    pens.clear();
    for &t in seq.banned {
        pens.push((t, GUARD_PENALTY));
        bits |= flags::BANNED;
    }
    let reps = cfg.black_hole.repeats.saturating_sub(1).max(1) as f32;
    let since_break = loops.since_break();
    let graded = |n: u32, strength: f32| {
        let grow = ec.repeat_base.powi((n - ec.repeat_allowed).min(64) as i32);
        (ec.repeat_penalty * strength * grow).min(GUARD_PENALTY)
    };
    for r in loops.repeats() {
        // Would-close guard: this token would complete `guard_repeats` copies of the unit.
        if ec.guard_min_period > 0
            && r.period >= ec.guard_min_period
            && r.run as u64 + 1 >= (ec.guard_repeats as u64 - 1) * r.period as u64
        {
            pens.push((r.next, GUARD_PENALTY));
            bits |= flags::GUARD;
            // Rollback: rather than end the copy on its last token, drop the copy (the run(p)
            // tokens that repeat the unit) and take another path where it began.
            if r.run > rollback && r.run <= seq.allow {
                rollback = r.run;
                bits |= flags::ROLLBACK;
            }
            continue;
        }
        // Graded penalty on the running repeat: its length counts from the last breaker.
        let n = r.run.min(since_break);
        if ec.repeat_window == 0 && ec.repeat_penalty > 0.0 && n >= ec.repeat_allowed {
            let pen = graded(n, (r.run as f32 / (reps * r.period as f32)).min(1.0));
            if pen > 0.0 {
                pens.push((r.next, pen));
                bits |= flags::REPEAT_PENALTY;
            }
        }
    }
    if ec.repeat_window > 0 && ec.repeat_penalty > 0.0 {
        loops.matches(ec.repeat_window as usize, MAX_MATCH, |next, n| {
            if n >= ec.repeat_allowed {
                pens.push((next, graded(n, 1.0)));
                bits |= flags::REPEAT_PENALTY;
            }
        });
    }
    if reg.in_black_hole() && reg.cycle.period > 0 && ec.cycle_penalty > 0.0 {
        pens.push((reg.cycle.next, ec.cycle_penalty));
        bits |= flags::CYCLE_PENALTY;
    }
    (bits, rollback)
}

/// Token `id` moved by `delta` nats.
fn shifted<E: Logit>(row: &[E], id: u32, delta: f32) -> Edit {
    let orig = row[id as usize].to_f32();
    Edit {
        id,
        orig,
        new: round::<E>(orig, delta),
    }
}

/// `z + delta` as the row's element type will hold it: finite stays finite (saturating), a
/// masked token stays masked.
fn round<E: Logit>(z: f32, delta: f32) -> f32 {
    if z == f32::NEG_INFINITY {
        z
    } else {
        E::from_f32_finite(z + delta).to_f32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstention_states() {
        let mut cfg = Config::default().abstain;
        cfg.enabled = true;
        cfg.target = 0.5;
        cfg.tokens = vec![7];
        let (a, s) = abstention(&cfg, AbstainState::Undecided, 0.9);
        assert_eq!(a, Abstain::Force(7));
        let (a, s) = abstention(&cfg, s, 0.0);
        assert_eq!((a, s), (Abstain::Stop, AbstainState::Abstaining(2)));
        let (a, s) = abstention(&cfg, AbstainState::Undecided, 0.1);
        assert_eq!((a, s), (Abstain::Answer, AbstainState::Answering));
        // Decided once: a later void step does not abstain.
        assert_eq!(abstention(&cfg, s, 1.0).0, Abstain::Answer);
    }

    #[test]
    fn edits_round_to_the_row_type() {
        use half::bf16;
        // bf16 keeps 8 significant bits: near 100 its spacing is 0.5.
        assert_eq!(round::<bf16>(100.0, 0.2), 100.0);
        assert_eq!(round::<bf16>(100.0, 0.3), 100.5);
        assert_eq!(round::<f32>(100.0, 0.5), 100.5);
        assert_eq!(round::<half::f16>(65000.0, 1000.0), 65504.0);
        assert_eq!(round::<f32>(f32::NEG_INFINITY, 3.0), f32::NEG_INFINITY);
    }
}
