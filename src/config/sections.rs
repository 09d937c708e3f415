//! The configuration sections. Each keeps its knobs' documentation (default, unit, the value
//! that disables it, its cost), its default values (`impl Default`: the `balanced` preset) and
//! its validation together, so a knob lives in one place.

use serde::{Deserialize, Serialize};

use super::check::{oor, open01, range, steps, zero_or_range};
use crate::error::Result;
use crate::policy::MIN_SAMPLING_T;

/// Per-step entropy response g(h) of the temperature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// g = 1.
    None,
    /// EDT (Zhang et al. 2024, arXiv 2403.14541): g = n^{θ/H}, H in nats.
    Edt,
    /// llama.cpp dynatemp (PR #4972): g = (1 − r) + 2r·h^κ, h = H / log V.
    Dynatemp,
}

/// T_t = clamp(min, max, base · exp(mass_gain · (M − mass_ref)) · g(h_t) · kick_t)
/// (docs/DESIGN.md §1 "Adaptive temperature").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureConfig {
    /// T0, the base temperature. Default 0.8 (neutral 1.0). Unit: temperature. 0 = greedy;
    /// otherwise in [0.001, 100]. Cost: O(1).
    pub base: f32,
    /// Lower clamp. Default 0.05. Unit: temperature. 0 or [0.001, 100]; with 0, a computed
    /// temperature below 0.001 selects greedily. Off: 0.
    pub min: f32,
    /// Upper clamp. Default 2.0. Unit: temperature, in [0.001, 100] and ≥ `min`.
    pub max: f32,
    /// Signed gain of T_base on M(Q): positive makes heavy queries hotter (escape a deep
    /// well), negative colder (stay in it). Default 0 (off): at matched diversity neither sign
    /// beats a fixed temperature, and the better sign differs between models (docs/EVALUATION.md
    /// §3). Unit: log-temperature per unit of M, i.e. per standard deviation of the query mass
    /// under `mass.scale = auto` (+0.25: a query one SD heavier than the average runs
    /// e^0.25 = 1.28× hotter). Cost: O(1) (M is computed once per sequence).
    pub mass_gain: f32,
    /// M at which T_base = base. Default 0 (the average query under `auto`; use about 0.5 with
    /// `mass.scale = minmax`). Unit: M.
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

impl Default for TemperatureConfig {
    fn default() -> Self {
        TemperatureConfig {
            base: 0.8,
            min: 0.05,
            max: 2.0,
            mass_gain: 0.0,
            mass_ref: 0.0,
            response: Response::Dynatemp,
            edt_theta: 1.0,
            edt_n: 0.8,
            dyn_range: 0.3,
            dyn_exponent: 1.0,
        }
    }
}

impl TemperatureConfig {
    pub(super) fn validate(&self) -> Result<()> {
        // Non-zero temperatures stay ≥ 1e-3, so z/T and 1/T are finite (policy::MIN_SAMPLING_T).
        zero_or_range("temperature.base", self.base, MIN_SAMPLING_T, 100.0)?;
        zero_or_range("temperature.min", self.min, MIN_SAMPLING_T, 100.0)?;
        if self.max.is_finite() && self.max < self.min {
            return oor(
                "temperature.max",
                &format!("= {} is below temperature.min = {}", self.max, self.min),
            );
        }
        range("temperature.max", self.max, MIN_SAMPLING_T, 100.0)?;
        range("temperature.mass_gain", self.mass_gain, -10.0, 10.0)?;
        range("temperature.mass_ref", self.mass_ref, -10.0, 10.0)?;
        range("temperature.edt_theta", self.edt_theta, 0.0, 100.0)?;
        open01("temperature.edt_n", self.edt_n)?;
        range("temperature.dyn_range", self.dyn_range, 0.0, 0.999)?;
        range("temperature.dyn_exponent", self.dyn_exponent, 1e-3, 100.0)
    }
}

