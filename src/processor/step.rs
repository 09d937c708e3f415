//! One step on one row: pipeline stages 2–7, as a chain of stage calls. The stage that can fail
//! ([`measure`]: the row is rejected before anything changes) is separate from the rest
//! ([`decide`]: infallible), so a batch can measure every row before it decides any.

use crate::concept;
use crate::config::AnswerWeights;
use crate::contrast;
use crate::error::{Error, Result};
use crate::field::{self, Cand, Candidates, Field, Logit};
use crate::interventions::{self, Abstain, SeqView};
use crate::policy::{self, Regimes, Running};
use crate::report::{StepReport, flags};
use crate::sampler::{self, Edit, Selection, StepMode};

use super::Core;
use super::rewind::Banned;
use super::state::{Dyn, SeqState, StepField};

/// Buffers of one worker, allocated once (see `GravityProcessor::new` for their sizes).
pub(super) struct Scratch {
    pub cands: Candidates,
    pub edits: Vec<Edit>,
    /// The escape penalties of a step (capacity `black_hole.max_period +
    /// escape.repeat_window + 1`).
    pub pens: Vec<(u32, f32)>,
    /// The exact kept set when the candidates cannot decide (capacity V).
    pub full: Vec<Cand>,
    /// Batches: the measured rows of this worker's chunk, and their candidates.
    pub measured: Vec<Measured>,
    pub arena: Vec<Cand>,
    /// Batches: the first row of the chunk that failed to measure, and why.
    pub failed: Option<(usize, Error)>,
    /// The concept-tilted row (capacity V once a concept is set).
    pub tilted: Vec<f32>,
    /// The null-query contrasted row (capacity V once a null-query row is set).
    pub contrasted: Vec<f32>,
}

/// A measured batch row waiting for its decision.
#[derive(Clone, Copy)]
pub(super) struct Measured {
    pub field: Field,
    pub start: usize,
    pub len: usize,
    pub overflow: bool,
}

/// Stages 2–7 for one row.
pub(super) fn step_one<E: Logit>(
    core: &Core,
    st: &mut SeqState,
    w: &mut Scratch,
    row: &mut [E],
    mode: StepMode,
) -> Result<StepReport> {
    let f = measure(core, &mut w.cands, row)?;
    Ok(decide(core, st, w, &f, row, mode))
}

/// Stage 2: measure the field in one pass, before any truncation (a truncated list's entropy
/// is biased), gathering the candidates. A NaN/+inf/all-masked row is rejected here, untouched.
pub(super) fn measure<E: Logit>(core: &Core, cands: &mut Candidates, row: &[E]) -> Result<Field> {
    Ok(field::measure_gather(row, core.window, cands)?)
}

/// Stages 3–7 on a measured row (its candidates in `w.cands`). Reads the sequence's committed
/// state and leaves the step's proposal for `accept`; writes the row only in `Logits` mode.
pub(super) fn decide<E: Logit>(
    core: &Core,
    st: &mut SeqState,
    w: &mut Scratch,
    f: &Field,
    row: &mut [E],
    mode: StepMode,
) -> StepReport {
    let cfg = &core.cfg;
    st.advice = None;
    let mut next = st.now;
    next.step = next.step.saturating_add(1);

    // 3. Regimes.
    let task_mass = task_mass(&cfg.task_space.tokens, f, row);
    let running = Running {
        tracks: st.now.tracks,
        trend: st.trend.value(),
        mass: st.mass.m,
        task_mass,
        loops: &st.loops,
    };
    let reg = policy::classify(cfg, &core.weights, f, running);
    next.tracks = reg.tracks;
    let mut rep = report(st, f, &reg, task_mass, &core.answer);
    if let Some(p) = &core.probe {
        rep.probe = p.read(row);
    }

    // 4. Interventions: abstention (decided at the first step), then the sparse edits.
    let (abstain, state) = interventions::abstention(&cfg.abstain, st.now.abstain, reg.void_score);
    next.abstain = state;
    if abstain != Abstain::Answer {
        abstain_step(st, next, f, row, mode, abstain, &mut rep);
        return rep;
    }
    // 4b. The null-query contrast (dense): the rest of the step runs on the contrasted row.
    let xc = &cfg.contrast;
    if xc.enabled
        && xc.beta > 0.0
        && st.contrast.pending()
        && !(xc.until_content && st.answer.has_content())
        && (!xc.prior_top_only || f.argmax == st.contrast.top())
    {
        let mut c = std::mem::take(&mut w.contrasted);
        contrast::apply(row, f, &st.contrast, xc.beta, xc.plausibility, &mut c);
        // Finite stays finite and masked stays masked, so the contrasted row measures.
        if let Ok(fc) = measure(core, &mut w.cands, &c[..]) {
            rep.flags |= flags::CONTRAST;
            concept_stage(
                core,
                st,
                w,
                next,
                &reg,
                f,
                &fc,
                &mut c[..],
                Some(&*row),
                mode,
                &mut rep,
            );
            if mode == StepMode::Logits {
                write_back(row, &c);
            }
            w.contrasted = c;
            return rep;
        }
        w.contrasted = c;
        // Unreachable in practice; the step below re-gathers the candidates.
        let _ = measure(core, &mut w.cands, row);
    }
    let no_orig: Option<&[E]> = None;
    concept_stage(core, st, w, next, &reg, f, f, row, no_orig, mode, &mut rep);
    rep
}

