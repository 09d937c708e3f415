//! Per-sequence state: bounded (history ring, anchors), reset-able, and provisional per step.
//!
//! A step reads the **committed** state ([`Dyn`]) and leaves a proposal; `accept` commits it.
//! Stepping the same position twice (a grammar rejection, a speculative verify) therefore gives
//! the same result as stepping it once, and the state only moves when a token is accepted.

use crate::concept::Concept;
use crate::config::AnswerWeights;
use crate::config::Config;
use crate::contrast::NullRow;
use crate::field::Cand;
use crate::interventions::AbstainState;
use crate::mass::QueryMass;
use crate::policy::{LoopDetector, Tracks, Trend};
use crate::report::{AnswerStats, FirstContent};
use crate::sampler::Rng;

use super::rewind::Rewind;

/// How many of the last step's top tokens are remembered for `accept` in `Logits` mode.
const TOP: usize = 8;

/// The part of a sequence's state that a step advances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dyn {
    /// Positions accepted so far: the index of the next step.
    pub step: u32,
    pub rng: Rng,
    pub tracks: Tracks,
    pub abstain: AbstainState,
}

/// The part of a step's field the answer aggregates take.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StepField {
    pub entropy: f32,
    pub sqrt_varentropy: f32,
    pub one_minus_pmax: f32,
    /// The probe's value (NaN: none).
    pub probe: f32,
}

/// The running sums behind [`AnswerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Answer {
    tokens: u32,
    sum_h: f64,
    max_h: f32,
    sum_sqrt_v: f64,
    /// Tokens whose Φ is known, their sum and max.
    phis: u32,
    sum_phi: f64,
    max_phi: f32,
    first_content: Option<FirstContent>,
    /// The probe at the first step (read once a step was taken), and its count and sum over
    /// the steps where it was finite.
    first_probe: f32,
    /// H and 1 − p_max at the first step.
    first_h: f32,
    first_q: f32,
    probes: u32,
    sum_probe: f64,
    /// A content token was accepted, with or without a step of its own (a forced token).
    saw_content: bool,
}

impl Answer {
    fn push(&mut self, f: &StepField, phi: f32, content: bool, step: u32) {
        if self.tokens == 0 {
            self.first_probe = f.probe;
            self.first_h = f.entropy;
            self.first_q = f.one_minus_pmax;
        }
        if f.probe.is_finite() {
            self.probes += 1;
            self.sum_probe += f.probe as f64;
        }
        self.tokens += 1;
        self.sum_h += f.entropy as f64;
        self.max_h = if self.tokens == 1 {
            f.entropy
        } else {
            self.max_h.max(f.entropy)
        };
        self.sum_sqrt_v += f.sqrt_varentropy as f64;
        if phi.is_finite() {
            self.phis += 1;
            self.sum_phi += phi as f64;
            self.max_phi = if self.phis == 1 {
                phi
            } else {
                self.max_phi.max(phi)
            };
        }
        if content && self.first_content.is_none() {
            self.first_content = Some(FirstContent {
                step,
                entropy: f.entropy,
                one_minus_pmax: f.one_minus_pmax,
                potential: phi,
            });
        }
    }

    /// Whether a content token was accepted yet, with or without a step of its own (with no
    /// content table, any token is one).
    pub(crate) fn has_content(&self) -> bool {
        self.saw_content
    }

    /// The aggregates so far, with the answer-level void by `w`.
    pub(crate) fn stats(&self, w: &AnswerWeights) -> AnswerStats {
        let mut a = AnswerStats {
            first_content: self.first_content,
            sum_potential: self.sum_phi as f32,
            ..AnswerStats::default()
        };
        if self.tokens > 0 {
            let n = self.tokens as f64;
            a.tokens = self.tokens;
            a.mean_entropy = (self.sum_h / n) as f32;
            a.max_entropy = self.max_h;
            a.mean_sqrt_varentropy = (self.sum_sqrt_v / n) as f32;
            a.probe_first = self.first_probe;
            a.first_entropy = self.first_h;
            a.first_one_minus_pmax = self.first_q;
        }
        if self.probes > 0 {
            a.probe_mean = (self.sum_probe / self.probes as f64) as f32;
        }
        a.potential_tokens = self.phis;
        if self.phis > 0 {
            a.mean_potential = (self.sum_phi / self.phis as f64) as f32;
            a.max_potential = self.max_phi;
        }
        a.void = a.void_score(w);
        a
    }
}