/// M(Q) = α·ẑ(H) + β·ẑ(D) + γ·ẑ(N) over the components present (weights renormalised over
/// them); ẑ is a z-score (`scale = auto`: from the calibration, else running statistics) or
/// min-max to [0, 1] with the ranges here (`scale = minmax`) (docs/DESIGN.md §1 "Query
/// information mass"). Computed once per sequence; never on the per-token path.
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
    /// How the components are put on one scale. Default `auto`: z-scores, so M is in standard
    /// deviations and `temperature.mass_gain` is "per SD" — from the loaded calibration where it
    /// has a component's statistics, else from the running mean and SD over the queries this
    /// processor has started (each counted at its first step), once `warmup` queries are in;
    /// until then a component is left out (M absent when none is left). `minmax`: each
    /// component divided by its fixed range (1, `d_max`, `n_max`), M in [0, 1]. Cost: O(1) per
    /// sequence; 72 bytes per processor.
    pub scale: MassScale,
    /// Queries seen before the running statistics are used. Default 8; 2..=1e6.
    pub warmup: u32,
}

/// The scale of M(Q)'s components (`mass.scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MassScale {
    /// z-scores from the calibration, else running statistics.
    #[default]
    Auto,
    /// Fixed ranges to [0, 1].
    MinMax,
}

impl Default for MassConfig {
    fn default() -> Self {
        MassConfig {
            alpha: 1.0 / 3.0,
            beta: 1.0 / 3.0,
            gamma: 1.0 / 3.0,
            d_max: 4.0,
            n_max: 8.0,
            prior_smoothing: 0.5,
            scale: MassScale::Auto,
            warmup: 8,
        }
    }
}

impl MassConfig {
    pub(super) fn validate(&self) -> Result<()> {
        range("mass.alpha", self.alpha, 0.0, 1e3)?;
        range("mass.beta", self.beta, 0.0, 1e3)?;
        range("mass.gamma", self.gamma, 0.0, 1e3)?;
        range("mass.d_max", self.d_max, 1e-6, 1e6)?;
        range("mass.n_max", self.n_max, 1e-6, 1e6)?;
        range("mass.prior_smoothing", self.prior_smoothing, 1e-9, 1e9)?;
        if !(2..=1_000_000).contains(&self.warmup) {
            return oor("mass.warmup", "must be in [2, 1000000]");
        }
        Ok(())
    }
}

/// Void score v = σ(bias + Σ w_k f_k) (docs/DESIGN.md §1 "Regimes"); features, each in a
/// bounded range: h = H/log V; energy = −log Z (nats; model-scale dependent, so 0 weight by
/// default); 1 − p_max; std = √varentropy / log V; trend = surprisal EMA(fast) − EMA(slow),
/// / log V; task = 1 − task-space mass (0 without a task space); mass = M(Q) (0 when absent).
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

/// Logistic weights of the void score (each within ±1000).
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

impl Default for VoidConfig {
    fn default() -> Self {
        VoidConfig {
            enabled: true,
            weights: VoidWeights {
                bias: -3.5,
                entropy: 5.0,
                energy: 0.0,
                one_minus_pmax: 2.0,
                varentropy: 1.0,
                trend: 2.0,
                task: 1.0,
                mass: 0.25,
            },
            enter: 0.65,
            exit: 0.45,
            enter_after: 2,
            exit_after: 3,
            trend_fast: 0.5,
            trend_slow: 0.05,
        }
    }
}