/// Stage 4c, the concept tilt (dense), on `row` with its field `fs` (the contrasted row when
/// `orig` holds the measured one), then the rest of the step ([`finish`]).
#[allow(clippy::too_many_arguments)] // the stage's inputs, each distinct; two call sites
fn concept_stage<R: Logit, E: Logit>(
    core: &Core,
    st: &mut SeqState,
    w: &mut Scratch,
    next: Dyn,
    reg: &Regimes,
    f: &Field,
    fs: &Field,
    row: &mut [R],
    orig: Option<&[E]>,
    mode: StepMode,
    rep: &mut StepReport,
) {
    let cfg = &core.cfg;
    let concept = st.concept.as_ref().or(core.concept.as_ref());
    let cc = &cfg.concept;
    let onset = (cc.max_steps == 0 || st.now.step < cc.max_steps)
        && !(cc.until_content && st.answer.has_content());
    // The type-mass gate: a model already naming the concept's type is left alone.
    let open = |c: &concept::Concept| match c.tokens() {
        Some(t) if cc.max_type_mass < 1.0 => {
            concept::type_mass(row, fs, t) < cc.max_type_mass as f64
        }
        _ => true,
    };
    if let Some(c) =
        concept.filter(|c| cc.enabled && onset && reg.void_score >= cc.min_void && open(c))
    {
        let (alpha, kl) =
            concept::strength(row, fs, c.bias(), cc.lambda * reg.void_score, cc.max_kl);
        if alpha > 0.0 {
            let mut tilted = std::mem::take(&mut w.tilted);
            concept::tilt(row, c.bias(), alpha, &mut tilted);
            // Finite stays finite and masked stays masked, so the tilted row measures.
            if let Ok(ft) = measure(core, &mut w.cands, &tilted[..]) {
                rep.flags |= flags::CONCEPT;
                rep.concept_kl = kl;
                // Potentials are read from the measured row: `orig`, or this one.
                match orig {
                    Some(o) => finish(
                        core,
                        st,
                        w,
                        next,
                        reg,
                        f,
                        &ft,
                        &mut tilted[..],
                        Some(o),
                        mode,
                        rep,
                    ),
                    None => finish(
                        core,
                        st,
                        w,
                        next,
                        reg,
                        f,
                        &ft,
                        &mut tilted[..],
                        Some(&*row),
                        mode,
                        rep,
                    ),
                }
                if mode == StepMode::Logits {
                    write_back(row, &tilted);
                }
                w.tilted = tilted;
                return;
            }
            w.tilted = tilted;
            // Unreachable in practice; the untilted step below re-gathers the candidates.
            let _ = measure(core, &mut w.cands, row);
        }
    }
    finish(core, st, w, next, reg, f, fs, row, orig, mode, rep);
}

/// Copy a rewritten f32 row (its values already rounded to `E`) back into the host's row.
fn write_back<E: Logit>(row: &mut [E], from: &[f32]) {
    for (d, &t) in row.iter_mut().zip(from) {
        *d = if t.is_finite() {
            E::from_f32_finite(t)
        } else {
            E::from_f32(t)
        };
    }
}

/// Stages 4–7 after abstention and the dense rewrites, on `row` with its field `fs` (a
/// rewritten row when `orig` holds the measured one): the sparse edits, the temperature (from the measured
/// field `f`), the selection, and the proposal (potentials under the measured field).
#[allow(clippy::too_many_arguments)] // the stage's inputs, each distinct; three call sites
fn finish<R: Logit, E: Logit>(
    core: &Core,
    st: &mut SeqState,
    w: &mut Scratch,
    mut next: Dyn,
    reg: &Regimes,
    f: &Field,
    fs: &Field,
    row: &mut [R],
    orig: Option<&[E]>,
    mode: StepMode,
    rep: &mut StepReport,
) {
    let cfg = &core.cfg;
    let mut banned = Banned::default();
    let n_banned = st.rewind.banned(st.now.step, &mut banned);
    let view = SeqView {
        loops: &st.loops,
        anchors: &st.anchors,
        allow: if cfg.escape.rollback > 0 {
            let left = cfg.escape.rollback_budget.saturating_sub(st.rewind.spent);
            (st.rewind.held() as u32).min(left)
        } else {
            0
        },
        banned: &banned[..n_banned],
    };
    let plan = interventions::plan(cfg, reg, view, row, &mut w.edits, &mut w.pens);
    rep.flags |= plan.flags;
    rep.rollback = plan.rollback;

    // 5. Temperature.
    rep.temperature = policy::temperature(&cfg.temperature, st.mass.m, f, plan.kick);

    // 6–7. Truncation, then selection or the final logits.
    let mut trunc = core.trunc;
    if rep.temperature > 0.0 {
        trunc.nsigma_width = sampler::nsigma_width(row, &w.edits, fs, cfg.sampler.top_nsigma);
    }
    let sel = sampler::select(
        row,
        fs,
        &mut w.cands,
        &w.edits,
        &mut w.full,
        rep.temperature,
        &trunc,
        mode,
        &mut next.rng,
    );
    if sel.full_pass {
        rep.flags |= flags::FULL_PASS;
    }

    // What `accept` needs: the selected token, or the likely choices of a `Logits` host.
    match orig {
        None => remember(st, next, f, row, &w.edits, &sel, rep),
        Some(orig) => remember_tilted(st, next, f, orig, &sel, rep),
    }
    st.advise(plan.rollback);
}

