//! The exports that need no handle: versions, status text, the thread's last error,
//! configuration validation and the `*_init` functions of the versioned structs.

use std::ffi::{CStr, c_char};

use super::boundary::{Fail, boundary, last_error_ptr, slice, slice_mut, str_arg};
use super::status::IgStatus;
use super::types::*;
use crate::concept::Concept;
use crate::config::Config;
use crate::error::Error;

static VERSION_C: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("version string has an interior NUL"),
    };

/// The library version, e.g. "0.1.0". Static string; never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ig_version() -> *const c_char {
    VERSION_C.as_ptr()
}

/// The library version as (major << 16) | (minor << 8) | patch; compare with
/// IG_VERSION_NUMBER from the header you compiled against.
#[unsafe(no_mangle)]
pub extern "C" fn ig_version_number() -> u32 {
    let p = |s: &str| s.parse::<u32>().unwrap_or(0);
    (p(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
        | (p(env!("CARGO_PKG_VERSION_MINOR")) << 8)
        | p(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The ABI major version of the loaded library; equal to IG_ABI_VERSION of a compatible header.
#[unsafe(no_mangle)]
pub extern "C" fn ig_abi_version() -> u32 {
    IG_ABI_VERSION
}

/// A static description of a status code (any value; unknown codes give "unknown status").
#[unsafe(no_mangle)]
pub extern "C" fn ig_status_str(status: u32) -> *const c_char {
    IgStatus::all()
        .into_iter()
        .find(|s| *s as u32 == status)
        .map_or(c"unknown status", |s| s.as_cstr())
        .as_ptr()
}

/// The message of the last `ig_*` call on this thread if it failed, "" if it succeeded.
/// Thread-local: valid until the next `ig_*` call on this thread. Never NULL. For hosts that
/// move between threads, `ig_processor_last_error` keeps the message per handle.
#[unsafe(no_mangle)]
pub extern "C" fn ig_last_error() -> *const c_char {
    last_error_ptr()
}

/// Validate a configuration JSON string without creating a processor.
///
/// Errors: NULL_POINTER, CONFIG_PARSE, CONFIG_UNKNOWN_KEY, CONFIG_OUT_OF_RANGE.
///
/// # Safety
/// `config_json` must be NULL or a NUL-terminated string.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_config_validate(config_json: *const c_char) -> IgStatus {
    boundary(|| {
        // SAFETY: `config_json` is NULL or NUL-terminated (this function's contract).
        let s = unsafe { str_arg(config_json, "config_json", IgStatus::ConfigParse)? };
        Config::from_json(s)?;
        Ok(())
    })
}

/// Does a token's text carry content, as the content table counts it
/// (`ig_processor_set_content_tokens`; the answer-level void's first content token, the
/// null-query contrast's `until_content`)? `*is_content` = 1 when the piece holds a letter or
/// digit and its word is not an English function word ("the", "of", "is" …), else 0. `piece` is
/// `len` bytes of UTF-8, not NUL-terminated (an invalid sequence reads as U+FFFD): a host builds
/// its table from its vocabulary's pieces (the llama.cpp glue does, from
/// `llama_token_to_piece`).
///
/// Errors: NULL_POINTER (`is_content`, or `piece` with `len` > 0).
///
/// # Safety
/// `piece` NULL with `len` 0 or `len` readable bytes; `is_content` a writable `uint32_t`.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_content_piece(
    piece: *const c_char,
    len: usize,
    is_content: *mut u32,
) -> IgStatus {
    boundary(|| {
        if is_content.is_null() {
            return Err(super::boundary::null("is_content"));
        }
        // SAFETY: `piece` is NULL with len 0 or holds `len` readable bytes (contract).
        let bytes = unsafe { slice(piece.cast::<u8>(), len, "piece")? };
        let c = crate::processor::is_content_piece(&String::from_utf8_lossy(bytes));
        // SAFETY: non-NULL (checked) and writable (contract).
        unsafe { is_content.write_unaligned(c as u32) };
        Ok(())
    })
}

/// The concept bias of a direction in unembedding space (Park et al. 2024), for
/// `ig_processor_set_concept`: ℓ = mean γ(toward) − mean γ(away) over the rows γ of the
/// row-major `vocab` × `dim` unembedding (`n_away` = 0: minus the mean over every token), and
/// `out[v]` = γ_v·ℓ, standardised to mean 0 and SD 1. `out_len` must be `vocab`. Cost: two
/// passes over the matrix.
///
/// Errors: NULL_POINTER, INVALID_ARGUMENT (no `toward` tokens, a zero size, a non-finite
/// matrix, a constant result, a misaligned pointer), TOKEN_OUT_OF_RANGE, SIZE_MISMATCH
/// (`out_len` ≠ `vocab`).
///
/// # Safety
/// `unembed` `vocab`·`dim` readable floats; `toward`/`away` NULL with a zero count or that many
/// readable ids; `out` `out_len` writable floats.
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature: three (pointer, length) pairs
pub unsafe extern "C" fn ig_concept_bias(
    unembed: *const f32,
    vocab: usize,
    dim: usize,
    toward: *const u32,
    n_toward: usize,
    away: *const u32,
    n_away: usize,
    out: *mut f32,
    out_len: usize,
) -> IgStatus {
    boundary(|| {
        let cells = vocab.checked_mul(dim).ok_or_else(|| {
            Fail::new(
                IgStatus::InvalidArgument,
                format!("unembedding of {vocab} × {dim} overflows"),
            )
        })?;
        if cells == 0 {
            return Err(Fail::new(
                IgStatus::InvalidArgument,
                format!("unembedding of {vocab} × {dim} is empty"),
            ));
        }
        if out_len != vocab {
            return Err(Error::SizeMismatch {
                what: "concept bias output",
                expected: vocab,
                got: out_len,
            }
            .into());
        }
        // SAFETY: the pointers hold the counts given (this function's contract).
        let (g, t, a, o) = unsafe {
            (
                slice(unembed, cells, "unembed")?,
                slice(toward, n_toward, "toward")?,
                slice(away, n_away, "away")?,
                slice_mut(out, out_len, "out")?,
            )
        };
        let c = Concept::from_unembedding(g, dim, t, a)?;
        o.copy_from_slice(c.bias());
        Ok(())
    })
}

/// Fill `*params` with defaults (struct_size = sizeof(IgSeqParams)).
///
/// # Safety
/// `params` must be NULL (no-op) or point to a writable IgSeqParams.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_seq_params_init(params: *mut IgSeqParams) {
    if !params.is_null() && params.is_aligned() {
        // SAFETY: non-NULL, aligned, writable per the contract.
        unsafe { params.write(IgSeqParams::default()) };
    }
}

/// Fill `*report` with defaults (struct_size = sizeof(IgStepReport)).
///
/// # Safety
/// `report` must be NULL (no-op) or point to a writable IgStepReport.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_step_report_init(report: *mut IgStepReport) {
    if !report.is_null() && report.is_aligned() {
        // SAFETY: as above.
        unsafe { report.write(IgStepReport::default()) };
    }
}

/// Fill `*mass` with defaults (struct_size = sizeof(IgQueryMass), all NaN).
///
/// # Safety
/// `mass` must be NULL (no-op) or point to a writable IgQueryMass.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_query_mass_init(mass: *mut IgQueryMass) {
    if !mass.is_null() && mass.is_aligned() {
        // SAFETY: as above.
        unsafe { mass.write(IgQueryMass::default()) };
    }
}

/// Fill `*stats` with defaults (struct_size = sizeof(IgAnswerStats), no tokens, NaN).
///
/// # Safety
/// `stats` must be NULL (no-op) or point to a writable IgAnswerStats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_answer_stats_init(stats: *mut IgAnswerStats) {
    if !stats.is_null() && stats.is_aligned() {
        // SAFETY: as above.
        unsafe { stats.write(IgAnswerStats::default()) };
    }
}
