//! Configuration: every knob of the processor, its default, unit, disabling value and cost.
//!
//! A configuration is JSON. It may name a preset (`"preset": "balanced"`, the default) and
//! override any key of it; unknown keys are errors that name the full key path, and every value
//! is range-checked in [`Config::validate`]. Presets:
//!
//! | preset | what it is |
//! |---|---|
//! | `neutral` | exact pass-through: temperature 1, no interventions, no truncation. Diagnostics are still computed. |
//! | `balanced` | mild gravity temperature, dynatemp-style entropy response, anchoring and loop escape on, min-p 0.05. |
//! | `factual` | colder, stronger anchoring, min-p 0.1. |
//! | `creative` | warmer, wider entropy response, light anchoring, min-p 0.02. |
//!
//! "Cost" below is per step per row, on top of the one measurement pass every step makes.
//! O(1) means a few arithmetic operations.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::policy::MIN_SAMPLING_T;

/// Top-level configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Adaptive temperature (DESIGN.md §1 "Adaptive temperature").
    pub temperature: TemperatureConfig,
    /// Query information mass M(Q) (DESIGN.md §1).
    pub mass: MassConfig,
    /// Void (hallucination-risk) score and its hysteresis.
    pub void: VoidConfig,
    /// Black-hole (loop / attractor) score and its hysteresis.
    pub black_hole: BlackHoleConfig,
    /// Anchor-token bias scaled by the void score.
    pub anchor: AnchorConfig,
    /// Loop escape: temperature kick and cycle penalty while in a black hole.
    pub escape: EscapeConfig,
    /// Abstention at the start of an answer.
    pub abstain: AbstainConfig,
    /// Task space (seed 001): label tokens whose mass is reported.
    pub task_space: TaskSpaceConfig,
    /// Truncation and selection.
    pub sampler: SamplerConfig,
    /// Memory bounds.
    pub limits: LimitsConfig,
}

/// Per-step entropy response g(h) of the temperature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// g = 1.
    None,
    /// EDT (Zhang et al. 2024): g = n^{θ/H}, H in nats.
    Edt,
    /// llama.cpp dynatemp: g = (1 − r) + 2r·h^κ, h = H / log V.
    Dynatemp,
}

/// T_t = clamp(min, max, base · exp(mass_gain · (M − mass_ref)) · g(h_t) · kick_t).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureConfig {
    /// T0, the base temperature. Default (balanced) 0.8; neutral 1.0. Unit: temperature.
    /// 0 = greedy; otherwise in [0.001, 100]. Cost: O(1).
    pub base: f32,
    /// Lower clamp. Default 0.05. Unit: temperature. 0 or [0.001, 100]; with 0, a computed
    /// temperature below 0.001 selects greedily. Off: 0.
    pub min: f32,
    /// Upper clamp. Default 2.0. Unit: temperature, in [0.001, 100] and ≥ `min`.
    pub max: f32,
    /// Signed gain of T_base on M(Q): positive makes heavy queries hotter (the seed's reading,
    /// "escape gravity traps"), negative colder (the "deeper well" reading). Default +0.25.
    /// Unit: log-temperature per unit of M. Off: 0. Cost: O(1) (M is computed once at begin).
    pub mass_gain: f32,
    /// M at which T_base = base. Default 0.5. Unit: M (min-max scale [0, 1]).
    pub mass_ref: f32,
    /// Entropy response g. Default `dynatemp`. Off: `none`. Cost: O(1).
    pub response: Response,
    /// EDT θ. Default 1.0. Unit: nats.
    pub edt_theta: f32,
    /// EDT base n in (0, 1). Default 0.8.
    pub edt_n: f32,
    /// Dynatemp relative range r in [0, 1). Default 0.3.
    pub dyn_range: f32,
    /// Dynatemp exponent κ > 0. Default 1.0.
    pub dyn_exponent: f32,
}

/// M(Q) = α·ẑ(H) + β·ẑ(D) + γ·ẑ(N) over the components present (weights renormalised over
/// them); ẑ is the z-score under a loaded calibration, else min-max to [0, 1] with the ranges
/// here. Computed once per sequence at `begin`; never on the per-token path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MassConfig {
    /// α, weight of H(Q). Default 1/3. Off: 0.
    pub alpha: f32,
    /// β, weight of D(Q). Default 1/3. Off: 0.
    pub beta: f32,
    /// γ, weight of N(Q). Default 1/3. Off: 0.
    pub gamma: f32,
    /// D(Q) that maps to 1 in min-max scaling. Default 4.0. Unit: nats.
    pub d_max: f32,
    /// N(Q) that maps to 1 in min-max scaling. Default 8.0. Unit: nats.
    pub n_max: f32,
    /// Additive smoothing of the Prior's counts (pseudo-count per token). Default 0.5.
    pub prior_smoothing: f32,
}

