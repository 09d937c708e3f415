//! The gravity policy: adaptive temperature, regime scores with hysteresis, and the decisions
//! behind the interventions (DESIGN.md §1 "Adaptive temperature", "Regimes", "Interventions").
//! Pure functions of the measured field, the sequence state and the configuration: nothing here
//! touches logits.

pub mod loops;

use crate::config::{BlackHoleConfig, Response, TemperatureConfig, VoidConfig, VoidWeights};
use crate::field::Field;

pub use loops::{Cycle, LoopDetector};

/// T_t = clamp(T_min, T_max, T_base(M) · g(h_t) · kick_t) (DESIGN.md §1, seed eq. 13).
///
/// T_base(M) = base · exp(mass_gain · (M − mass_ref)) (base alone when M is absent);
/// g is the entropy response; `kick` > 1 only while escaping a black hole.
/// A base of 0 means greedy and returns 0 (no clamping).
pub fn temperature(cfg: &TemperatureConfig, mass: Option<f32>, field: &Field, kick: f32) -> f32 {
    if cfg.base == 0.0 {
        return 0.0;
    }
    let t_base = match mass {
        Some(m) if cfg.mass_gain != 0.0 => cfg.base * (cfg.mass_gain * (m - cfg.mass_ref)).exp(),
        _ => cfg.base,
    };
    let g = match cfg.response {
        Response::None => 1.0,
        // EDT: T = T0 · n^{θ/H}; H = 0 gives 0 (then the lower clamp).
        Response::Edt => {
            let h = field.entropy as f32;
            if h <= 0.0 {
                0.0
            } else {
                cfg.edt_n.powf(cfg.edt_theta / h)
            }
        }
        // llama.cpp dynatemp around T0: from T0(1 − r) at h = 0 to T0(1 + r) at h = 1.
        Response::Dynatemp => {
            let h = field.entropy_norm() as f32;
            (1.0 - cfg.dyn_range) + 2.0 * cfg.dyn_range * h.powf(cfg.dyn_exponent)
        }
    };
    // Clamping leaves an in-range value bit-exact, so `neutral` keeps T = 1 exactly.
    (t_base * g * kick).clamp(cfg.min, cfg.max)
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
    pub fn update(
        &mut self,
        score: f32,
        enter: f32,
        exit: f32,
        enter_after: u32,
        exit_after: u32,
    ) -> bool {
        let pushing = if self.active {
            score < exit
        } else {
            score >= enter
        };
        if pushing {
            self.count += 1;
            let need = if self.active { exit_after } else { enter_after };
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
        for (i, (s, want)) in table.into_iter().enumerate() {
            assert_eq!(h.update(s, 0.6, 0.4, 2, 2), want, "step {i}");
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
