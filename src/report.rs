//! The diagnostics record of one step ([`StepReport`]), the regime names and the intervention
//! flags: the one definition the processor, the C constants (`ffi`, tied by compile-time
//! asserts), the CLI and the evaluation all read.

/// Generation regime of a sequence (docs/DESIGN.md §1 "Regimes").
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

impl Regime {
    /// Every regime, in code order.
    pub const ALL: [Regime; 3] = [Regime::Orbit, Regime::Void, Regime::BlackHole];

    /// Printable name (`orbit`, `void`, `black-hole`).
    pub fn name(self) -> &'static str {
        match self {
            Regime::Orbit => "orbit",
            Regime::Void => "void",
            Regime::BlackHole => "black-hole",
        }
    }
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
    /// The graded repeat penalty lowered a token that would extend a running repeat.
    pub const REPEAT_PENALTY: u32 = 64;
    /// The would-close guard masked a token that would complete a repeated unit.
    pub const GUARD: u32 = 128;
    /// The row was tilted toward the concept (see `StepReport::concept_kl`).
    pub const CONCEPT: u32 = 256;
    /// The step advises rewinding the copy the guard ended (see `StepReport::rollback`).
    pub const ROLLBACK: u32 = 512;
    /// A token an earlier rewind banned at this position was masked.
    pub const BANNED: u32 = 1024;
    /// The row was reordered by the null-query contrast (`GravityProcessor::set_contrast`).
    pub const CONTRAST: u32 = 2048;

    /// Every flag with its printable name, in bit order.
    pub const NAMES: [(u32, &str); 12] = [
        (ANCHOR, "anchor"),
        (KICK, "kick"),
        (CYCLE_PENALTY, "cycle-penalty"),
        (ABSTAIN, "abstain"),
        (FORCED, "forced"),
        (FULL_PASS, "full-pass"),
        (REPEAT_PENALTY, "repeat-penalty"),
        (GUARD, "guard"),
        (CONCEPT, "concept"),
        (ROLLBACK, "rollback"),
        (BANNED, "banned"),
        (CONTRAST, "contrast"),
    ];

    /// The names of the flags set in `bits`, joined with `sep` ("" when none is set).
    pub fn describe(bits: u32, sep: &str) -> String {
        let mut out = String::new();
        for (bit, name) in NAMES {
            if bits & bit != 0 {
                if !out.is_empty() {
                    out.push_str(sep);
                }
                out.push_str(name);
            }
        }
        out
    }
}

/// The field at a sequence's first content token (see [`AnswerStats`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirstContent {
    /// Its step (0-based position in the output).
    pub step: u32,
    /// H there, nats.
    pub entropy: f32,
    /// 1 − p_max there.
    pub one_minus_pmax: f32,
    /// Φ of the content token, nats (NaN when the host's token was not among the step's
    /// candidates).
    pub potential: f32,
}

/// Running aggregates of the field over a sequence's output, the answer-level void's inputs
/// (docs/DESIGN.md §1 "Regimes"; SCIENCE.md §1.5): over every accepted token that had a step,
/// the mean and max of H, the mean of √varentropy, Σ, mean and max of Φ, and the field at the
/// first content token (per the processor's content table; without one, every token is
/// content), and with a [`crate::Probe`] set its value at the first step and its mean.
/// O(1) per accepted token; 88 bytes of running sums per sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerStats {
    /// Accepted tokens with a step.
    pub tokens: u32,
    /// Mean H, nats (NaN before the first).
    pub mean_entropy: f32,
    /// Max H, nats (NaN before the first).
    pub max_entropy: f32,
    /// Mean √varentropy, nats (NaN before the first).
    pub mean_sqrt_varentropy: f32,
    /// ΣΦ over the tokens whose Φ is known: the output's surprisal, nats.
    pub sum_potential: f32,
    /// Mean Φ over them (NaN when none).
    pub mean_potential: f32,
    /// Max Φ over them (NaN when none).
    pub max_potential: f32,
    /// The first content token, once there is one.
    pub first_content: Option<FirstContent>,
    /// The probe's value at the first step (the hidden state before the answer; NaN without a
    /// probe, before the first step, or where a probe token's logit was not finite).
    pub probe_first: f32,
    /// The probe's mean over the accepted tokens where it was finite (NaN when none): the
    /// probe of the answer's mean hidden state.
    pub probe_mean: f32,
    /// Accepted tokens whose Φ is known (the others — a token the host chose outside the
    /// step's largest candidates — are left out of ΣΦ, mean and max Φ).
    pub potential_tokens: u32,
    /// H at the first accepted token, nats (NaN before it).
    pub first_entropy: f32,
    /// 1 − p_max at the first accepted token (NaN before it).
    pub first_one_minus_pmax: f32,
    /// The answer-level void, P(the answer so far is wrong), by the processor's answer weights
    /// (`answer` section or the calibration's; [`AnswerStats::void_score`]). NaN before the first
    /// token or where a weighted input is unknown.
    pub void: f32,
}