/// Void score v = σ(bias + Σ w_k f_k) (DESIGN.md §1 "Regimes"); features, each in a bounded range:
/// h = H/log V; energy = −log Z (nats; model-scale dependent, so 0 weight by default);
/// 1 − p_max; std = √varentropy / log V; trend = surprisal EMA(fast) − EMA(slow), / log V;
/// task = 1 − task-space mass (0 without a task space); mass = M(Q) (0 when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidConfig {
    /// Compute the score. Default true. Off: false (score reported as 0). Cost: O(1).
    pub enabled: bool,
    /// Hand-set default weights, documented rather than fitted; a calibration file replaces them.
    pub weights: VoidWeights,
    /// Enter the void regime after `enter_after` consecutive steps with v ≥ `enter`. Default 0.65.
    pub enter: f32,
    /// Leave after `exit_after` consecutive steps with v < `exit`. Default 0.45. Must be ≤ enter.
    pub exit: f32,
    /// Default 2 steps. Unit: steps (≥ 1).
    pub enter_after: u32,
    /// Default 3 steps. Unit: steps (≥ 1).
    pub exit_after: u32,
    /// Fast / slow EMA rates of the surprisal trend. Default 0.5 / 0.05. Unit: per step, (0, 1].
    pub trend_fast: f32,
    /// See `trend_fast`.
    pub trend_slow: f32,
}

/// Logistic weights of the void score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidWeights {
    pub bias: f32,
    pub entropy: f32,
    pub energy: f32,
    pub one_minus_pmax: f32,
    pub varentropy: f32,
    pub trend: f32,
    pub task: f32,
    pub mass: f32,
}

/// Black-hole score b = clamp(w_cycle·c + w_low·e, 0, 1), or 1 on an attractor-phrase match;
/// c = max over periods p ≤ `max_period` of min(1, run_p / ((repeats − 1)·p)) where run_p is
/// the number of consecutive tokens equal to the token p positions earlier; e = min(1,
/// low-entropy streak / `low_entropy_steps`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackHoleConfig {
    /// Default true. Off: false. Cost: O(max_period + Σ phrase lengths) integer compares per
    /// accepted token.
    pub enabled: bool,
    /// Longest cycle period detected. Default 16 tokens; 1..=256. Memory: 4 bytes per token of
    /// history per sequence.
    pub max_period: u32,
    /// Repetitions that make a cycle. Default 3; ≥ 2.
    pub repeats: u32,
    /// h below which a step counts toward the low-entropy streak. Default 0.15 (normalised).
    pub low_entropy: f32,
    /// Streak length giving e = 1. Default 8 steps.
    pub low_entropy_steps: u32,
    /// Weight of the cycle term. Default 0.75.
    pub w_cycle: f32,
    /// Weight of the low-entropy term. Default 0.25.
    pub w_low: f32,
    /// Enter threshold. Default 0.7.
    pub enter: f32,
    /// Exit threshold (≤ enter). Default 0.3.
    pub exit: f32,
    /// Default 1 step.
    pub enter_after: u32,
    /// Default 4 steps.
    pub exit_after: u32,
    /// Attractor phrases (token-id sequences, host-tokenised) that score b = 1 when the output
    /// ends with one. Default none. Bounded by `limits.max_phrases` × `limits.max_phrase_len`.
    pub attractors: Vec<Vec<u32>>,
}

/// Anchoring: add λ·v·w_a to each anchor token's logit (DESIGN.md §1 "Interventions").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorConfig {
    /// Default true (neutral: false). Cost: O(number of anchors).
    pub enabled: bool,
    /// λ: logit added at v = 1. Default 2.0. Unit: nats. Off: 0.
    pub lambda: f32,
    /// Only bias while v ≥ this (below it the field has support). Default 0.3.
    pub min_void: f32,
    /// Anchor tokens for every sequence (each sequence may add its own at `begin`).
    pub tokens: Vec<u32>,
    /// Also use the task-space tokens as anchors. Default false.
    pub use_task_space: bool,
}

