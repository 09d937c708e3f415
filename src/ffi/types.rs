//! The C types: constants, the versioned structs and their conversions. ABI v1 is frozen: the
//! v1 structs keep their fields and sizes (pinned below and in `tests/c/consumer.c`), status
//! numbers keep their meaning, and later fields only ever go at the end of a struct.

use std::ffi::{c_char, c_void};

use crate::mass::QueryMass;
use crate::processor::MAX_VOCAB;
use crate::report::{AnswerStats, Regime, StepReport, flags};

/// ABI major version: the `N` of the shared library's SONAME `libinfogravity.so.N`. Changes
/// only when an existing function, struct field or constant changes meaning.
pub const IG_ABI_VERSION: u32 = 1;

/// Largest vocabulary `ig_processor_new` accepts (2^24).
pub const IG_MAX_VOCAB: usize = 16_777_216;
const _: () = assert!(IG_MAX_VOCAB == MAX_VOCAB);

/// Logits element type: IEEE f32.
pub const IG_DTYPE_F32: u32 = 0;
/// Logits element type: IEEE f16.
pub const IG_DTYPE_F16: u32 = 1;
/// Logits element type: bfloat16.
pub const IG_DTYPE_BF16: u32 = 2;

/// Step mode: select a token (reported in `IgStepReport.token`). The logits are only read.
pub const IG_MODE_SAMPLE: u32 = 0;
/// Step mode: overwrite the row with the final logits (z'/T with the interventions' edits, -inf
/// where truncated; finite values stay finite in every dtype); the host selects and then calls
/// `ig_processor_accept`.
pub const IG_MODE_LOGITS: u32 = 1;

/// `IgStepReport.regime`: normal generation.
pub const IG_REGIME_ORBIT: u32 = 0;
/// `IgStepReport.regime`: flat, weakly supported field (hallucination risk).
pub const IG_REGIME_VOID: u32 = 1;
/// `IgStepReport.regime`: collapsed attractor (loops, canned text).
pub const IG_REGIME_BLACK_HOLE: u32 = 2;

/// `IgStepReport.flags`: anchor tokens were biased.
pub const IG_FLAG_ANCHOR: u32 = 1;
/// `IgStepReport.flags`: the escape temperature kick was applied.
pub const IG_FLAG_KICK: u32 = 2;
/// `IgStepReport.flags`: the token that would extend the detected cycle was penalised.
pub const IG_FLAG_CYCLE_PENALTY: u32 = 4;
/// `IgStepReport.flags`: the sequence abstains.
pub const IG_FLAG_ABSTAIN: u32 = 8;
/// `IgStepReport.flags`: the token was forced (abstention text).
pub const IG_FLAG_FORCED: u32 = 16;
/// `IgStepReport.flags`: an exact second pass over the row was needed.
pub const IG_FLAG_FULL_PASS: u32 = 32;
/// `IgStepReport.flags`: the graded repeat penalty lowered a token that would extend a running
/// repeat.
pub const IG_FLAG_REPEAT_PENALTY: u32 = 64;
/// `IgStepReport.flags`: the would-close guard masked a token that would complete a repeated
/// unit.
pub const IG_FLAG_GUARD: u32 = 128;
/// `IgStepReport.flags`: the row was tilted toward the concept, by at most `concept.max_kl`
/// nats of KL (the frozen v1 report has no field for the KL itself; the Rust and Python reports
/// carry it).
pub const IG_FLAG_CONCEPT: u32 = 256;
/// `IgStepReport.flags`: the step advises rewinding the copy the guard ended
/// (`escape.rollback`; how many tokens: `ig_processor_rollback_advice`).
pub const IG_FLAG_ROLLBACK: u32 = 512;
/// `IgStepReport.flags`: a token an earlier rewind banned at this position was masked.
pub const IG_FLAG_BANNED: u32 = 1024;
/// `IgStepReport.flags`: the row was reordered by the null-query contrast
/// (`ig_processor_set_contrast`).
pub const IG_FLAG_CONTRAST: u32 = 2048;