impl VoidWeights {
    /// The weights by name, in a fixed order.
    pub fn named(&self) -> [(&'static str, f32); 8] {
        [
            ("bias", self.bias),
            ("entropy", self.entropy),
            ("energy", self.energy),
            ("one_minus_pmax", self.one_minus_pmax),
            ("varentropy", self.varentropy),
            ("trend", self.trend),
            ("task", self.task),
            ("mass", self.mass),
        ]
    }
}

impl VoidConfig {
    pub(super) fn validate(&self) -> Result<()> {
        for (k, x) in self.weights.named() {
            range(&format!("void.weights.{k}"), x, -1e3, 1e3)?;
        }
        range("void.enter", self.enter, 0.0, 1.0)?;
        range("void.exit", self.exit, 0.0, self.enter)?;
        steps("void.enter_after", self.enter_after)?;
        steps("void.exit_after", self.exit_after)?;
        range("void.trend_fast", self.trend_fast, 1e-6, 1.0)?;
        range("void.trend_slow", self.trend_slow, 1e-6, 1.0)
    }
}

/// The answer-level void a = σ(bias + Σ w_k x_k) over the answer aggregates the processor
/// streams (`AnswerStats`; docs/DESIGN.md §1 "Regimes", SCIENCE.md §1.5): P(the answer so far is
/// wrong). Reported in every step's `answer.void` and by `GravityProcessor::answer`. Cost: O(1)
/// per step. A term whose weight is 0 is skipped; one whose input is unknown (no probe set; Φ
/// unknown at some accepted token — a token the host chose outside the step's 8 largest
/// candidates, in `Logits` mode) makes a NaN, never a score over part of the answer. In the
/// configuration a key left out keeps its default; a calibration's `answer` section lists
/// every weight and replaces the whole section.
///
/// Defaults: the **shipped fit**, `infogravity eval answer-fit` over two models' answers to four
/// relations (`docs/eval/answer-fit/`, EVALUATION.md §1d) on the three inputs that transferred
/// between the models: mean H, mean Φ and max Φ (nats). Hosts with their own model refit with
/// `eval qa` (which writes every weight, the probe's too, into its `calibration.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnswerWeights {
    pub bias: f32,
    /// × mean H over the answer, nats.
    pub mean_entropy: f32,
    /// × max H, nats.
    pub max_entropy: f32,
    /// × mean √varentropy, nats.
    pub mean_sqrt_varentropy: f32,
    /// × ΣΦ, the answer's surprisal, nats.
    pub sum_potential: f32,
    /// × mean Φ, nats.
    pub mean_potential: f32,
    /// × max Φ = −log of the least likely chosen token, nats.
    pub max_potential: f32,
    /// × H at the first answer token, nats.
    pub first_entropy: f32,
    /// × 1 − p_max at the first answer token.
    pub first_one_minus_pmax: f32,
    /// × H at the first content token (the first token while there is none).
    pub content_entropy: f32,
    /// × 1 − p_max at the first content token (the first token while there is none).
    pub content_one_minus_pmax: f32,
    /// × the hidden-state probe's mean over the answer (`GravityProcessor::set_probe`).
    pub probe: f32,
}

impl Default for AnswerWeights {
    /// The shipped fit (`docs/eval/answer-fit/calibration.json`; a test keeps the two equal).
    fn default() -> Self {
        AnswerWeights {
            bias: SHIPPED_ANSWER[0],
            mean_entropy: SHIPPED_ANSWER[1],
            max_entropy: 0.0,
            mean_sqrt_varentropy: 0.0,
            sum_potential: 0.0,
            mean_potential: SHIPPED_ANSWER[2],
            max_potential: SHIPPED_ANSWER[3],
            first_entropy: 0.0,
            first_one_minus_pmax: 0.0,
            content_entropy: 0.0,
            content_one_minus_pmax: 0.0,
            probe: 0.0,
        }
    }
}

/// Bias, mean H, mean Φ and max Φ weights of the shipped answer-level fit.
const SHIPPED_ANSWER: [f32; 4] = [-3.374694, 0.7263331, 1.0512153, 0.6600166];