/// Loop escape while the black-hole regime is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscapeConfig {
    /// Default true (neutral: false). Cost: O(1).
    pub enabled: bool,
    /// Temperature multiplier while escaping. Default 1.6. Off: 1.
    pub kick: f32,
    /// Subtracted from the logit of the token that would extend the detected cycle. Default 6.0.
    /// Unit: nats. Off: 0.
    pub cycle_penalty: f32,
}

/// Abstention (seed 002): at a sequence's first step, if confidence 1 − v < `target`, stop with
/// reason ABSTAIN (or force `tokens`, then stop). Under the Kalai score a wrong answer costs
/// t/(1 − t) and "I don't know" costs 0, so `target` is the break-even confidence t.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbstainConfig {
    /// Default false. Cost: O(1) once per sequence.
    pub enabled: bool,
    /// t in (0, 1). Default 0.5.
    pub target: f32,
    /// Abstention text as token ids, forced one per step before stopping. Default empty (stop at
    /// once).
    pub tokens: Vec<u32>,
}

/// Task space (seed 001).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskSpaceConfig {
    /// Label tokens whose probability mass is reported each step. Default none (mass reported
    /// as NaN). Cost: O(number of labels).
    pub tokens: Vec<u32>,
}

/// Truncation after temperature (vLLM's order), then seeded selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    /// Keep tokens with p ≥ min_p·p_max. Default 0.05 (neutral 0). Off: 0.
    pub min_p: f32,
    /// Keep the k most likely tokens. Default 0 = off.
    pub top_k: u32,
    /// Keep the smallest set with mass ≥ top_p. Default 1.0 = off.
    pub top_p: f32,
    /// Candidate window: tokens within this many nats of the maximum are gathered during the
    /// measurement pass so selection needs no second pass. 0 = automatic (from min-p and
    /// temperature.max: T_max·ln(1/min_p); 10 without min-p). Larger: more candidates to
    /// handle; smaller: more draws resolved by a pass over the row. Unit: nats, ≤ 64.
    pub window: f32,
    /// Candidate buffer size; past it selection falls back to an exact second pass.
    /// Default 4096. Memory: 8 bytes each, per worker thread.
    pub max_candidates: u32,
}

/// Memory bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Live sequences per processor. Default 4096. Memory per sequence: ~200 bytes plus
    /// 4 bytes per history token and anchor.
    pub max_sequences: u32,
    /// Anchors per sequence (config + begin). Default 4096.
    pub max_anchors: u32,
    /// Attractor phrases. Default 64.
    pub max_phrases: u32,
    /// Tokens per attractor phrase. Default 64.
    pub max_phrase_len: u32,
    /// Worker threads for batches (0 = one per core). Default 1.
    pub threads: u32,
}

/// The named presets.
pub const PRESETS: [&str; 4] = ["neutral", "balanced", "factual", "creative"];

impl Default for Config {
    fn default() -> Self {
        Config::preset("balanced").expect("balanced exists")
    }
}

impl Config {
    /// A preset by name (`neutral`, `balanced`, `factual`, `creative`).
    pub fn preset(name: &str) -> Result<Config> {
        let mut c = Config::balanced();
        match name {
            "balanced" => {}
            "neutral" => {
                let t = &mut c.temperature;
                t.base = 1.0;
                t.mass_gain = 0.0;
                t.response = Response::None;
                c.anchor.enabled = false;
                c.escape.enabled = false;
                c.abstain.enabled = false;
                c.sampler.min_p = 0.0;
            }
            "factual" => {
                c.temperature.base = 0.5;
                c.temperature.dyn_range = 0.2;
                c.anchor.lambda = 3.0;
                c.sampler.min_p = 0.1;
            }
            "creative" => {
                c.temperature.base = 1.1;
                c.temperature.dyn_range = 0.5;
                c.anchor.lambda = 0.75;
                c.sampler.min_p = 0.02;
            }
            other => {
                return Err(Error::ConfigOutOfRange {
                    key: "preset".into(),
                    msg: format!("`{other}` is not one of {PRESETS:?}"),
                });
            }
        }
        Ok(c)
    }

