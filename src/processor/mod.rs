//! The processor: per-sequence state and the per-step pipeline (DESIGN.md §1 "Pipeline order").
//!
//! One step on one row, in this order (tested in `tests/pipeline.rs`):
//! 1. the host's own processors (`push_pre`), editing the row;
//! 2. measure the field in one pass, before any truncation (a truncated list's entropy is
//!    biased), gathering the candidates; a NaN/+inf row is rejected here, untouched;
//! 3. update the sequence's state and regimes (void score, black-hole score, hysteresis);
//! 4. interventions: abstention, anchor bias (λ·v), cycle penalty — sparse edits of the row;
//! 5. temperature T_t;
//! 6. truncation (min-p → top-k → top-p, as one cut τ);
//! 7. [`StepMode::Sample`]: seeded selection, the row keeping only the sparse edits;
//!    [`StepMode::Logits`]: the row is overwritten with the final logits z/T (−inf below τ)
//!    for the host to select from;
//! 8. the host calls [`GravityProcessor::accept`] with the token it emitted.
//!
//! Cost per step: one pass over the row, plus O(candidates + anchors + max_period); a second
//! pass only in the cases listed in [`crate::sampler`], and in `Logits` mode a write pass
//! unless T = 1 and nothing is truncated.
//!
//! Memory: per live sequence ~200 bytes + 4 bytes per history token and per anchor, bounded by
//! the limits in the configuration; per worker thread 8 bytes × (max_candidates + anchors) plus
//! 8 bytes × V for the exact fallback. Nothing is allocated per step once the buffers exist.

mod state;

use std::collections::HashMap;

use half::{bf16, f16};

use crate::calibration::Calibration;
use crate::config::{Config, VoidWeights};
use crate::error::{Error, Result};
use crate::field::{self, Cand, Candidates, Field, Logit};
use crate::mass::{self, Prior, QueryInput, QueryMass};
use crate::policy::{self, VoidFeatures};
use crate::sampler::{self, Cut, Known, Pick, Truncation};

pub use state::SeqState;

/// A host-side logits processor: edits one row in place. Only `apply` is required.
pub trait LogitsProcessor: Send {
    /// Edit the logits of sequence `seq` for its next token.
    fn apply(&mut self, seq: u64, logits: &mut [f32]) -> Result<()>;
    /// The token `seq` emitted.
    fn accept(&mut self, _seq: u64, _token: u32) -> Result<()> {
        Ok(())
    }
    /// Forget `seq`.
    fn reset(&mut self, _seq: u64) {}
}

/// Generation regime of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u32)]
pub enum Regime {
    /// Normal generation.
    #[default]
    Orbit = 0,
    /// Flat, weakly supported field: hallucination risk.
    Void = 1,
    /// Collapsed attractor: loops, canned text.
    BlackHole = 2,
}

/// Intervention flags of a [`StepReport`] (bit set).
pub mod flags {
    /// Anchor tokens were biased.
    pub const ANCHOR: u32 = 1;
    /// The escape temperature kick was applied.
    pub const KICK: u32 = 2;
    /// The token extending the detected cycle was penalised.
    pub const CYCLE_PENALTY: u32 = 4;
    /// The sequence abstains (see `StepReport::stop`).
    pub const ABSTAIN: u32 = 8;
    /// The token was forced (abstention text).
    pub const FORCED: u32 = 16;
    /// Selection or the cut needed an exact second pass over the row.
    pub const FULL_PASS: u32 = 32;
}

/// What the host wants from a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepMode {
    /// Select a token (seeded); the row keeps only the sparse intervention edits.
    #[default]
    Sample,
    /// Overwrite the row with the final logits; the host selects.
    Logits,
}