impl AnswerWeights {
    /// The weights by name, in a fixed order (the bias first).
    pub fn named(&self) -> [(&'static str, f32); 12] {
        [
            ("bias", self.bias),
            ("mean_entropy", self.mean_entropy),
            ("max_entropy", self.max_entropy),
            ("mean_sqrt_varentropy", self.mean_sqrt_varentropy),
            ("sum_potential", self.sum_potential),
            ("mean_potential", self.mean_potential),
            ("max_potential", self.max_potential),
            ("first_entropy", self.first_entropy),
            ("first_one_minus_pmax", self.first_one_minus_pmax),
            ("content_entropy", self.content_entropy),
            ("content_one_minus_pmax", self.content_one_minus_pmax),
            ("probe", self.probe),
        ]
    }

    /// Each weight finite and within ±1000 (`what` names the section in the error).
    pub(crate) fn validate(&self, what: &str) -> Result<()> {
        for (k, x) in self.named() {
            range(&format!("{what}.{k}"), x, -1e3, 1e3)?;
        }
        Ok(())
    }
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
    /// Longest cycle period detected (and watched by the escape penalties). Default 32 tokens,
    /// the loop judge's longest unit (docs/EVALUATION.md §2); 1..=256. Memory: 8 bytes per
    /// period per sequence (history ring and run counter).
    pub max_period: u32,
    /// Repetitions that make a cycle. Default 3; 2..=64.
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

impl Default for BlackHoleConfig {
    fn default() -> Self {
        BlackHoleConfig {
            enabled: true,
            max_period: 32,
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
        }
    }
}

impl BlackHoleConfig {
    pub(super) fn validate(&self, l: &LimitsConfig) -> Result<()> {
        if !(1..=256).contains(&self.max_period) {
            return oor("black_hole.max_period", "must be in [1, 256]");
        }
        if !(2..=64).contains(&self.repeats) {
            return oor("black_hole.repeats", "must be in [2, 64]");
        }
        range("black_hole.low_entropy", self.low_entropy, 0.0, 1.0)?;
        steps("black_hole.low_entropy_steps", self.low_entropy_steps)?;
        range("black_hole.w_cycle", self.w_cycle, 0.0, 1.0)?;
        range("black_hole.w_low", self.w_low, 0.0, 1.0)?;
        range("black_hole.enter", self.enter, 0.0, 1.0)?;
        range("black_hole.exit", self.exit, 0.0, self.enter)?;
        steps("black_hole.enter_after", self.enter_after)?;
        steps("black_hole.exit_after", self.exit_after)?;
        if self.attractors.len() > l.max_phrases as usize {
            return oor(
                "black_hole.attractors",
                "has more phrases than limits.max_phrases",
            );
        }
        if self
            .attractors
            .iter()
            .any(|p| p.is_empty() || p.len() > l.max_phrase_len as usize)
        {
            return oor(
                "black_hole.attractors",
                "phrases must hold 1..=limits.max_phrase_len tokens",
            );
        }
        Ok(())
    }
}

/// Anchoring: add λ·v to each anchor token's logit while v ≥ `min_void` (docs/DESIGN.md §1
/// "Interventions").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorConfig {
    /// Default true (neutral: false). Cost: O(number of anchors).
    pub enabled: bool,
    /// λ: logit added at v = 1. Default 2.0. Unit: nats, within ±100. Off: 0.
    pub lambda: f32,
    /// Only bias while v ≥ this (below it the field has support). Default 0.3.
    pub min_void: f32,
    /// Anchor tokens for every sequence (each sequence may add its own at `begin`).
    pub tokens: Vec<u32>,
    /// Also use the task-space tokens as anchors. Default false.
    pub use_task_space: bool,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        AnchorConfig {
            enabled: true,
            lambda: 2.0,
            min_void: 0.3,
            tokens: vec![],
            use_task_space: false,
        }
    }
}

impl AnchorConfig {
    pub(super) fn validate(&self, l: &LimitsConfig) -> Result<()> {
        range("anchor.lambda", self.lambda, -100.0, 100.0)?;
        range("anchor.min_void", self.min_void, 0.0, 1.0)?;
        if self.tokens.len() > l.max_anchors as usize {
            return oor("anchor.tokens", "has more tokens than limits.max_anchors");
        }
        Ok(())
    }
}