    fn balanced() -> Config {
        Config {
            temperature: TemperatureConfig {
                base: 0.8,
                min: 0.05,
                max: 2.0,
                mass_gain: 0.25,
                mass_ref: 0.5,
                response: Response::Dynatemp,
                edt_theta: 1.0,
                edt_n: 0.8,
                dyn_range: 0.3,
                dyn_exponent: 1.0,
            },
            mass: MassConfig {
                alpha: 1.0 / 3.0,
                beta: 1.0 / 3.0,
                gamma: 1.0 / 3.0,
                d_max: 4.0,
                n_max: 8.0,
                prior_smoothing: 0.5,
            },
            void: VoidConfig {
                enabled: true,
                weights: VoidWeights {
                    bias: -4.0,
                    entropy: 5.0,
                    energy: 0.0,
                    one_minus_pmax: 2.0,
                    varentropy: 1.0,
                    trend: 2.0,
                    task: 1.0,
                    mass: 1.0,
                },
                enter: 0.65,
                exit: 0.45,
                enter_after: 2,
                exit_after: 3,
                trend_fast: 0.5,
                trend_slow: 0.05,
            },
            black_hole: BlackHoleConfig {
                enabled: true,
                max_period: 16,
                repeats: 3,
                low_entropy: 0.15,
                low_entropy_steps: 8,
                w_cycle: 0.75,
                w_low: 0.25,
                enter: 0.7,
                exit: 0.3,
                enter_after: 1,
                exit_after: 4,
                attractors: vec![],
            },
            anchor: AnchorConfig {
                enabled: true,
                lambda: 2.0,
                min_void: 0.3,
                tokens: vec![],
                use_task_space: false,
            },
            escape: EscapeConfig {
                enabled: true,
                kick: 1.6,
                cycle_penalty: 6.0,
            },
            abstain: AbstainConfig {
                enabled: false,
                target: 0.5,
                tokens: vec![],
            },
            task_space: TaskSpaceConfig::default(),
            sampler: SamplerConfig {
                min_p: 0.05,
                top_k: 0,
                top_p: 1.0,
                window: 0.0,
                max_candidates: 4096,
            },
            limits: LimitsConfig {
                max_sequences: 4096,
                max_anchors: 4096,
                max_phrases: 64,
                max_phrase_len: 64,
                threads: 1,
            },
        }
    }

