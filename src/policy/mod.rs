//! The gravity policy: adaptive temperature and the regime scores with hysteresis, pipeline
//! stages 3 and 5 (docs/DESIGN.md §1 "Adaptive temperature", "Regimes"). Pure functions of the
//! measured field, the sequence's running quantities and the configuration: nothing here reads
//! or writes logits. What the processor does about a regime is in `interventions`.

pub mod loops;

use crate::config::{
    BlackHoleConfig, Config, Response, TemperatureConfig, VoidConfig, VoidWeights,
};
use crate::field::Field;
use crate::report::Regime;

pub use loops::{Cycle, LoopDetector};

/// Temperatures below this are greedy: z/T would exceed any logit scale a model produces
/// (1000 × the logit), and 1/T must stay finite. Only a configuration with `temperature.min = 0`
/// can reach it (validation keeps every non-zero `base` and `min` at or above it).
pub const MIN_SAMPLING_T: f32 = 1e-3;

/// T_t = clamp(T_min, T_max, T_base(M) · g(h_t) · kick_t) (docs/DESIGN.md §1 "Adaptive
/// temperature"), evaluated in log space so no product of extremes can overflow: ln T =
/// ln base + mass_gain·(M − mass_ref) + ln g + ln kick, clamped, then exponentiated.
///
/// T_base(M) = base · exp(mass_gain · (M − mass_ref)) (base alone when M is absent); g is the
/// entropy response; `kick` > 1 only while escaping a black hole. A base of 0 means greedy and
/// returns 0; so does a clamped result below [`MIN_SAMPLING_T`]. Otherwise the result is finite
/// and within [min, max] for every valid configuration and any M.
pub fn temperature(cfg: &TemperatureConfig, mass: Option<f32>, field: &Field, kick: f32) -> f32 {
    if cfg.base == 0.0 {
        return 0.0;
    }
    let mut ln_t = (cfg.base as f64).ln() + (kick as f64).ln();
    if let (Some(m), true) = (mass, cfg.mass_gain != 0.0) {
        // M is finite (mass::combine bounds it); a non-finite one adds nothing.
        let x = cfg.mass_gain as f64 * (m as f64 - cfg.mass_ref as f64);
        if x.is_finite() {
            ln_t += x;
        }
    }
    ln_t += match cfg.response {
        Response::None => 0.0,
        // EDT: g = n^{θ/H}; ln g = (θ/H)·ln n → −inf as H → 0 (then the lower clamp).
        Response::Edt => {
            if field.entropy > 0.0 {
                (cfg.edt_theta as f64 / field.entropy) * (cfg.edt_n as f64).ln()
            } else if cfg.edt_theta > 0.0 {
                f64::NEG_INFINITY
            } else {
                0.0
            }
        }
        // llama.cpp dynatemp around T0: from T0(1 − r) at h = 0 to T0(1 + r) at h = 1; g > 0.
        Response::Dynatemp => {
            let h = field.entropy_norm();
            let g = (1.0 - cfg.dyn_range as f64)
                + 2.0 * cfg.dyn_range as f64 * h.powf(cfg.dyn_exponent as f64);
            g.ln()
        }
    };
    // Every term is finite or −inf (EDT at H → 0), so ln_t is never NaN; be total anyway.
    let t = if ln_t.is_nan() {
        cfg.min
    } else if ln_t == 0.0 {
        // Bit-exact 1 before clamping, so `neutral` keeps T = 1 exactly.
        1.0f32.clamp(cfg.min, cfg.max)
    } else {
        let lo = (cfg.min as f64).ln(); // −inf when min = 0
        let hi = (cfg.max as f64).ln();
        (ln_t.clamp(lo, hi).exp() as f32).clamp(cfg.min, cfg.max)
    };
    if t < MIN_SAMPLING_T { 0.0 } else { t }
}

/// Enter/leave thresholds of one regime's hysteresis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Enter after `enter_after` consecutive steps with score ≥ `enter`.
    pub enter: f32,
    /// Leave after `exit_after` consecutive steps with score < `exit`.
    pub exit: f32,
    pub enter_after: u32,
    pub exit_after: u32,
}

impl VoidConfig {
    /// The void regime's hysteresis thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            enter: self.enter,
            exit: self.exit,
            enter_after: self.enter_after,
            exit_after: self.exit_after,
        }
    }
}

impl BlackHoleConfig {
    /// The black-hole regime's hysteresis thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            enter: self.enter,
            exit: self.exit,
            enter_after: self.enter_after,
            exit_after: self.exit_after,
        }
    }
}