/// Concept-direction anchoring (docs/DESIGN.md §1 "Interventions", seed 003; `crate::concept`):
/// while v ≥ `min_void`, tilt the whole row by α·b toward the concept the host set
/// (`GravityProcessor::set_concept`), α = min(λ·v, the largest α with KL ≤ `max_kl`). Acts only
/// where a concept is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptConfig {
    /// Default true (neutral: false). Cost, at the steps where it acts: 2–48 passes over the
    /// row for the KL bound, one to write the tilted row and one to measure it (see
    /// `crate::concept`); nothing where no concept is set or v < `min_void`.
    pub enabled: bool,
    /// λ: the most tilt at v = 1, in SDs of the (standardised) concept bias. Default 4.0,
    /// within [0, 100]. Off: 0.
    pub lambda: f32,
    /// Only tilt while v ≥ this. Default 0.0 (every step, scaled by v).
    pub min_void: f32,
    /// The bound on KL(tilted ‖ measured) per step, nats. Default 0.1, within (0, 10].
    pub max_kl: f32,
    /// Tilt only the first this many steps of a sequence (the answer's onset). Default 0: every
    /// step.
    pub max_steps: u32,
    /// Tilt only while the concept's own tokens (its type, [`crate::Concept::with_tokens`])
    /// hold less than this much of the step's probability: a model already naming the type is
    /// left alone. Default 0.5 (set before it was measured; docs/EVALUATION.md §6: on the 1.5B
    /// model it turned the tilt's capital accuracy loss into none); 1: off. Within (0, 1];
    /// acts only on a concept that carries its tokens (one without them is tilted as if this
    /// were 1). The mass is read from the row as measured (before any temperature). Cost: one
    /// exp per type token at each step the other gates let through.
    #[serde(default = "half")]
    pub max_type_mass: f32,
    /// Tilt only until the sequence's first content token (the answer's onset, past a leading
    /// " the"; the content table, `GravityProcessor::set_content_tokens`, decides what counts;
    /// without one every token does, so only the first step is tilted). Default false.
    #[serde(default)]
    pub until_content: bool,
}

fn half() -> f32 {
    0.5
}

impl Default for ConceptConfig {
    fn default() -> Self {
        ConceptConfig {
            enabled: true,
            lambda: 4.0,
            min_void: 0.0,
            max_kl: 0.1,
            max_steps: 0,
            max_type_mass: 0.5,
            until_content: false,
        }
    }
}

impl ConceptConfig {
    pub(super) fn validate(&self) -> Result<()> {
        range("concept.lambda", self.lambda, 0.0, 100.0)?;
        range("concept.min_void", self.min_void, 0.0, 1.0)?;
        if self.max_type_mass.is_nan() || self.max_type_mass <= 0.0 {
            return oor("concept.max_type_mass", "must be > 0");
        }
        range("concept.max_type_mass", self.max_type_mass, 0.0, 1.0)?;
        if self.max_kl.is_nan() || self.max_kl <= 0.0 {
            return oor("concept.max_kl", "must be > 0");
        }
        range("concept.max_kl", self.max_kl, 0.0, 10.0)
    }
}

/// The null-query contrast (domain-conditional PMI; docs/DESIGN.md §1 "Interventions";
/// `crate::contrast`): at a step the host gave the row of a content-free query
/// (`GravityProcessor::set_contrast`), the tokens within `plausibility` of p_max are reordered
/// by log p − β·log q. Acts only where a row is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContrastConfig {
    /// Default true (neutral: false): use a null-query row where the host gives one. Cost, at
    /// such a step: one pass writing the contrasted row and one measuring it.
    pub enabled: bool,
    /// β: the weight of the null query's log-probability (1: PMI). Default 1.0, within [0, 10];
    /// off: 0.
    pub beta: f32,
    /// α: only tokens with p ≥ α·p_max are reordered; the rest are never raised, so a step
    /// with nothing else within α of its best token keeps it. Default 0.1 (Li et al.'s
    /// contrastive decoding), within (0, 1].
    pub plausibility: f32,
    /// Use a given row only until the sequence's first content token (an attractor answer
    /// acts at the answer's onset; the content table decides what counts, without one every
    /// token does, so only the first step reads a row). Default true.
    pub until_content: bool,
    /// Reorder only a step whose most likely token is also the null row's: the answer the
    /// relation's prior gives whatever the query names, an attractor candidate. Elsewhere the
    /// step stays plain, so a right answer the query makes likely is not demoted for being
    /// common a priori (docs/EVALUATION.md §7). Default true; costs nothing (the null row's
    /// argmax is found when it is measured).
    #[serde(default = "yes")]
    pub prior_top_only: bool,
}

fn yes() -> bool {
    true
}

impl Default for ContrastConfig {
    fn default() -> Self {
        ContrastConfig {
            enabled: true,
            beta: 1.0,
            plausibility: 0.1,
            until_content: true,
            prior_top_only: true,
        }
    }
}

