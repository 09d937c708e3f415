//! The exports that need no handle: versions, status text, the thread's last error,
//! configuration validation and the `*_init` functions of the versioned structs.

use std::ffi::{CStr, c_char};

use super::boundary::{boundary, last_error_ptr, str_arg};
use super::status::IgStatus;
use super::types::*;
use crate::config::Config;

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