// The C constants are the Rust definitions (one source of truth, checked at compile time).
const _: () = {
    assert!(IG_REGIME_ORBIT == Regime::Orbit as u32);
    assert!(IG_REGIME_VOID == Regime::Void as u32);
    assert!(IG_REGIME_BLACK_HOLE == Regime::BlackHole as u32);
    assert!(IG_FLAG_ANCHOR == flags::ANCHOR);
    assert!(IG_FLAG_KICK == flags::KICK);
    assert!(IG_FLAG_CYCLE_PENALTY == flags::CYCLE_PENALTY);
    assert!(IG_FLAG_ABSTAIN == flags::ABSTAIN);
    assert!(IG_FLAG_FORCED == flags::FORCED);
    assert!(IG_FLAG_FULL_PASS == flags::FULL_PASS);
    assert!(IG_FLAG_REPEAT_PENALTY == flags::REPEAT_PENALTY);
    assert!(IG_FLAG_GUARD == flags::GUARD);
    assert!(IG_FLAG_CONCEPT == flags::CONCEPT);
    assert!(IG_FLAG_ROLLBACK == flags::ROLLBACK);
    assert!(IG_FLAG_BANNED == flags::BANNED);
    assert!(IG_FLAG_CONTRAST == flags::CONTRAST);
    assert!(flags::NAMES.len() == 12);
};

/// sizeof(IgSeqParams) in ABI v1 (LP64): the smallest `struct_size` accepted.
pub const IG_SEQ_PARAMS_V1_SIZE: usize = 88;
/// sizeof(IgStepReport) in ABI v1 (LP64): the smallest `struct_size` accepted.
pub const IG_STEP_REPORT_V1_SIZE: usize = 88;
/// sizeof(IgQueryMass) in ABI v1 (LP64): the smallest `struct_size` accepted.
pub const IG_QUERY_MASS_V1_SIZE: usize = 32;
/// sizeof(IgAnswerStats) in ABI v1 (LP64): the smallest `struct_size` accepted.
pub const IG_ANSWER_STATS_V1_SIZE: usize = 56;
/// Largest `struct_size` (and batch report stride) accepted: a bound on stride arithmetic.
pub const IG_MAX_STRUCT_SIZE: usize = 4096;

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<IgSeqParams>() == IG_SEQ_PARAMS_V1_SIZE);
    assert!(std::mem::size_of::<IgStepReport>() == IG_STEP_REPORT_V1_SIZE);
    assert!(std::mem::size_of::<IgQueryMass>() == IG_QUERY_MASS_V1_SIZE);
    assert!(std::mem::size_of::<IgAnswerStats>() == IG_ANSWER_STATS_V1_SIZE);
};

/// Per-sequence parameters for `ig_processor_begin` (all optional; version 1). Initialise with
/// `ig_seq_params_init` (a zero `struct_size` is refused: it is what `= {0}` leaves).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IgSeqParams {
    /// sizeof(IgSeqParams) as the caller compiled it (`ig_seq_params_init` sets it).
    pub struct_size: usize,
    /// Seed of the sequence's sampling stream. Default 0.
    pub seed: u64,
    /// Anchor token ids of this sequence (added to the configured ones), `n_anchors` of them.
    pub anchors: *const u32,
    pub n_anchors: usize,
    /// Prompt logits, row-major [P, V] f32 (`n_prompt_logits` = P·V elements): H(Q), and with
    /// `query_tokens` of length P, the mean query surprisal.
    pub prompt_logits: *const f32,
    pub n_prompt_logits: usize,
    /// Per-position prompt entropies in nats (used when there are no prompt logits).
    pub prompt_entropies: *const f32,
    pub n_prompt_entropies: usize,
    /// Nonzero when `context_gain` holds D(Q).
    pub has_context_gain: u32,
    /// D(Q) = KL(p(.|C+Q) || p(.|Q)) in nats.
    pub context_gain: f32,
    /// The query's token ids (N(Q) with a loaded Prior).
    pub query_tokens: *const u32,
    pub n_query_tokens: usize,
}