impl ContrastConfig {
    pub(super) fn validate(&self) -> Result<()> {
        range("contrast.beta", self.beta, 0.0, 10.0)?;
        if self.plausibility.is_nan() || self.plausibility <= 0.0 {
            return oor("contrast.plausibility", "must be > 0");
        }
        range("contrast.plausibility", self.plausibility, 0.0, 1.0)
    }
}

/// Loop escape (docs/DESIGN.md §1 "Interventions"). Two parts act **before** a loop completes,
/// on every step, gated only by a back-to-back repeat actually running (text that does not
/// repeat itself pays nothing):
///
/// - a graded penalty in the manner of DRY (p-e-w): for each period p ≤ `black_hole.max_period`
///   whose repeat is n tokens long (n = run(p), cut at the last sequence breaker), the token that
///   would extend it loses `repeat_penalty · s_p · repeat_base^(n − repeat_allowed)` nats when
///   n ≥ `repeat_allowed`, where s_p = min(1, run(p) / ((black_hole.repeats − 1)·p)) is the
///   repeat's cycle strength;
/// - a would-close guard (antirez/ds4): for p ≥ `guard_min_period`, the token that would complete
///   `guard_repeats` back-to-back copies of a p-token unit is masked (a 10⁴-nat penalty, finite
///   so a row can never be all masked).
///
/// While the black-hole regime is active (after the fact) it also multiplies T by `kick` and
/// penalises the token that would extend the complete cycle by `cycle_penalty`. A token hit by
/// several rules loses the largest of their penalties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscapeConfig {
    /// Default true (neutral: false). Cost: O(black_hole.max_period + |breakers|) per step and
    /// per accepted token, plus a sort of at most max_period + 1 penalties when any applies.
    pub enabled: bool,
    /// Temperature multiplier while in a black hole. Default 1.6; 1..=100. Off: 1.
    pub kick: f32,
    /// Subtracted from the logit of the token that would extend the complete cycle while in a
    /// black hole. Default 6.0. Unit: nats, ≤ 10^4. Off: 0.
    pub cycle_penalty: f32,
    /// Multiplier m of the graded repeat penalty. Default 0.8 nats (DRY's). 0..=100. Off: 0.
    pub repeat_penalty: f32,
    /// Base of its growth per repeated token. Default 1.75 (DRY's); 1..=4.
    pub repeat_base: f32,
    /// Repeat length n from which it applies. Default 2 (DRY's); 1..=64.
    pub repeat_allowed: u32,
    /// 0 (default): the graded penalty watches the back-to-back repeats only, scaled by their
    /// cycle strength. W > 0: DRY's own rule over the last W accepted tokens — every earlier
    /// occurrence of the latest token proposes the token that followed it, with n the length of
    /// the match (at most 64), no strength factor. ≤ 4096. Cost: O(W) compares per step
    /// (O(64·W) at worst); memory 4·W bytes per sequence.
    pub repeat_window: u32,
    /// Shortest period the would-close guard watches. Default 4; 1..=256. Off: 0.
    pub guard_min_period: u32,
    /// Copies the guard lets no unit complete. Default 2; 2..=64.
    pub guard_repeats: u32,
    /// Rollback depth D (SCIENCE.md §2.3 item 4; docs/DESIGN.md §1 "Interventions"). 0
    /// (default): off. D > 0: where the guard fires on a repeat whose copy so far is n ≤ D
    /// tokens (and n fits the budget), the step also advises rewinding them
    /// (`StepReport::rollback` = n, flag `rollback`): a host that can truncate its KV cache
    /// drops its last n tokens and calls `rollback(seq, n)` instead of `accept`, and the step
    /// at that position again masks the token that began the copy. A host that does not rewind
    /// accepts the guarded token as before. Needs `guard_min_period` > 0. ≤ 1024. Cost: a
    /// snapshot per accepted token, D·(4·black_hole.max_period + 160) bytes and D more history
    /// tokens per sequence; O(black_hole.max_period) per accepted token.
    pub rollback: u32,
    /// Tokens one sequence may rewind on advice in all (its recompute budget); past it the
    /// guard alone acts. Default 32; ≤ 2^20.
    pub rollback_budget: u32,
    /// Sequence breakers (host-tokenised ids): a repeat's length for the graded penalty counts
    /// only tokens after the last one (DRY's breakers are "\n", ":", "\"", "*"). Default none:
    /// line-by-line loops stay visible. At most 256.
    pub breakers: Vec<u32>,
}