/// The running regime state of a sequence: the two hysteresis trackers and the low-entropy
/// streak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracks {
    pub void: Hysteresis,
    pub black_hole: Hysteresis,
    pub low_streak: u32,
}

/// Stage 3's result for one step: the scores and the tracks after them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regimes {
    /// Void score v ∈ [0, 1].
    pub void_score: f32,
    /// Black-hole score b ∈ [0, 1].
    pub black_hole_score: f32,
    /// The repetition cycle seen in the accepted tokens.
    pub cycle: Cycle,
    /// The tracks after this step.
    pub tracks: Tracks,
}

impl Regimes {
    /// In the black-hole regime after this step.
    pub fn in_black_hole(&self) -> bool {
        self.tracks.black_hole.active
    }
    /// The regime after this step (a black hole wins over a void).
    pub fn regime(&self) -> Regime {
        if self.tracks.black_hole.active {
            Regime::BlackHole
        } else if self.tracks.void.active {
            Regime::Void
        } else {
            Regime::Orbit
        }
    }
}

/// What stage 3 reads of a sequence besides the field.
#[derive(Debug, Clone, Copy)]
pub struct Running<'a> {
    /// The tracks before this step.
    pub tracks: Tracks,
    /// Surprisal trend of the accepted tokens (EMA fast − slow), nats.
    pub trend: f32,
    /// M(Q).
    pub mass: Option<f32>,
    /// Task-space probability mass under the field.
    pub task_mass: Option<f32>,
    /// The accepted tokens.
    pub loops: &'a LoopDetector,
}

/// Score the step and update the tracks (stage 3).
pub fn classify(cfg: &Config, weights: &VoidWeights, field: &Field, run: Running<'_>) -> Regimes {
    let mut tracks = run.tracks;
    let void_score = if cfg.void.enabled {
        VoidFeatures::new(field, run.trend, run.task_mass, run.mass).score(weights)
    } else {
        0.0
    };
    tracks.void.update(void_score, &cfg.void.thresholds());
    let bc = &cfg.black_hole;
    let (black_hole_score, cycle) = if bc.enabled {
        tracks.low_streak = if field.entropy_norm() < bc.low_entropy as f64 {
            tracks.low_streak.saturating_add(1)
        } else {
            0
        };
        let cycle = run.loops.cycle(bc.repeats);
        let attractor = bc.attractors.iter().any(|p| run.loops.ends_with(p));
        (
            black_hole_score(bc, &cycle, tracks.low_streak, attractor),
            cycle,
        )
    } else {
        (0.0, Cycle::NONE)
    };
    tracks.black_hole.update(black_hole_score, &bc.thresholds());
    Regimes {
        void_score,
        black_hole_score,
        cycle,
        tracks,
    }
}

/// The void-score features of one step (each bounded; see [`VoidConfig`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VoidFeatures {
    pub entropy: f32,
    pub energy: f32,
    pub one_minus_pmax: f32,
    pub varentropy: f32,
    pub trend: f32,
    pub task: f32,
    pub mass: f32,
}

impl VoidFeatures {
    /// Features from the field and the sequence's running quantities.
    pub fn new(field: &Field, trend: f32, task_mass: Option<f32>, mass: Option<f32>) -> Self {
        let log_v = (field.vocab.max(2) as f64).ln();
        VoidFeatures {
            entropy: field.entropy_norm() as f32,
            energy: (-field.log_z) as f32,
            one_minus_pmax: (1.0 - field.p_max()) as f32,
            varentropy: (field.varentropy.max(0.0).sqrt() / log_v) as f32,
            trend: (trend as f64 / log_v) as f32,
            task: task_mass.map_or(0.0, |m| 1.0 - m),
            mass: mass.unwrap_or(0.0),
        }
    }

    /// v = σ(bias + Σ w_k f_k) in [0, 1].
    pub fn score(&self, w: &VoidWeights) -> f32 {
        let s = w.bias
            + w.entropy * self.entropy
            + w.energy * self.energy
            + w.one_minus_pmax * self.one_minus_pmax
            + w.varentropy * self.varentropy
            + w.trend * self.trend
            + w.task * self.task
            + w.mass * self.mass;
        if s.is_nan() {
            return 0.0;
        }
        1.0 / (1.0 + (-s).exp())
    }
}

/// Enter after `enter_after` consecutive steps with score ≥ `enter`; leave after `exit_after`
/// consecutive steps with score < `exit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hysteresis {
    pub active: bool,
    count: u32,
}