impl Default for IgSeqParams {
    fn default() -> Self {
        IgSeqParams {
            struct_size: std::mem::size_of::<IgSeqParams>(),
            seed: 0,
            anchors: std::ptr::null(),
            n_anchors: 0,
            prompt_logits: std::ptr::null(),
            n_prompt_logits: 0,
            prompt_entropies: std::ptr::null(),
            n_prompt_entropies: 0,
            has_context_gain: 0,
            context_gain: 0.0,
            query_tokens: std::ptr::null(),
            n_query_tokens: 0,
        }
    }
}

/// M(Q) and its components (output of `ig_processor_begin`; version 1). NaN = not supplied.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IgQueryMass {
    /// Set by the caller to sizeof(IgQueryMass) (`ig_query_mass_init` does).
    pub struct_size: usize,
    /// H at the answer position / log V.
    pub h: f32,
    /// Mean prompt entropy, nats.
    pub h_prompt_mean: f32,
    /// D(Q), nats.
    pub d: f32,
    /// N_KL against the Prior, nats.
    pub n_kl: f32,
    /// Mean query surprisal, nats/token.
    pub n_surprisal: f32,
    /// M(Q) over the present components (finite: each standardised component is bounded).
    pub m: f32,
}

impl Default for IgQueryMass {
    fn default() -> Self {
        IgQueryMass::from(&QueryMass::default())
    }
}

impl From<&QueryMass> for IgQueryMass {
    fn from(q: &QueryMass) -> Self {
        let n = |x: Option<f32>| x.unwrap_or(f32::NAN);
        IgQueryMass {
            struct_size: std::mem::size_of::<IgQueryMass>(),
            h: n(q.h),
            h_prompt_mean: n(q.h_prompt_mean),
            d: n(q.d),
            n_kl: n(q.n_kl),
            n_surprisal: n(q.n_surprisal),
            m: n(q.m),
        }
    }
}

/// The answer-level aggregates of a sequence (output of `ig_processor_answer`; version 1):
/// over its accepted tokens that had a step. NaN = none yet. Definitions: the Rust
/// `AnswerStats`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IgAnswerStats {
    /// Set by the caller to sizeof(IgAnswerStats) (`ig_answer_stats_init` does).
    pub struct_size: usize,
    /// Accepted tokens with a step.
    pub tokens: u32,
    /// Mean and max H, nats.
    pub mean_entropy: f32,
    pub max_entropy: f32,
    /// Mean √varentropy, nats.
    pub mean_sqrt_varentropy: f32,
    /// ΣΦ, mean Φ and max Φ over the tokens whose Φ is known, nats.
    pub sum_potential: f32,
    pub mean_potential: f32,
    pub max_potential: f32,
    /// 1 once the first content token was accepted (the `first_content_*` fields hold its
    /// step and field), else 0.
    pub has_first_content: u32,
    pub first_content_step: u32,
    pub first_content_entropy: f32,
    pub first_content_one_minus_pmax: f32,
    pub first_content_potential: f32,
}

impl Default for IgAnswerStats {
    fn default() -> Self {
        IgAnswerStats::from(&AnswerStats::default())
    }
}

impl From<&AnswerStats> for IgAnswerStats {
    fn from(a: &AnswerStats) -> Self {
        let fc = a.first_content;
        IgAnswerStats {
            struct_size: std::mem::size_of::<IgAnswerStats>(),
            tokens: a.tokens,
            mean_entropy: a.mean_entropy,
            max_entropy: a.max_entropy,
            mean_sqrt_varentropy: a.mean_sqrt_varentropy,
            sum_potential: a.sum_potential,
            mean_potential: a.mean_potential,
            max_potential: a.max_potential,
            has_first_content: fc.is_some() as u32,
            first_content_step: fc.map_or(0, |f| f.step),
            first_content_entropy: fc.map_or(f32::NAN, |f| f.entropy),
            first_content_one_minus_pmax: fc.map_or(f32::NAN, |f| f.one_minus_pmax),
            first_content_potential: fc.map_or(f32::NAN, |f| f.potential),
        }
    }
}

