//! Per-sequence state: bounded (history ring, anchors) and reset-able.

use crate::config::Config;
use crate::field::Cand;
use crate::mass::QueryMass;
use crate::policy::{Hysteresis, LoopDetector, Trend};
use crate::sampler::Rng;

/// How many of the last step's top tokens are remembered for `accept` in `Logits` mode.
const TOP: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abstain {
    Undecided,
    Answering,
    /// Abstaining; the index of the next abstention token to force.
    Abstaining(usize),
}

/// The state of one live sequence.
#[derive(Debug, Clone)]
pub struct SeqState {
    pub(crate) id: u64,
    pub(crate) step: u32,
    seed: u64,
    pub(crate) rng: Rng,
    pub(crate) loops: LoopDetector,
    pub(crate) void_h: Hysteresis,
    pub(crate) bh_h: Hysteresis,
    pub(crate) trend: Trend,
    pub(crate) low_streak: u32,
    pub(crate) mass: QueryMass,
    pub(crate) anchors: Vec<u32>,
    pub(crate) batch_epoch: u64,
    pub(crate) last_log_z: f64,
    /// The token this step selected and its potential.
    pub(crate) pending: Option<(u32, f32)>,
    top: [(u32, f32); TOP],
    top_n: usize,
    abstain: Abstain,
}

impl SeqState {
    pub(crate) fn new(
        id: u64,
        seed: u64,
        anchors: Vec<u32>,
        mass: QueryMass,
        cfg: &Config,
    ) -> Self {
        let b = &cfg.black_hole;
        let longest = b.attractors.iter().map(Vec::len).max().unwrap_or(0);
        SeqState {
            id,
            step: 0,
            seed,
            rng: Rng::new(seed),
            loops: LoopDetector::new(b.max_period as usize, longest.max(b.max_period as usize)),
            void_h: Hysteresis::default(),
            bh_h: Hysteresis::default(),
            trend: Trend::default(),
            low_streak: 0,
            mass,
            anchors,
            batch_epoch: 0,
            last_log_z: f64::NAN,
            pending: None,
            top: [(0, f32::NAN); TOP],
            top_n: 0,
            abstain: Abstain::Undecided,
        }
    }

    pub(crate) fn reset(&mut self, cfg: &Config) {
        let anchors = std::mem::take(&mut self.anchors);
        let epoch = self.batch_epoch;
        *self = SeqState::new(self.id, self.seed, anchors, self.mass, cfg);
        self.batch_epoch = epoch;
    }

    /// Abstention decision: None = answer normally; Some(Some(t)) = force t; Some(None) = stop.
    pub(crate) fn abstain_step(&mut self, void_score: f32, cfg: &Config) -> Option<Option<u32>> {
        let a = &cfg.abstain;
        if self.abstain == Abstain::Undecided {
            self.abstain = if a.enabled && 1.0 - void_score < a.target {
                Abstain::Abstaining(0)
            } else {
                Abstain::Answering
            };
        }
        match self.abstain {
            Abstain::Abstaining(i) => {
                self.abstain = Abstain::Abstaining(i + 1);
                Some(a.tokens.get(i).copied())
            }
            _ => None,
        }
    }

    /// Keep the TOP largest of `list` with their potentials.
    pub(crate) fn remember_top(&mut self, list: &[Cand], phi: impl Fn(&Cand) -> f32) {
        self.top_n = 0;
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
        for c in best.iter().flatten() {
            self.top[self.top_n] = (c.id, phi(c));
            self.top_n += 1;
        }
    }

    /// The host emitted `token`.
    pub(crate) fn accept(&mut self, token: u32, cfg: &Config) {
        let phi = match self.pending.take() {
            Some((t, p)) if t == token => p,
            _ => self.top[..self.top_n]
                .iter()
                .find(|(t, _)| *t == token)
                .map_or(f32::NAN, |&(_, p)| p),
        };
        self.top_n = 0;
        self.trend.push(phi, &cfg.void);
        if cfg.black_hole.enabled {
            self.loops.push(token);
        }
    }
}