/// Diagnostics of one row at one step (DESIGN.md §1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Sequence id.
    pub seq: u64,
    /// 0-based step index within the sequence.
    pub step: u32,
    /// H, nats (measured before any intervention).
    pub entropy: f32,
    /// H / log V.
    pub entropy_norm: f32,
    /// Varentropy, nats².
    pub varentropy: f32,
    /// log Z.
    pub log_z: f32,
    /// p_max at T = 1.
    pub p_max: f32,
    /// z_(1) − z_(2).
    pub margin: f32,
    /// The selected token (Sample mode), if any.
    pub token: Option<u32>,
    /// Φ of the selected token under the measured field (NaN when none).
    pub token_potential: f32,
    /// Temperature used.
    pub temperature: f32,
    /// Regime after this step's update.
    pub regime: Regime,
    /// Void score v ∈ [0, 1].
    pub void_score: f32,
    /// Black-hole score b ∈ [0, 1].
    pub black_hole_score: f32,
    /// Task-space probability mass (None without a task space).
    pub task_mass: Option<f32>,
    /// [`flags`] bits.
    pub flags: u32,
    /// Period of the detected cycle (0 = none).
    pub cycle_period: u32,
    /// The host should stop this sequence (abstention finished).
    pub stop: bool,
}

impl Default for StepReport {
    fn default() -> Self {
        StepReport {
            seq: 0,
            step: 0,
            entropy: f32::NAN,
            entropy_norm: f32::NAN,
            varentropy: f32::NAN,
            log_z: f32::NAN,
            p_max: f32::NAN,
            margin: f32::NAN,
            token: None,
            token_potential: f32::NAN,
            temperature: f32::NAN,
            regime: Regime::Orbit,
            void_score: 0.0,
            black_hole_score: 0.0,
            task_mass: None,
            flags: 0,
            cycle_period: 0,
            stop: false,
        }
    }
}

/// Per-sequence inputs at `begin`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqParams<'a> {
    /// Seed of the sequence's sampling stream.
    pub seed: u64,
    /// Anchor tokens of this sequence (added to the configured ones).
    pub anchors: &'a [u32],
    /// What is known of the query, for M(Q).
    pub query: QueryInput<'a>,
}

/// A row of logits in any supported element type.
pub enum LogitsMut<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [f16]),
    BF16(&'a mut [bf16]),
}

/// One intervention edit of one token.
#[derive(Debug, Clone, Copy)]
struct Edit {
    id: u32,
    orig: f32,
    new: f32,
}

/// Buffers of one worker, allocated once.
struct Scratch {
    cands: Candidates,
    edits: Vec<Edit>,
    full: Vec<Cand>,
    skip: Vec<u32>,
}

/// What steps read and never write.
struct Core {
    cfg: Config,
    vocab: usize,
    weights: VoidWeights,
    window: f32,
    trunc: Truncation,
}

/// The gravity processor: configuration, loaded Prior/calibration, and live sequences.
///
/// Not `Sync`: calls on one processor must not overlap (it is `Send`: it may move between
/// threads). Batches may use its own worker pool (`limits.threads`).
pub struct GravityProcessor {
    core: Core,
    prior: Option<Prior>,
    calib: Option<Calibration>,
    seqs: Vec<SeqState>,
    index: HashMap<u64, usize>,
    free: Vec<usize>,
    workers: Vec<Scratch>,
    pool: Option<rayon::ThreadPool>,
    pre: Vec<Box<dyn LogitsProcessor>>,
    batch_slots: Vec<usize>,
    batch_epoch: u64,
    sort_scratch: Vec<u32>,
    base_anchors: Vec<u32>,
}