/// Diagnostics of one row at one step (output; version 1). Definitions: docs/DESIGN.md §1.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IgStepReport {
    /// Set by the caller to sizeof(IgStepReport) (`ig_step_report_init` does).
    pub struct_size: usize,
    /// Sequence id.
    pub seq: u64,
    /// Selected token (IG_MODE_SAMPLE, or a forced token in either mode), or -1.
    pub token: i64,
    /// 0-based index of the position: the number of tokens accepted before this step.
    pub step: u32,
    /// IG_REGIME_* after this step.
    pub regime: u32,
    /// IG_FLAG_* bits.
    pub flags: u32,
    /// Period of the detected repetition cycle, 0 = none.
    pub cycle_period: u32,
    /// Nonzero: the host should stop this sequence (abstention).
    pub stop: u32,
    /// Entropy H in nats, measured before any intervention.
    pub entropy: f32,
    /// H / log V.
    pub entropy_norm: f32,
    /// Varentropy, nats^2.
    pub varentropy: f32,
    /// log Z = logsumexp of the row.
    pub log_z: f32,
    /// Largest probability at T = 1.
    pub p_max: f32,
    /// Largest minus second-largest logit (+inf when there is no finite second logit).
    pub margin: f32,
    /// Potential -log p of the selected token under the measured field (NaN if none).
    pub token_potential: f32,
    /// Temperature used: 0 (greedy) or finite within the configured [min, max].
    pub temperature: f32,
    /// Void score in [0, 1].
    pub void_score: f32,
    /// Black-hole score in [0, 1].
    pub black_hole_score: f32,
    /// Task-space probability mass (NaN without a task space).
    pub task_mass: f32,
}

impl Default for IgStepReport {
    fn default() -> Self {
        IgStepReport::from(&StepReport::default())
    }
}