    /// Parse a JSON configuration: an optional `"preset"` (default `balanced`) and overrides of
    /// any of its keys. Unknown keys are [`Error::ConfigUnknownKey`] with the full path; the
    /// result is validated.
    pub fn from_json(text: &str) -> Result<Config> {
        let mut v: Value =
            serde_json::from_str(text).map_err(|e| Error::ConfigParse(e.to_string()))?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| Error::ConfigParse("the configuration must be a JSON object".into()))?;
        let preset = match obj.remove("preset") {
            None => "balanced".to_string(),
            Some(Value::String(s)) => s,
            Some(_) => return Err(Error::ConfigParse("`preset` must be a string".into())),
        };
        let base = Config::preset(&preset)?;
        let mut merged = serde_json::to_value(&base).expect("config serialises");
        merge(&mut merged, v, "")?;
        let c: Config =
            serde_json::from_value(merged).map_err(|e| Error::ConfigParse(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// This configuration as JSON (every key, explicit).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Range-check every knob.
    pub fn validate(&self) -> Result<()> {
        let t = &self.temperature;
        // Non-zero temperatures stay ≥ 1e-3 so that z/T and 1/T are finite (policy::MIN_SAMPLING_T).
        zero_or_range("temperature.base", t.base, MIN_SAMPLING_T, 100.0)?;
        zero_or_range("temperature.min", t.min, MIN_SAMPLING_T, 100.0)?;
        if t.max.is_finite() && t.max < t.min {
            return oor(
                "temperature.max",
                &format!("= {} is below temperature.min = {}", t.max, t.min),
            );
        }
        range("temperature.max", t.max, MIN_SAMPLING_T, 100.0)?;
        range("temperature.mass_gain", t.mass_gain, -10.0, 10.0)?;
        range("temperature.mass_ref", t.mass_ref, -10.0, 10.0)?;
        range("temperature.edt_theta", t.edt_theta, 0.0, 100.0)?;
        open01("temperature.edt_n", t.edt_n)?;
        range("temperature.dyn_range", t.dyn_range, 0.0, 0.999)?;
        range("temperature.dyn_exponent", t.dyn_exponent, 1e-3, 100.0)?;
        let m = &self.mass;
        range("mass.alpha", m.alpha, 0.0, 1e3)?;
        range("mass.beta", m.beta, 0.0, 1e3)?;
        range("mass.gamma", m.gamma, 0.0, 1e3)?;
        range("mass.d_max", m.d_max, 1e-6, 1e6)?;
        range("mass.n_max", m.n_max, 1e-6, 1e6)?;
        range("mass.prior_smoothing", m.prior_smoothing, 1e-9, 1e9)?;
        let v = &self.void;
        let w = &v.weights;
        for (k, x) in [
            ("void.weights.bias", w.bias),
            ("void.weights.entropy", w.entropy),
            ("void.weights.energy", w.energy),
            ("void.weights.one_minus_pmax", w.one_minus_pmax),
            ("void.weights.varentropy", w.varentropy),
            ("void.weights.trend", w.trend),
            ("void.weights.task", w.task),
            ("void.weights.mass", w.mass),
        ] {
            range(k, x, -1e3, 1e3)?;
        }
        range("void.enter", v.enter, 0.0, 1.0)?;
        range("void.exit", v.exit, 0.0, v.enter)?;
        steps("void.enter_after", v.enter_after)?;
        steps("void.exit_after", v.exit_after)?;
        range("void.trend_fast", v.trend_fast, 1e-6, 1.0)?;
        range("void.trend_slow", v.trend_slow, 1e-6, 1.0)?;
        let b = &self.black_hole;
        if !(1..=256).contains(&b.max_period) {
            return oor("black_hole.max_period", "must be in [1, 256]");
        }
        if !(2..=64).contains(&b.repeats) {
            return oor("black_hole.repeats", "must be in [2, 64]");
        }
        range("black_hole.low_entropy", b.low_entropy, 0.0, 1.0)?;
        steps("black_hole.low_entropy_steps", b.low_entropy_steps)?;
        range("black_hole.w_cycle", b.w_cycle, 0.0, 1.0)?;
        range("black_hole.w_low", b.w_low, 0.0, 1.0)?;
        range("black_hole.enter", b.enter, 0.0, 1.0)?;
        range("black_hole.exit", b.exit, 0.0, b.enter)?;
        steps("black_hole.enter_after", b.enter_after)?;
        steps("black_hole.exit_after", b.exit_after)?;
        let l = &self.limits;
        if b.attractors.len() > l.max_phrases as usize {
            return oor(
                "black_hole.attractors",
                "has more phrases than limits.max_phrases",
            );
        }
        if b.attractors
            .iter()
            .any(|p| p.is_empty() || p.len() > l.max_phrase_len as usize)
        {
            return oor(
                "black_hole.attractors",
                "phrases must hold 1..=limits.max_phrase_len tokens",
            );
        }
        range("anchor.lambda", self.anchor.lambda, -100.0, 100.0)?;
        range("anchor.min_void", self.anchor.min_void, 0.0, 1.0)?;
        if self.anchor.tokens.len() > l.max_anchors as usize {
            return oor("anchor.tokens", "has more tokens than limits.max_anchors");
        }
        range("escape.kick", self.escape.kick, 1.0, 100.0)?;
        range("escape.cycle_penalty", self.escape.cycle_penalty, 0.0, 1e4)?;
        open01("abstain.target", self.abstain.target)?;
        if self.abstain.tokens.len() > 1024 {
            return oor("abstain.tokens", "holds more than 1024 tokens");
        }
        if self.task_space.tokens.len() > l.max_anchors as usize {
            return oor(
                "task_space.tokens",
                "has more tokens than limits.max_anchors",
            );
        }
        let s = &self.sampler;
        range("sampler.min_p", s.min_p, 0.0, 1.0)?;
        range("sampler.top_p", s.top_p, 1e-6, 1.0)?;
        range("sampler.window", s.window, 0.0, 64.0)?;
        if !(1..=1 << 20).contains(&s.max_candidates) {
            return oor("sampler.max_candidates", "must be in [1, 1048576]");
        }
        if s.top_k > s.max_candidates {
            return oor("sampler.top_k", "must not exceed sampler.max_candidates");
        }
        if !(1..=1 << 20).contains(&l.max_sequences) {
            return oor("limits.max_sequences", "must be in [1, 1048576]");
        }
        if l.max_anchors > 1 << 20 || l.max_phrases > 4096 || l.max_phrase_len > 4096 {
            return oor(
                "limits",
                "max_anchors ≤ 2^20, max_phrases and max_phrase_len ≤ 4096",
            );
        }
        if l.threads > 1024 {
            return oor("limits.threads", "must be ≤ 1024");
        }
        Ok(())
    }

    /// Check every token id in the configuration against a vocabulary size.
    pub fn check_tokens(&self, vocab: usize) -> Result<()> {
        let lists: [(&'static str, &[u32]); 3] = [
            ("anchor.tokens", &self.anchor.tokens),
            ("task_space.tokens", &self.task_space.tokens),
            ("abstain.tokens", &self.abstain.tokens),
        ];
        for (what, ids) in lists {
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::TokenOutOfRange {
                    what,
                    id: id as u64,
                    vocab,
                });
            }
        }
        for p in &self.black_hole.attractors {
            if let Some(&id) = p.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::TokenOutOfRange {
                    what: "black_hole.attractors",
                    id: id as u64,
                    vocab,
                });
            }
        }
        Ok(())
    }
}