impl Default for EscapeConfig {
    fn default() -> Self {
        EscapeConfig {
            enabled: true,
            kick: 1.6,
            cycle_penalty: 6.0,
            repeat_penalty: 0.8,
            repeat_base: 1.75,
            repeat_allowed: 2,
            repeat_window: 0,
            guard_min_period: 4,
            guard_repeats: 2,
            rollback: 0,
            rollback_budget: 32,
            breakers: vec![],
        }
    }
}

impl EscapeConfig {
    /// Most sequence breakers.
    pub const MAX_BREAKERS: usize = 256;

    pub(super) fn validate(&self) -> Result<()> {
        range("escape.kick", self.kick, 1.0, 100.0)?;
        range("escape.cycle_penalty", self.cycle_penalty, 0.0, 1e4)?;
        range("escape.repeat_penalty", self.repeat_penalty, 0.0, 100.0)?;
        range("escape.repeat_base", self.repeat_base, 1.0, 4.0)?;
        if !(1..=64).contains(&self.repeat_allowed) {
            return oor("escape.repeat_allowed", "must be in [1, 64]");
        }
        if self.repeat_window > 4096 {
            return oor("escape.repeat_window", "must be in [0, 4096]");
        }
        if self.guard_min_period > 256 {
            return oor("escape.guard_min_period", "must be in [0, 256]");
        }
        if !(2..=64).contains(&self.guard_repeats) {
            return oor("escape.guard_repeats", "must be in [2, 64]");
        }
        if self.rollback > 1024 {
            return oor("escape.rollback", "must be in [0, 1024]");
        }
        if self.rollback > 0 && self.guard_min_period == 0 {
            return oor(
                "escape.rollback",
                "advises rewinds where the guard fires: set escape.guard_min_period > 0",
            );
        }
        if self.rollback_budget > 1 << 20 {
            return oor("escape.rollback_budget", "must be in [0, 1048576]");
        }
        if self.breakers.len() > Self::MAX_BREAKERS {
            return oor("escape.breakers", "holds at most 256 tokens");
        }
        Ok(())
    }
}

/// Abstention (Kalai et al. 2025, "Why language models hallucinate", arXiv 2509.04664): at a
/// sequence's first step, if confidence 1 − v < `target`, stop with reason ABSTAIN (or force
/// `tokens`, then stop). Under their score a wrong answer costs t/(1 − t) and "I don't know"
/// costs 0, so `target` is the break-even confidence t.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbstainConfig {
    /// Default false. Cost: O(1) once per sequence.
    pub enabled: bool,
    /// t in (0, 1). Default 0.5.
    pub target: f32,
    /// Abstention text as token ids, forced one per step before stopping. Default empty (stop at
    /// once). At most 1024.
    pub tokens: Vec<u32>,
}

impl Default for AbstainConfig {
    fn default() -> Self {
        AbstainConfig {
            enabled: false,
            target: 0.5,
            tokens: vec![],
        }
    }
}

impl AbstainConfig {
    pub(super) fn validate(&self) -> Result<()> {
        open01("abstain.target", self.target)?;
        if self.tokens.len() > 1024 {
            return oor("abstain.tokens", "holds more than 1024 tokens");
        }
        Ok(())
    }
}

/// Task space: label tokens (the answers of a classification task) whose probability mass is
/// reported each step and lowers the void score when it is high (docs/DESIGN.md §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskSpaceConfig {
    /// Label tokens whose probability mass is reported each step. Default none (mass reported
    /// as NaN). Cost: O(number of labels).
    pub tokens: Vec<u32>,
}

impl TaskSpaceConfig {
    pub(super) fn validate(&self, l: &LimitsConfig) -> Result<()> {
        if self.tokens.len() > l.max_anchors as usize {
            return oor(
                "task_space.tokens",
                "has more tokens than limits.max_anchors",
            );
        }
        Ok(())
    }
}