/// What the last step decided, kept until `accept` says which token the host emitted.
#[derive(Debug, Clone, Copy)]
struct Proposal {
    next: Dyn,
    /// The step's field, for the answer aggregates.
    field: StepField,
    /// The token the step selected (or forced) and its potential.
    chosen: Option<(u32, f32)>,
    /// `Logits` mode: the largest kept candidates and their potentials.
    top: [(u32, f32); TOP],
    top_n: usize,
}

/// A rewind the last step advised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Advice {
    /// The position where the copy began, and its first token.
    began: u32,
    token: u32,
}

/// The state of one live sequence.
#[derive(Debug, Clone)]
pub struct SeqState {
    pub(crate) id: u64,
    seed: u64,
    pub(crate) now: Dyn,
    proposal: Option<Proposal>,
    pub(crate) loops: LoopDetector,
    pub(crate) trend: Trend,
    pub(crate) answer: Answer,
    /// Snapshots for `rollback` (empty unless `escape.rollback` > 0).
    pub(crate) rewind: Rewind,
    /// The rewind the last step advised (cleared by the next step and by a rewind).
    pub(crate) advice: Option<Advice>,
    pub(crate) mass: QueryMass,
    pub(crate) anchors: Vec<u32>,
    /// This sequence's own concept (else the processor's).
    pub(crate) concept: Option<Concept>,
    /// The null-query row of the step at this position (`GravityProcessor::set_contrast`).
    pub(crate) contrast: NullRow,
    pub(crate) batch_epoch: u64,
    /// The query's tokens: those given at `begin` and those accepted before the first step
    /// (a host priming its sampler with the prompt), at most `limits.max_query_tokens`.
    pub(crate) query: Vec<u32>,
    /// Tokens joined the query after `begin`: N(Q) and M(Q) are recomputed before the step.
    pub(crate) query_pending: bool,
    /// This query is in the processor's running M(Q) statistics.
    pub(crate) mass_counted: bool,
    /// The mass and query length as `begin` left them (what `reset` returns to).
    begun: (QueryMass, usize),
    /// The handle's step clock when this sequence was last begun, stepped or accepted.
    pub(crate) touched: u64,
}

impl SeqState {
    pub(crate) fn new(
        id: u64,
        seed: u64,
        anchors: Vec<u32>,
        mass: QueryMass,
        query: Vec<u32>,
        cfg: &Config,
    ) -> Self {
        let b = &cfg.black_hole;
        let longest = b.attractors.iter().map(Vec::len).max().unwrap_or(0);
        let history = longest
            .max(b.max_period as usize)
            .max(cfg.escape.repeat_window as usize)
            + cfg.escape.rollback as usize;
        SeqState {
            id,
            seed,
            now: Dyn {
                step: 0,
                rng: Rng::new(seed),
                tracks: Tracks::default(),
                abstain: AbstainState::Undecided,
            },
            proposal: None,
            loops: LoopDetector::new(b.max_period as usize, history),
            trend: Trend::default(),
            answer: Answer::default(),
            rewind: Rewind::new(cfg.escape.rollback as usize, b.max_period as usize),
            advice: None,
            mass,
            anchors,
            concept: None,
            contrast: NullRow::default(),
            batch_epoch: 0,
            begun: (mass, query.len()),
            query,
            query_pending: false,
            mass_counted: false,
            touched: 0,
        }
    }

    /// Back to the state right after `begin` (same seed, anchors, query and mass: tokens
    /// accepted into the query since are dropped, so a host may prime the sequence again).
    pub(crate) fn reset(&mut self, cfg: &Config) {
        let anchors = std::mem::take(&mut self.anchors);
        let mut query = std::mem::take(&mut self.query);
        let (mass, len) = self.begun;
        query.truncate(len);
        let (epoch, touched) = (self.batch_epoch, self.touched);
        let concept = self.concept.take();
        let counted = self.mass_counted;
        *self = SeqState::new(self.id, self.seed, anchors, mass, query, cfg);
        self.concept = concept;
        self.mass_counted = counted;
        self.batch_epoch = epoch;
        self.touched = touched;
    }

    /// No step has been taken since `begin` (or `reset`): an accepted token is part of the
    /// query, not of the output.
    pub(crate) fn before_first_step(&self) -> bool {
        self.now.step == 0 && self.proposal.is_none()
    }

    /// Record a step's decision: `next` is the state `accept` will commit; `chosen` the token
    /// the step selected or forced (with its potential).
    pub(crate) fn propose(&mut self, next: Dyn, field: StepField, chosen: Option<(u32, f32)>) {
        self.proposal = Some(Proposal {
            next,
            field,
            chosen,
            top: [(0, f32::NAN); TOP],
            top_n: 0,
        });
    }