impl GravityProcessor {
    /// A processor for vocabulary size `vocab` (≥ 1).
    pub fn new(cfg: Config, vocab: usize) -> Result<GravityProcessor> {
        cfg.validate()?;
        if vocab == 0 || vocab > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "vocabulary size must be in [1, 2^32), got {vocab}"
            )));
        }
        cfg.check_tokens(vocab)?;
        let s = &cfg.sampler;
        let window = if s.window > 0.0 {
            s.window
        } else if s.min_p > 0.0 {
            // min-p at T ≤ T_max keeps z ≥ max + T·ln(min_p) ≥ max − T_max·ln(1/min_p): the
            // whole kept set is inside this window (plus a hair for rounding).
            (cfg.temperature.max * (1.0 / s.min_p).ln() * 1.001 + 1e-3).min(64.0)
        } else {
            10.0
        };
        let trunc = Truncation {
            min_p: s.min_p,
            top_k: s.top_k,
            top_p: s.top_p,
        };
        let mut base_anchors = cfg.anchor.tokens.clone();
        if cfg.anchor.use_task_space {
            base_anchors.extend_from_slice(&cfg.task_space.tokens);
        }
        base_anchors.sort_unstable();
        base_anchors.dedup();
        if base_anchors.len() > cfg.limits.max_anchors as usize {
            return Err(Error::ConfigOutOfRange {
                key: "anchor.tokens".into(),
                msg: "with the task space, more than limits.max_anchors".into(),
            });
        }
        let threads = match cfg.limits.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("infogravity-{i}"))
                    .build()
                    .map_err(|e| Error::InvalidArgument(format!("thread pool: {e}")))?,
            )
        } else {
            None
        };
        let weights = cfg.void.weights.clone();
        let mut p = GravityProcessor {
            core: Core {
                cfg,
                vocab,
                weights,
                window: window.min(64.0),
                trunc,
            },
            prior: None,
            calib: None,
            seqs: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
            workers: Vec::new(),
            pool,
            pre: Vec::new(),
            batch_slots: Vec::new(),
            batch_epoch: 0,
            sort_scratch: Vec::new(),
            base_anchors,
        };
        p.workers = (0..threads).map(|_| p.new_scratch()).collect();
        Ok(p)
    }

    fn new_scratch(&self) -> Scratch {
        let c = &self.core.cfg;
        let cap = c.sampler.max_candidates as usize;
        let mut cands = Candidates::with_capacity(cap);
        cands.reserve_blocks(self.core.vocab);
        // Room for the edits merged into the list without reallocating.
        cands.items.reserve(cap + c.limits.max_anchors as usize + 1);
        Scratch {
            cands,
            edits: Vec::with_capacity(c.limits.max_anchors as usize + 1),
            full: Vec::with_capacity(self.core.vocab),
            skip: Vec::with_capacity(cap + c.limits.max_anchors as usize + 1),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }
    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.core.vocab
    }
    /// Live sequences.
    pub fn live(&self) -> usize {
        self.index.len()
    }
    /// Candidate window in nats (see `sampler.window`).
    pub fn window(&self) -> f32 {
        self.core.window
    }

    /// Load (or clear) the Prior used for N(Q). Its vocabulary must match.
    pub fn set_prior(&mut self, prior: Option<Prior>) -> Result<()> {
        if let Some(p) = &prior {
            if p.vocab() != self.core.vocab {
                return Err(Error::SizeMismatch {
                    what: "prior vocabulary",
                    expected: self.core.vocab,
                    got: p.vocab(),
                });
            }
        }
        self.prior = prior;
        Ok(())
    }

    /// Load (or clear) a calibration: fitted void weights and M(Q) standardisation.
    pub fn set_calibration(&mut self, calib: Option<Calibration>) {
        self.core.weights = calib
            .as_ref()
            .and_then(|c| c.void.clone())
            .unwrap_or_else(|| self.core.cfg.void.weights.clone());
        self.calib = calib;
    }

    /// Add a host processor that runs before the measurement (pipeline step 1).
    pub fn push_pre(&mut self, p: Box<dyn LogitsProcessor>) {
        self.pre.push(p);
    }

    /// Start sequence `seq`: compute M(Q), set its seed and anchors.
    pub fn begin(&mut self, seq: u64, params: &SeqParams<'_>) -> Result<QueryMass> {
        if self.index.contains_key(&seq) {
            return Err(Error::DuplicateSequence(seq));
        }
        let limit = self.core.cfg.limits.max_sequences as usize;
        if self.index.len() >= limit {
            return Err(Error::TooManySequences { limit });
        }
        let v = self.core.vocab;
        if let Some(&id) = params.anchors.iter().find(|&&id| id as usize >= v) {
            return Err(Error::TokenOutOfRange {
                what: "anchor token",
                id: id as u64,
                vocab: v,
            });
        }
        let mass = mass::compute(
            &params.query,
            v,
            &self.core.cfg.mass,
            self.prior.as_ref(),
            self.calib.as_ref(),
            &mut self.sort_scratch,
        )?;
        let mut anchors = self.base_anchors.clone();
        anchors.extend_from_slice(params.anchors);
        anchors.sort_unstable();
        anchors.dedup();
        if anchors.len() > self.core.cfg.limits.max_anchors as usize {
            return Err(Error::InvalidArgument(format!(
                "{} anchors exceed limits.max_anchors = {}",
                anchors.len(),
                self.core.cfg.limits.max_anchors
            )));
        }
        let st = SeqState::new(seq, params.seed, anchors, mass, &self.core.cfg);
        let slot = match self.free.pop() {
            Some(i) => {
                self.seqs[i] = st;
                i
            }
            None => {
                self.seqs.push(st);
                self.seqs.len() - 1
            }
        };
        self.index.insert(seq, slot);
        for p in &mut self.pre {
            p.reset(seq);
        }
        Ok(mass)
    }

    fn slot(&self, seq: u64) -> Result<usize> {
        self.index
            .get(&seq)
            .copied()
            .ok_or(Error::UnknownSequence(seq))
    }

    /// The query mass computed at `begin`.
    pub fn mass(&self, seq: u64) -> Result<QueryMass> {
        Ok(self.seqs[self.slot(seq)?].mass)
    }

    /// One step on one row of f32 logits (see the module docs for the order).
    pub fn step(&mut self, seq: u64, row: &mut [f32], mode: StepMode) -> Result<StepReport> {
        self.step_row(seq, LogitsMut::F32(row), mode)
    }

    /// One step on one row of any element type.
    pub fn step_row(&mut self, seq: u64, row: LogitsMut<'_>, mode: StepMode) -> Result<StepReport> {
        let slot = self.slot(seq)?;
        let len = match &row {
            LogitsMut::F32(r) => r.len(),
            LogitsMut::F16(r) => r.len(),
            LogitsMut::BF16(r) => r.len(),
        };
        if len != self.core.vocab {
            return Err(Error::SizeMismatch {
                what: "logits row",
                expected: self.core.vocab,
                got: len,
            });
        }
        let st = &mut self.seqs[slot];
        let w = &mut self.workers[0];
        match row {
            LogitsMut::F32(r) => {
                for p in &mut self.pre {
                    p.apply(seq, r)?;
                }
                step_one(&self.core, st, w, r, mode)
            }
            LogitsMut::F16(r) => step_one(&self.core, st, w, r, mode),
            LogitsMut::BF16(r) => step_one(&self.core, st, w, r, mode),
        }
    }

    /// One step on a row-major `[B, V]` batch; row b belongs to `seqs[b]` (distinct ids).
    /// Rows are split across the worker pool when `limits.threads` > 1. Host processors
    /// (`push_pre`) are not run on batches. On an error in any row the call returns the first
    /// error; rows processed before it keep their edits, and no sequence state advances for
    /// rows whose step failed.
    pub fn step_batch<E: Logit>(
        &mut self,
        seqs: &[u64],
        logits: &mut [E],
        mode: StepMode,
        reports: &mut [StepReport],
    ) -> Result<()> {
        let v = self.core.vocab;
        let b = seqs.len();
        if logits.len() != b * v {
            return Err(Error::SizeMismatch {
                what: "batch logits (B × V)",
                expected: b * v,
                got: logits.len(),
            });
        }
        if reports.len() != b {
            return Err(Error::SizeMismatch {
                what: "batch reports",
                expected: b,
                got: reports.len(),
            });
        }
        self.batch_epoch += 1;
        let epoch = self.batch_epoch;
        self.batch_slots.clear();
        for &id in seqs {
            let slot = self.slot(id)?;
            let st = &mut self.seqs[slot];
            if st.batch_epoch == epoch {
                return Err(Error::DuplicateSequence(id));
            }
            st.batch_epoch = epoch;
            self.batch_slots.push(slot);
        }
        let core = &self.core;
        let states = StatePtr(self.seqs.as_mut_ptr());
        let slots = &self.batch_slots;
        let run = |rows: &mut [E], reps: &mut [StepReport], slots: &[usize], w: &mut Scratch| {
            for ((row, rep), &slot) in rows.chunks_exact_mut(v).zip(reps.iter_mut()).zip(slots) {
                // SAFETY: every slot index is < seqs.len() (from the index) and distinct within
                // the batch (checked with the epoch mark above), so each worker gets exclusive
                // access to the states of its own rows; `self.seqs` is not resized meanwhile.
                let st = unsafe { &mut *states.get().add(slot) };
                *rep = step_one(core, st, w, row, mode)?;
            }
            Ok::<(), Error>(())
        };
        match &self.pool {
            Some(pool) if b > 1 => {
                let per = b.div_ceil(self.workers.len());
                let workers = &mut self.workers;
                pool.install(|| {
                    use rayon::prelude::*;
                    logits
                        .par_chunks_mut(per * v)
                        .zip(reports.par_chunks_mut(per))
                        .zip(slots.par_chunks(per))
                        .zip(workers.par_iter_mut())
                        .try_for_each(|(((rows, reps), sl), w)| run(rows, reps, sl, w))
                })
            }
            _ => run(logits, reports, slots, &mut self.workers[0]),
        }
    }

    /// The host emitted `token` for `seq`: feeds the loop detector and the surprisal trend.
    pub fn accept(&mut self, seq: u64, token: u32) -> Result<()> {
        let slot = self.slot(seq)?;
        if token as usize >= self.core.vocab {
            return Err(Error::TokenOutOfRange {
                what: "accepted token",
                id: token as u64,
                vocab: self.core.vocab,
            });
        }
        self.seqs[slot].accept(token, &self.core.cfg);
        for p in &mut self.pre {
            p.accept(seq, token)?;
        }
        Ok(())
    }

    /// End sequence `seq` and free its slot.
    pub fn end(&mut self, seq: u64) -> Result<()> {
        let slot = self.index.remove(&seq).ok_or(Error::UnknownSequence(seq))?;
        self.free.push(slot);
        for p in &mut self.pre {
            p.reset(seq);
        }
        Ok(())
    }

    /// Reset a live sequence to its state right after `begin` (same seed, anchors, mass).
    pub fn reset(&mut self, seq: u64) -> Result<()> {
        let slot = self.slot(seq)?;
        self.seqs[slot].reset(&self.core.cfg);
        Ok(())
    }
}