impl From<&StepReport> for IgStepReport {
    fn from(r: &StepReport) -> Self {
        IgStepReport {
            struct_size: std::mem::size_of::<IgStepReport>(),
            seq: r.seq,
            token: r.token.map_or(-1, |t| t as i64),
            step: r.step,
            regime: r.regime as u32,
            flags: r.flags,
            cycle_period: r.cycle_period,
            stop: r.stop as u32,
            entropy: r.entropy,
            entropy_norm: r.entropy_norm,
            varentropy: r.varentropy,
            log_z: r.log_z,
            p_max: r.p_max,
            margin: r.margin,
            token_potential: r.token_potential,
            temperature: r.temperature,
            void_score: r.void_score,
            black_hole_score: r.black_hole_score,
            task_mass: r.task_mass.unwrap_or(f32::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The v1 layouts, field by field (LP64). A change here breaks every compiled host.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn v1_layouts_are_frozen() {
        assert_eq!(offset_of!(IgSeqParams, seed), 8);
        assert_eq!(offset_of!(IgSeqParams, anchors), 16);
        assert_eq!(offset_of!(IgSeqParams, n_anchors), 24);
        assert_eq!(offset_of!(IgSeqParams, prompt_logits), 32);
        assert_eq!(offset_of!(IgSeqParams, n_prompt_logits), 40);
        assert_eq!(offset_of!(IgSeqParams, prompt_entropies), 48);
        assert_eq!(offset_of!(IgSeqParams, n_prompt_entropies), 56);
        assert_eq!(offset_of!(IgSeqParams, has_context_gain), 64);
        assert_eq!(offset_of!(IgSeqParams, context_gain), 68);
        assert_eq!(offset_of!(IgSeqParams, query_tokens), 72);
        assert_eq!(offset_of!(IgSeqParams, n_query_tokens), 80);

        assert_eq!(offset_of!(IgStepReport, seq), 8);
        assert_eq!(offset_of!(IgStepReport, token), 16);
        assert_eq!(offset_of!(IgStepReport, step), 24);
        assert_eq!(offset_of!(IgStepReport, regime), 28);
        assert_eq!(offset_of!(IgStepReport, flags), 32);
        assert_eq!(offset_of!(IgStepReport, cycle_period), 36);
        assert_eq!(offset_of!(IgStepReport, stop), 40);
        assert_eq!(offset_of!(IgStepReport, entropy), 44);
        assert_eq!(offset_of!(IgStepReport, temperature), 72);
        assert_eq!(offset_of!(IgStepReport, task_mass), 84);

        assert_eq!(offset_of!(IgQueryMass, h), 8);
        assert_eq!(offset_of!(IgQueryMass, m), 28);
    }
}

/// Version of the plugin table (`IgPluginV1.abi_version`) this library's host accepts.
pub const IG_PLUGIN_ABI_VERSION: u32 = 1;
/// sizeof(IgPluginV1) in version 1 (LP64): the smallest `struct_size` a host accepts.
pub const IG_PLUGIN_V1_SIZE: usize = 72;

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<IgPluginV1>() == IG_PLUGIN_V1_SIZE);

/// The table a third-party logits-processor plugin exports, version 1. A plugin is a shared
/// library exporting `const IgPluginV1 *ig_plugin_entry(void)`, returning a pointer to a table
/// that lives as long as the library. The host (the Rust API's `Plugin`, the CLI's
/// `generate --plugin`) checks `struct_size`, `abi_version` and the required functions before
/// any call, keeps the library loaded while an instance lives, and runs every instance first in
/// each step, before the field is measured (like the Rust `LogitsProcessor`).
///
/// Contract for the plugin: an instance may be called from any thread, one call at a time; it
/// never calls back into infogravity; error messages go into `err` (NUL-terminated, at most
/// `err_cap` bytes); `apply` edits the row in place and must leave it without NaN or +inf (the
/// host checks, and reports a violation as the plugin's error).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IgPluginV1 {
    /// sizeof(IgPluginV1) as the plugin was compiled.
    pub struct_size: usize,
    /// IG_PLUGIN_ABI_VERSION as the plugin was compiled.
    pub abi_version: u32,
    /// The plugin's name (static, NUL-terminated), used in every error about it.
    pub name: *const c_char,
    /// Required. An instance for a vocabulary of `vocab` tokens from a JSON configuration
    /// (NULL = the plugin's defaults); NULL on failure, with the reason in `err`.
    pub create: Option<
        unsafe extern "C" fn(
            config_json: *const c_char,
            vocab: usize,
            err: *mut c_char,
            err_cap: usize,
        ) -> *mut c_void,
    >,
    /// Required. Release an instance.
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    /// Required. Edit the `n` (= vocab) f32 logits of sequence `seq` in place; 0 on success,
    /// nonzero on failure with the reason in `err`.
    pub apply: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            seq: u64,
            logits: *mut f32,
            n: usize,
            err: *mut c_char,
            err_cap: usize,
        ) -> i32,
    >,
    /// Optional. The token `seq` emitted; 0 on success.
    pub accept: Option<unsafe extern "C" fn(instance: *mut c_void, seq: u64, token: u32) -> i32>,
    /// Optional. `seq` begins with `n` context tokens (the prompt).
    pub begin: Option<
        unsafe extern "C" fn(instance: *mut c_void, seq: u64, context: *const u32, n: usize),
    >,
    /// Optional. Forget `seq`.
    pub end: Option<unsafe extern "C" fn(instance: *mut c_void, seq: u64)>,
}

/// The symbol a plugin exports (`ig_plugin_entry`).
pub type IgPluginEntry = unsafe extern "C" fn() -> *const IgPluginV1;