    /// As [`propose`](Self::propose) for `Logits` mode: the host selects, so remember the
    /// `TOP` largest of `list` with their potentials for `accept` to find the host's choice.
    pub(crate) fn propose_top(
        &mut self,
        next: Dyn,
        field: StepField,
        list: &[Cand],
        phi: impl Fn(&Cand) -> f32,
    ) {
        let mut best: [Option<Cand>; TOP] = [None; TOP];
        for c in list {
            let mut cur = *c;
            for slot in best.iter_mut() {
                match slot {
                    None => {
                        *slot = Some(cur);
                        break;
                    }
                    Some(s) if cur.logit > s.logit => std::mem::swap(s, &mut cur),
                    _ => {}
                }
            }
        }
        let mut p = Proposal {
            next,
            field,
            chosen: None,
            top: [(0, f32::NAN); TOP],
            top_n: 0,
        };
        for c in best.iter().flatten() {
            p.top[p.top_n] = (c.id, phi(c));
            p.top_n += 1;
        }
        self.proposal = Some(p);
    }

    /// The host emitted `token`. Before the first step it is a query token (a host priming its
    /// sampler with the prompt: llama-server does): it joins the query, up to
    /// `limits.max_query_tokens`. Afterwards it commits the last step's proposal (or, with no
    /// step since the last accept, just advances the position) and feeds the loop detector and
    /// the surprisal trend and, with its step's field, the answer aggregates (`content`: whether
    /// `token` is a content token).
    pub(crate) fn accept(&mut self, token: u32, content: bool, cfg: &Config) {
        self.contrast.clear();
        if self.before_first_step() {
            if self.query.len() < cfg.limits.max_query_tokens as usize {
                self.query.push(token);
                self.query_pending = true;
            }
            return;
        }
        self.rewind
            .save(&self.now, &self.answer, &self.trend, &self.loops);
        let phi = match self.proposal.take() {
            Some(p) => {
                let step = self.now.step;
                self.now = p.next;
                let phi = match p.chosen {
                    Some((t, phi)) if t == token => phi,
                    _ => p.top[..p.top_n]
                        .iter()
                        .find(|(t, _)| *t == token)
                        .map_or(f32::NAN, |&(_, phi)| phi),
                };
                self.answer.push(&p.field, phi, content, step);
                phi
            }
            None => {
                self.now.step = self.now.step.saturating_add(1);
                f32::NAN
            }
        };
        self.answer.saw_content |= content;
        self.trend.push(phi, &cfg.void);
        if cfg.black_hole.enabled || cfg.escape.enabled {
            self.loops.push(token, cfg.escape.breakers.contains(&token));
        }
    }

    /// The step being decided advises rewinding the `n` tokens of the copy so far (0: none):
    /// remember where the copy began and its first token.
    pub(crate) fn advise(&mut self, n: u32) {
        self.advice = (n > 0).then(|| Advice {
            began: self.now.step - n,
            token: self.loops.back(n as usize),
        });
    }

    /// Tokens to drop now to return to where the advised copy began (0: no advice): the
    /// advised count before the step's token is accepted, one more after.
    pub(crate) fn advice(&self) -> u32 {
        self.advice
            .map_or(0, |a| self.now.step.saturating_sub(a.began))
    }

    /// Drop the last `n` accepted tokens: back to the state before them (the pending step
    /// is discarded). When the rewind lands where the last step's advised copy began (n tokens
    /// before the step's token is accepted, n + 1 after), the token that began the copy is
    /// masked at that position, and n is charged to the budget.
    pub(crate) fn rollback(&mut self, n: u32, cfg: &Config) -> crate::error::Result<()> {
        if n as usize > self.rewind.held() {
            return Err(crate::error::Error::InvalidArgument(format!(
                "sequence {}: cannot rewind {n} tokens, {} can be (escape.rollback = {}; tokens \
                 accepted before the first step or before a reset cannot be)",
                self.id,
                self.rewind.held(),
                cfg.escape.rollback
            )));
        }
        if n == 0 {
            return Ok(());
        }
        self.proposal = None;
        self.contrast.clear();
        let advice = self.advice.take();
        self.rewind.restore(
            n as usize,
            &mut self.now,
            &mut self.answer,
            &mut self.trend,
            &mut self.loops,
        );
        if let Some(a) = advice.filter(|a| a.began == self.now.step) {
            self.rewind.spent = self.rewind.spent.saturating_add(n);
            self.rewind.ban(a.began, a.token);
        }
        Ok(())
    }
}