/// The report's measurement and regime fields.
fn report(
    st: &SeqState,
    f: &Field,
    reg: &Regimes,
    task_mass: Option<f32>,
    answer: &AnswerWeights,
) -> StepReport {
    StepReport {
        seq: st.id,
        step: st.now.step,
        entropy: f.entropy as f32,
        entropy_norm: f.entropy_norm() as f32,
        varentropy: f.varentropy as f32,
        log_z: f.log_z as f32,
        p_max: f.p_max() as f32,
        margin: f.margin(),
        regime: reg.regime(),
        void_score: reg.void_score,
        black_hole_score: reg.black_hole_score,
        task_mass,
        cycle_period: reg.cycle.period,
        answer: st.answer.stats(answer),
        ..StepReport::default()
    }
}

/// An abstaining step: force the next token of the abstention text, or stop.
fn abstain_step<E: Logit>(
    st: &mut SeqState,
    next: Dyn,
    f: &Field,
    row: &mut [E],
    mode: StepMode,
    abstain: Abstain,
    rep: &mut StepReport,
) {
    rep.flags |= flags::ABSTAIN;
    rep.temperature = 0.0;
    let chosen = match abstain {
        Abstain::Force(tok) => {
            rep.flags |= flags::FORCED;
            rep.token = Some(tok);
            rep.token_potential = f.potential(row[tok as usize].to_f32()) as f32;
            if mode == StepMode::Logits {
                sampler::force(row, tok);
            }
            Some((tok, rep.token_potential))
        }
        _ => {
            rep.stop = true;
            None
        }
    };
    st.propose(next, step_field(f, rep.probe), chosen);
}

/// Leave the proposal: the selected token with its potential (measured, before the edits), or
/// in `Logits` mode the largest kept candidates with theirs.
fn remember<E: Logit>(
    st: &mut SeqState,
    next: Dyn,
    f: &Field,
    row: &[E],
    edits: &[Edit],
    sel: &Selection<'_>,
    rep: &mut StepReport,
) {
    match sel.token {
        Some(id) => {
            rep.token = Some(id);
            rep.token_potential = f.potential(sampler::measured(row, edits, id)) as f32;
            st.propose(
                next,
                step_field(f, rep.probe),
                Some((id, rep.token_potential)),
            );
        }
        None => {
            // The list holds edited values; the edits keep the measured ones.
            let orig = |c: &Cand| {
                edits
                    .binary_search_by_key(&c.id, |e| e.id)
                    .map_or(c.logit, |k| edits[k].orig)
            };
            st.propose_top(next, step_field(f, rep.probe), sel.list, |c| {
                f.potential(orig(c)) as f32
            })
        }
    }
}

/// [`remember`] for a tilted step: every potential is read from the measured row `orig`
/// (untouched until the step ends).
fn remember_tilted<E: Logit>(
    st: &mut SeqState,
    next: Dyn,
    f: &Field,
    orig: &[E],
    sel: &Selection<'_>,
    rep: &mut StepReport,
) {
    let pot = |id: u32| f.potential(orig[id as usize].to_f32()) as f32;
    match sel.token {
        Some(id) => {
            rep.token = Some(id);
            rep.token_potential = pot(id);
            st.propose(
                next,
                step_field(f, rep.probe),
                Some((id, rep.token_potential)),
            );
        }
        None => st.propose_top(next, step_field(f, rep.probe), sel.list, |c| pot(c.id)),
    }
}

/// What the answer aggregates keep of a step's field (and its probe value).
fn step_field(f: &Field, probe: f32) -> StepField {
    StepField {
        entropy: f.entropy as f32,
        sqrt_varentropy: f.varentropy.max(0.0).sqrt() as f32,
        one_minus_pmax: (1.0 - f.p_max()) as f32,
        probe,
    }
}

/// Probability mass of the task-space tokens under the field (None without a task space).
fn task_mass<E: Logit>(tokens: &[u32], f: &Field, row: &[E]) -> Option<f32> {
    (!tokens.is_empty()).then(|| {
        tokens
            .iter()
            .map(|&t| f.prob(row[t as usize].to_f32()))
            .sum::<f64>()
            .min(1.0) as f32
    })
}