impl Hysteresis {
    /// Feed one score; returns whether the regime is active after it.
    pub fn update(&mut self, score: f32, th: &Thresholds) -> bool {
        let pushing = if self.active {
            score < th.exit
        } else {
            score >= th.enter
        };
        if pushing {
            self.count += 1;
            let need = if self.active {
                th.exit_after
            } else {
                th.enter_after
            };
            if self.count >= need {
                self.active = !self.active;
                self.count = 0;
            }
        } else {
            self.count = 0;
        }
        self.active
    }
}

/// Black-hole score b ∈ [0, 1] from the cycle strength, the low-entropy streak and an attractor
/// match (see [`BlackHoleConfig`]).
pub fn black_hole_score(
    cfg: &BlackHoleConfig,
    cycle: &Cycle,
    low_streak: u32,
    attractor: bool,
) -> f32 {
    if attractor {
        return 1.0;
    }
    let e = (low_streak as f32 / cfg.low_entropy_steps as f32).min(1.0);
    (cfg.w_cycle * cycle.strength + cfg.w_low * e).clamp(0.0, 1.0)
}

/// Surprisal EMAs for the void trend feature.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Trend {
    fast: f32,
    slow: f32,
    seen: bool,
}

impl Trend {
    /// Feed the surprisal of an accepted token.
    pub fn push(&mut self, s: f32, cfg: &VoidConfig) {
        if !s.is_finite() {
            return;
        }
        if !self.seen {
            *self = Trend {
                fast: s,
                slow: s,
                seen: true,
            };
        } else {
            self.fast += cfg.trend_fast * (s - self.fast);
            self.slow += cfg.trend_slow * (s - self.slow);
        }
    }
    /// EMA(fast) − EMA(slow): positive when the output is getting more surprising.
    pub fn value(&self) -> f32 {
        self.fast - self.slow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::field::measure;

    #[test]
    fn hysteresis_table() {
        // (score, expected active) with enter 0.6 after 2, exit 0.4 after 2.
        let table = [
            (0.7, false),
            (0.5, false), // streak broken
            (0.7, false),
            (0.7, true), // two in a row: enter
            (0.5, true), // between thresholds: stays
            (0.3, true),
            (0.5, true), // exit streak broken
            (0.3, true),
            (0.3, false), // two in a row: leave
        ];
        let mut h = Hysteresis::default();
        let th = Thresholds {
            enter: 0.6,
            exit: 0.4,
            enter_after: 2,
            exit_after: 2,
        };
        for (i, (s, want)) in table.into_iter().enumerate() {
            assert_eq!(h.update(s, &th), want, "step {i}");
        }
    }

    #[test]
    fn temperature_responses() {
        let mut t = Config::preset("neutral").unwrap().temperature;
        let flat = measure(&[0.0f32; 100]).unwrap();
        let peaked = measure(&[20.0f32, 0.0, 0.0, 0.0]).unwrap();
        assert_eq!(temperature(&t, Some(0.9), &flat, 1.0), 1.0);
        t.response = Response::Dynatemp;
        t.dyn_range = 0.5;
        assert!((temperature(&t, None, &flat, 1.0) - 1.5).abs() < 1e-5);
        assert!(temperature(&t, None, &peaked, 1.0) < 0.51);
        t.response = Response::Edt;
        assert!(temperature(&t, None, &peaked, 1.0) == t.min);
        t.response = Response::None;
        t.mass_gain = 1.0;
        assert!(temperature(&t, Some(1.0), &flat, 1.0) > 1.6);
        t.mass_gain = -1.0;
        assert!(temperature(&t, Some(1.0), &flat, 1.0) < 0.61);
        assert_eq!(temperature(&t, Some(1.0), &flat, 100.0), t.max);
        t.base = 0.0;
        assert_eq!(temperature(&t, None, &flat, 1.0), 0.0);
        // The clamps hold even for T = 1.
        t.base = 1.0;
        t.mass_gain = 0.0;
        t.min = 1.5;
        t.max = 2.0;
        assert_eq!(temperature(&t, None, &flat, 1.0), 1.5);
    }

    #[test]
    fn void_score_orders_fields() {
        let w = Config::default().void.weights;
        let flat = measure(&[0.0f32; 1000]).unwrap();
        let mut row = vec![0.0f32; 1000];
        row[3] = 15.0;
        let peaked = measure(&row).unwrap();
        let vf = VoidFeatures::new(&flat, 0.0, None, None).score(&w);
        let vp = VoidFeatures::new(&peaked, 0.0, None, None).score(&w);
        assert!(vf > 0.8 && vp < 0.1, "{vf} {vp}");
    }
}