impl AnswerStats {
    /// σ(bias + Σ w_k x_k) over these aggregates (`config::AnswerWeights`): terms with weight 0
    /// are skipped; NaN before the first token, where a weighted input is NaN (a probe weight
    /// without a probe), and where a Φ term is weighted but some accepted token's Φ is unknown
    /// (its Φ aggregates would be over part of the answer, reading low exactly where a rare
    /// token was chosen). The first content token's field falls back to the first token's
    /// while there is none.
    pub fn void_score(&self, w: &crate::config::AnswerWeights) -> f32 {
        let phi_weighted =
            w.sum_potential != 0.0 || w.mean_potential != 0.0 || w.max_potential != 0.0;
        if self.tokens == 0 || (phi_weighted && self.potential_tokens < self.tokens) {
            return f32::NAN;
        }
        let (ch, cq) = self
            .first_content
            .map_or((self.first_entropy, self.first_one_minus_pmax), |c| {
                (c.entropy, c.one_minus_pmax)
            });
        let terms = [
            (w.mean_entropy, self.mean_entropy),
            (w.max_entropy, self.max_entropy),
            (w.mean_sqrt_varentropy, self.mean_sqrt_varentropy),
            (w.sum_potential, self.sum_potential),
            (w.mean_potential, self.mean_potential),
            (w.max_potential, self.max_potential),
            (w.first_entropy, self.first_entropy),
            (w.first_one_minus_pmax, self.first_one_minus_pmax),
            (w.content_entropy, ch),
            (w.content_one_minus_pmax, cq),
            (w.probe, self.probe_mean),
        ];
        let mut s = w.bias as f64;
        for (k, x) in terms {
            if k != 0.0 {
                s += k as f64 * x as f64;
            }
        }
        (1.0 / (1.0 + (-s).exp())) as f32
    }
}

impl Default for AnswerStats {
    fn default() -> Self {
        AnswerStats {
            tokens: 0,
            mean_entropy: f32::NAN,
            max_entropy: f32::NAN,
            mean_sqrt_varentropy: f32::NAN,
            sum_potential: 0.0,
            mean_potential: f32::NAN,
            max_potential: f32::NAN,
            first_content: None,
            probe_first: f32::NAN,
            probe_mean: f32::NAN,
            potential_tokens: 0,
            first_entropy: f32::NAN,
            first_one_minus_pmax: f32::NAN,
            void: f32::NAN,
        }
    }
}

/// Diagnostics of one row at one step (docs/DESIGN.md §1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Sequence id.
    pub seq: u64,
    /// 0-based index of the position within the sequence (steps accepted before this one).
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
    /// z_(1) − z_(2) (+inf when there is no finite second logit).
    pub margin: f32,
    /// The selected token (Sample mode, or a forced token), if any.
    pub token: Option<u32>,
    /// Φ of the selected token under the measured field (NaN when none).
    pub token_potential: f32,
    /// Temperature used (0 = greedy). Always finite, within the configured clamps or 0.
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
    /// The answer-level aggregates over the tokens accepted before this step.
    pub answer: AnswerStats,
    /// KL(tilted ‖ measured) of the concept tilt, nats (0 when the row was not tilted).
    pub concept_kl: f32,
    /// Tokens the processor advises rewinding (0: none; `escape.rollback`): a host that can
    /// truncate its KV cache drops its last `rollback` tokens and calls `rollback(seq, n)`
    /// instead of accepting this step's token (which the guard has made valid either way).
    pub rollback: u32,
    /// The probe's value on this step's row as given (NaN without a [`crate::Probe`], or where
    /// a probe token's logit is not finite).
    pub probe: f32,
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
            answer: AnswerStats::default(),
            concept_kl: 0.0,
            rollback: 0,
            probe: f32::NAN,
        }
    }
}

/// The per-token diagnostics table (`infogravity generate`, the candle example): its columns
/// from the step to the black-hole score, aligned; callers append their own (T*,
/// interventions).
pub fn table_header() -> String {
    format!(
        "{:>4} {:>14} {:>6} {:>6} {:>6} {:>6} {:>10} {:>6} {:>6}",
        "step", "token", "H", "p_max", "T", "Φ", "regime", "void", "bh"
    )
}

/// One row of [`table_header`]'s columns: step `step`, whose token reads `piece`.
pub fn table_cells(step: usize, piece: &str, r: &StepReport) -> String {
    format!(
        "{step:>4} {:>14} {:>6.3} {:>6.3} {:>6.3} {:>6.2} {:>10} {:>6.3} {:>6.3}",
        format!("{piece:?}"),
        r.entropy,
        r.p_max,
        r.temperature,
        r.token_potential,
        r.regime.name(),
        r.void_score,
        r.black_hole_score,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_distinct_bits_and_named() {
        let mut seen = 0u32;
        for (bit, name) in flags::NAMES {
            assert_eq!(bit.count_ones(), 1, "{name}");
            assert_eq!(seen & bit, 0, "{name} repeats a bit");
            seen |= bit;
        }
        assert_eq!(
            flags::describe(flags::ANCHOR | flags::FULL_PASS, ","),
            "anchor,full-pass"
        );
        assert_eq!(flags::describe(0, ","), "");
        let names: Vec<_> = Regime::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names, ["orbit", "void", "black-hole"]);
    }
}