fn oor<T>(key: &str, msg: &str) -> Result<T> {
    Err(Error::ConfigOutOfRange {
        key: key.into(),
        msg: msg.into(),
    })
}

fn range(key: &str, x: f32, lo: f32, hi: f32) -> Result<()> {
    if x.is_finite() && x >= lo && x <= hi {
        Ok(())
    } else {
        oor(key, &format!("= {x} is outside [{lo}, {hi}]"))
    }
}

/// 0, or a finite value in [lo, hi] (a subnormal or tiny positive value is refused: it would
/// turn into an infinite 1/x downstream).
fn zero_or_range(key: &str, x: f32, lo: f32, hi: f32) -> Result<()> {
    if x == 0.0 {
        Ok(())
    } else {
        range(key, x, lo, hi).map_err(|_| Error::ConfigOutOfRange {
            key: key.into(),
            msg: format!("= {x} must be 0 or within [{lo}, {hi}]"),
        })
    }
}

fn open01(key: &str, x: f32) -> Result<()> {
    if x.is_finite() && x > 0.0 && x < 1.0 {
        Ok(())
    } else {
        oor(key, &format!("= {x} must be in (0, 1)"))
    }
}

fn steps(key: &str, n: u32) -> Result<()> {
    if (1..=10_000).contains(&n) {
        Ok(())
    } else {
        oor(key, &format!("= {n} must be in [1, 10000]"))
    }
}

/// Overlay `over` onto `base`, refusing keys `base` does not have.
fn merge(base: &mut Value, over: Value, path: &str) -> Result<()> {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v, &p)?,
                    None => return Err(Error::ConfigUnknownKey(p)),
                }
            }
            Ok(())
        }
        // Only the weights object is nested beyond one level; a non-object where an object is
        // expected is left to serde, which reports the type error.
        (slot, v) => {
            *slot = v;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_roundtrip() {
        for p in PRESETS {
            let c = Config::preset(p).unwrap();
            c.validate().unwrap();
            let back = Config::from_json(&format!("{{\"preset\":\"{p}\"}}")).unwrap();
            assert_eq!(c, back);
            let full: Config = serde_json::from_str(&c.to_json()).unwrap();
            assert_eq!(c, full);
        }
    }

    #[test]
    fn overrides_apply() {
        let c = Config::from_json(r#"{"preset":"factual","temperature":{"base":0.3}}"#).unwrap();
        assert_eq!(c.temperature.base, 0.3);
        assert_eq!(c.sampler.min_p, 0.1);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::from_json(r#"{"temperature":{"bse":0.3}}"#).unwrap_err();
        assert_eq!(e, Error::ConfigUnknownKey("temperature.bse".into()));
        let e = Config::from_json(r#"{"void":{"weights":{"x":1}}}"#).unwrap_err();
        assert_eq!(e, Error::ConfigUnknownKey("void.weights.x".into()));
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(matches!(
            Config::from_json(r#"{"sampler":{"min_p":2}}"#),
            Err(Error::ConfigOutOfRange { key, .. }) if key == "sampler.min_p"
        ));
        assert!(matches!(
            Config::from_json(r#"{"temperature":{"base":"hot"}}"#),
            Err(Error::ConfigParse(_))
        ));
        assert!(matches!(
            Config::from_json("[1]"),
            Err(Error::ConfigParse(_))
        ));
        assert!(matches!(Config::from_json("{"), Err(Error::ConfigParse(_))));
        assert!(matches!(
            Config::from_json(r#"{"preset":"spicy"}"#),
            Err(Error::ConfigOutOfRange { .. })
        ));
    }
}