impl LogitsProcessor for GravityProcessor {
    /// Runs a full step in `Logits` mode; sequences are begun on first sight with seed = id.
    fn apply(&mut self, seq: u64, logits: &mut [f32]) -> Result<()> {
        if !self.index.contains_key(&seq) {
            self.begin(
                seq,
                &SeqParams {
                    seed: seq,
                    ..Default::default()
                },
            )?;
        }
        self.step(seq, logits, StepMode::Logits).map(|_| ())
    }
    fn accept(&mut self, seq: u64, token: u32) -> Result<()> {
        GravityProcessor::accept(self, seq, token)
    }
    fn reset(&mut self, seq: u64) {
        let _ = self.end(seq);
    }
}

struct StatePtr(*mut SeqState);
impl StatePtr {
    fn get(&self) -> *mut SeqState {
        self.0
    }
}
// SAFETY: the pointer is only dereferenced at distinct indices by different workers (see
// `step_batch`), while `GravityProcessor` is mutably borrowed for the whole batch.
unsafe impl Send for StatePtr {}
// SAFETY: as above; shared access only hands out the base pointer.
unsafe impl Sync for StatePtr {}

/// Steps 2–7 of the pipeline for one row.
fn step_one<E: Logit>(
    core: &Core,
    st: &mut SeqState,
    w: &mut Scratch,
    row: &mut [E],
    mode: StepMode,
) -> Result<StepReport> {
    let cfg = &core.cfg;
    // 2. Measure (the row is untouched if this fails).
    let f = field::measure_gather(row, core.window, &mut w.cands)?;
    let gate = f.max - core.window;

    // 3. State and regimes.
    let task_mass = (!cfg.task_space.tokens.is_empty()).then(|| {
        cfg.task_space
            .tokens
            .iter()
            .map(|&t| f.prob(row[t as usize].to_f32()))
            .sum::<f64>()
            .min(1.0) as f32
    });
    let void_score = if cfg.void.enabled {
        VoidFeatures::new(&f, st.trend.value(), task_mass, st.mass.m).score(&core.weights)
    } else {
        0.0
    };
    let vc = &cfg.void;
    let in_void = st
        .void_h
        .update(void_score, vc.enter, vc.exit, vc.enter_after, vc.exit_after);
    let bc = &cfg.black_hole;
    let (bh_score, cycle) = if bc.enabled {
        if f.entropy_norm() < bc.low_entropy as f64 {
            st.low_streak = st.low_streak.saturating_add(1);
        } else {
            st.low_streak = 0;
        }
        let cycle = st.loops.cycle(bc.repeats);
        let attractor = bc.attractors.iter().any(|p| st.loops.ends_with(p));
        (
            policy::black_hole_score(bc, &cycle, st.low_streak, attractor),
            cycle,
        )
    } else {
        (
            0.0,
            policy::Cycle {
                strength: 0.0,
                period: 0,
                next: 0,
            },
        )
    };
    let in_bh = st
        .bh_h
        .update(bh_score, bc.enter, bc.exit, bc.enter_after, bc.exit_after);
    let mut rep = StepReport {
        seq: st.id,
        step: st.step,
        entropy: f.entropy as f32,
        entropy_norm: f.entropy_norm() as f32,
        varentropy: f.varentropy as f32,
        log_z: f.log_z as f32,
        p_max: f.p_max() as f32,
        margin: f.margin(),
        regime: if in_bh {
            Regime::BlackHole
        } else if in_void {
            Regime::Void
        } else {
            Regime::Orbit
        },
        void_score,
        black_hole_score: bh_score,
        task_mass,
        cycle_period: cycle.period,
        ..StepReport::default()
    };
    st.step = st.step.saturating_add(1);
    st.last_log_z = f.log_z;
    st.pending = None;

    // 4a. Abstention (decided once, at the first step).
    if let Some(forced) = st.abstain_step(void_score, cfg) {
        rep.flags |= flags::ABSTAIN;
        rep.temperature = 0.0;
        match forced {
            Some(tok) => {
                rep.flags |= flags::FORCED;
                rep.token_potential = f.potential(row[tok as usize].to_f32()) as f32;
                match mode {
                    StepMode::Sample => rep.token = Some(tok),
                    StepMode::Logits => force(row, tok),
                }
                st.pending = Some((tok, rep.token_potential));
            }
            None => rep.stop = true,
        }
        return Ok(rep);
    }

    // 4b. Sparse edits: anchor bias and cycle penalty.
    w.edits.clear();
    let ac = &cfg.anchor;
    if ac.enabled && ac.lambda != 0.0 && void_score >= ac.min_void && !st.anchors.is_empty() {
        let delta = ac.lambda * void_score;
        for &a in st.anchors.iter() {
            let orig = row[a as usize].to_f32();
            w.edits.push(Edit {
                id: a,
                orig,
                new: orig + delta,
            });
        }
        rep.flags |= flags::ANCHOR;
    }
    let ec = &cfg.escape;
    let mut kick = 1.0;
    if ec.enabled && in_bh {
        kick = ec.kick;
        rep.flags |= flags::KICK;
        if cycle.period > 0 && ec.cycle_penalty > 0.0 {
            let id = cycle.next;
            match w.edits.binary_search_by_key(&id, |e| e.id) {
                Ok(i) => w.edits[i].new -= ec.cycle_penalty,
                Err(i) => {
                    let orig = row[id as usize].to_f32();
                    w.edits.insert(
                        i,
                        Edit {
                            id,
                            orig,
                            new: orig - ec.cycle_penalty,
                        },
                    );
                }
            }
            rep.flags |= flags::CYCLE_PENALTY;
        }
    }
    for e in &w.edits {
        row[e.id as usize] = E::from_f32(e.new);
    }

    // 5. Temperature.
    let t = policy::temperature(&cfg.temperature, st.mass.m, &f, kick);
    rep.temperature = t;

    // 6–7. Truncation and selection / final logits.
    let tail_sum = merge_edits(&f, gate, &mut w.cands, &w.edits);
    let complete = !w.cands.overflow;
    let n_list = w.cands.items.len();
    let mut known = Known {
        list: &mut w.cands.items,
        gate,
        tail_sum,
        tail_len: core.vocab - n_list,
    };
    if t == 0.0 {
        // Greedy.
        let best = if complete {
            argmax(known.list).filter(|c| c.logit >= gate)
        } else {
            None
        };
        let best = best.unwrap_or_else(|| {
            rep.flags |= flags::FULL_PASS;
            row_argmax(row)
        });
        match mode {
            StepMode::Sample => rep.token = Some(best.id),
            StepMode::Logits => write_greedy(row, best.logit),
        }
        finish(&mut rep, st, &f, &w.edits, best.id, row, mode, known.list);
        return Ok(rep);
    }
    let c = if complete {
        sampler::cut(&mut known, t, &core.trunc)
    } else {
        Cut::NeedFull
    };
    let (tau, max, full) = match c {
        Cut::Tau { tau, max } => (tau, max, false),
        Cut::NeedFull => {
            rep.flags |= flags::FULL_PASS;
            let m = row_argmax(row).logit;
            let thr = if core.trunc.min_p > 0.0 {
                m + t * core.trunc.min_p.ln()
            } else {
                f32::NEG_INFINITY
            };
            w.full.clear();
            for (i, e) in row.iter().enumerate() {
                let z = e.to_f32();
                if z >= thr && z > f32::NEG_INFINITY {
                    w.full.push(Cand {
                        logit: z,
                        id: i as u32,
                    });
                }
            }
            let mut k = Known {
                list: &mut w.full,
                gate: f32::NEG_INFINITY,
                tail_sum: 0.0,
                tail_len: 0,
            };
            match sampler::cut(&mut k, t, &core.trunc) {
                Cut::Tau { tau, max } => (tau, max, true),
                Cut::NeedFull => unreachable!("a complete list always decides the cut"),
            }
        }
    };
    match mode {
        StepMode::Logits => {
            write_final(row, tau, t);
            let list = if full {
                &w.full[..]
            } else {
                &w.cands.items[..]
            };
            finish(&mut rep, st, &f, &w.edits, u32::MAX, row, mode, list);
        }
        StepMode::Sample => {
            let u = st.rng.uniform();
            let known = Known {
                list: if full {
                    &mut w.full
                } else {
                    &mut w.cands.items
                },
                gate: if full { f32::NEG_INFINITY } else { gate },
                tail_sum,
                tail_len: if full { 0 } else { core.vocab - n_list },
            };
            let id = match sampler::pick(&known, tau, max, t, u) {
                Pick::Token(id) => id,
                Pick::Tail { x, known: kw } => {
                    rep.flags |= flags::FULL_PASS;
                    w.skip.clear();
                    w.skip
                        .extend(known.list.iter().filter(|c| c.logit < gate).map(|c| c.id));
                    w.skip.sort_unstable();
                    let rng = &mut st.rng;
                    sampler::resolve_tail(row, &known, &w.skip, tau, max, t, x, kw, &mut || {
                        rng.uniform()
                    })
                }
            };
            rep.token = Some(id);
            let list = if full {
                &w.full[..]
            } else {
                &w.cands.items[..]
            };
            finish(&mut rep, st, &f, &w.edits, id, row, mode, list);
        }
    }
    Ok(rep)
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

fn argmax(list: &[Cand]) -> Option<Cand> {
    list.iter().copied().reduce(|a, b| {
        if b.logit > a.logit || (b.logit == a.logit && b.id < a.id) {
            b
        } else {
            a
        }
    })
}

fn row_argmax<E: Logit>(row: &[E]) -> Cand {
    let mut best = Cand {
        logit: f32::NEG_INFINITY,
        id: 0,
    };
    for (i, e) in row.iter().enumerate() {
        let z = e.to_f32();
        if z > best.logit {
            best = Cand {
                logit: z,
                id: i as u32,
            };
        }
    }
    best
}

/// Final logits: z/T at and above τ, −inf below (nothing written when T = 1 and τ = −inf).
fn write_final<E: Logit>(row: &mut [E], tau: f32, t: f32) {
    if t == 1.0 && tau == f32::NEG_INFINITY {
        return;
    }
    let inv = 1.0 / t;
    let ninf = E::from_f32(f32::NEG_INFINITY);
    for e in row.iter_mut() {
        let z = e.to_f32();
        *e = if z >= tau { E::from_f32(z * inv) } else { ninf };
    }
}

/// Greedy as logits: 0 at the maximum (every tie), −inf elsewhere.
fn write_greedy<E: Logit>(row: &mut [E], max: f32) {
    for e in row.iter_mut() {
        *e = E::from_f32(if e.to_f32() == max {
            0.0
        } else {
            f32::NEG_INFINITY
        });
    }
}

/// Only `tok` remains possible.
fn force<E: Logit>(row: &mut [E], tok: u32) {
    for (i, e) in row.iter_mut().enumerate() {
        *e = E::from_f32(if i as u32 == tok {
            0.0
        } else {
            f32::NEG_INFINITY
        });
    }
}

/// Record the chosen token's potential and, for `Logits` mode, the top candidates (so `accept`
/// can find the surprisal of the host's choice).
#[allow(clippy::too_many_arguments)] // private helper at the end of `step_one`
fn finish<E: Logit>(
    rep: &mut StepReport,
    st: &mut SeqState,
    f: &Field,
    edits: &[Edit],
    id: u32,
    row: &[E],
    mode: StepMode,
    list: &[Cand],
) {
    // The measured (pre-intervention) logit of a token.
    let orig = |id: u32, now: f32| {
        edits
            .binary_search_by_key(&id, |e| e.id)
            .map_or(now, |i| edits[i].orig)
    };
    match mode {
        StepMode::Sample => {
            let phi = f.potential(orig(id, row[id as usize].to_f32())) as f32;
            rep.token_potential = phi;
            st.pending = Some((id, phi));
        }
        StepMode::Logits => st.remember_top(list, |c| f.potential(orig(c.id, c.logit)) as f32),
    }
}