/// Truncation after temperature (vLLM's order), then seeded selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    /// Keep tokens with p ≥ min_p·p_max. Default 0.05 (neutral 0). Off: 0.
    pub min_p: f32,
    /// Top-nσ: keep tokens with z ≥ max − n·σ(z) over the row's finite logits (Tang et al.
    /// 2024; llama.cpp `top_n_sigma`); a cut in logit units that does not move with T. Default
    /// 0 = off; 1.0 is the paper's setting. Cost when on: one more pass over the row at each
    /// sampled step.
    pub top_nsigma: f32,
    /// Keep the k most likely tokens. Default 0 = off; at most `max_candidates`.
    pub top_k: u32,
    /// Keep the smallest set with mass ≥ top_p. Default 1.0 = off.
    pub top_p: f32,
    /// Candidate window: tokens within this many nats of the maximum are gathered during the
    /// measurement pass so selection needs no second pass. 0 = automatic (from min-p and
    /// temperature.max: T_max·ln(1/min_p); 10 without min-p). Larger: more candidates to
    /// handle; smaller: more draws resolved by a pass over the row. Unit: nats, ≤ 64.
    pub window: f32,
    /// Candidate buffer size; past it selection falls back to an exact second pass.
    /// Default 4096; 1..=2^20. Memory: 8 bytes each, per worker thread.
    pub max_candidates: u32,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            min_p: 0.05,
            top_nsigma: 0.0,
            top_k: 0,
            top_p: 1.0,
            window: 0.0,
            max_candidates: 4096,
        }
    }
}

impl SamplerConfig {
    pub(super) fn validate(&self) -> Result<()> {
        range("sampler.min_p", self.min_p, 0.0, 1.0)?;
        range("sampler.top_nsigma", self.top_nsigma, 0.0, 100.0)?;
        range("sampler.top_p", self.top_p, 1e-6, 1.0)?;
        range("sampler.window", self.window, 0.0, 64.0)?;
        if !(1..=1 << 20).contains(&self.max_candidates) {
            return oor("sampler.max_candidates", "must be in [1, 1048576]");
        }
        if self.top_k > self.max_candidates {
            return oor("sampler.top_k", "must not exceed sampler.max_candidates");
        }
        Ok(())
    }
}

/// Memory bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Live sequences per processor. Default 4096; 1..=2^20. Memory per sequence: ~200 bytes
    /// plus 4 bytes per history token and anchor.
    pub max_sequences: u32,
    /// Anchors per sequence (config + begin). Default 4096; ≤ 2^20.
    pub max_anchors: u32,
    /// Attractor phrases. Default 64; ≤ 4096.
    pub max_phrases: u32,
    /// Tokens per attractor phrase. Default 64; ≤ 4096.
    pub max_phrase_len: u32,
    /// Query tokens kept per sequence for N(Q): those given at `begin` and those accepted
    /// before the first step; N(Q) uses the first this many. Default 32768; 1..=2^24. Memory:
    /// 4 bytes each per sequence.
    pub max_query_tokens: u32,
    /// Worker threads for batches (0 = one per core). Default 1; ≤ 1024. Memory: each worker
    /// holds 8 bytes × V plus the candidate buffer.
    pub threads: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_sequences: 4096,
            max_anchors: 4096,
            max_phrases: 64,
            max_phrase_len: 64,
            max_query_tokens: 32768,
            threads: 1,
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<()> {
        if !(1..=1 << 20).contains(&self.max_sequences) {
            return oor("limits.max_sequences", "must be in [1, 1048576]");
        }
        if self.max_anchors > 1 << 20 || self.max_phrases > 4096 || self.max_phrase_len > 4096 {
            return oor(
                "limits",
                "max_anchors ≤ 2^20, max_phrases and max_phrase_len ≤ 4096",
            );
        }
        if self.threads > 1024 {
            return oor("limits.threads", "must be ≤ 1024");
        }
        if !(1..=1 << 24).contains(&self.max_query_tokens) {
            return oor("limits.max_query_tokens", "must be in [1, 16777216]");
        }
        Ok(())
    }
}
