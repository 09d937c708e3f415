//! The `IgProcessor` exports. Each body is a closure that checks its arguments through the
//! `boundary` helpers (every `unsafe` call with its own reason), converts, and calls the Rust
//! API; `on_handle` runs it inside the panic boundary. (Over 600 lines on purpose: every export
//! of the processor handle, each with the contract the header prints, in the header's order.)

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use half::{bf16, f16};

use super::boundary::{
    Fail, IgProcessor, Inner, boundary, check_out, dtype_size, lock, mode, null, on_handle,
    read_versioned, slice, slice_mut, str_arg, write_opt, write_versioned,
};
use super::status::IgStatus;
use super::types::*;
use crate::Calibration;
use crate::concept::Concept;
use crate::config::Config;
use crate::error::try_reserve;
use crate::mass::{Prior, QueryInput};
use crate::probe::Probe;
use crate::processor::{ContentTable, LogitsMut, RawRow, SeqParams};
use crate::report::StepReport;

/// Create a processor for vocabulary size `vocab` (1 ..= IG_MAX_VOCAB) from a JSON
/// configuration (NULL = the `balanced` preset; keys and presets: the crate's `config`
/// module docs). On success `*out` owns the handle; release it with `ig_processor_free`.
///
/// Errors: NULL_POINTER (out), INVALID_ARGUMENT (vocab 0 or above IG_MAX_VOCAB),
/// CONFIG_PARSE, CONFIG_UNKNOWN_KEY, CONFIG_OUT_OF_RANGE, TOKEN_OUT_OF_RANGE (a configured
/// token ≥ vocab), OUT_OF_MEMORY (its buffers: 8·vocab bytes per worker thread and the
/// candidate buffers).
///
/// # Safety
/// `config_json` must be NULL or NUL-terminated; `out` must be NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_new(
    config_json: *const c_char,
    vocab: usize,
    out: *mut *mut IgProcessor,
) -> IgStatus {
    boundary(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let cfg = if config_json.is_null() {
            Config::default()
        } else {
            // SAFETY: a non-NULL `config_json` is NUL-terminated (this function's contract).
            Config::from_json(unsafe {
                str_arg(config_json, "config_json", IgStatus::ConfigParse)?
            })?
        };
        let proc = crate::processor::GravityProcessor::new(cfg, vocab)?;
        let h = Box::new(IgProcessor {
            inner: Mutex::new(Inner {
                proc,
                reports: Vec::new(),
                addrs: Vec::new(),
            }),
            error: Mutex::new(String::new()),
        });
        // SAFETY: `out` is non-NULL (checked) and writable (this function's contract).
        unsafe { out.write_unaligned(Box::into_raw(h)) };
        Ok(())
    })
}

/// Release a handle and every sequence in it. NULL is a no-op. The handle must not be used
/// afterwards. With `limits.threads` > 1 the worker threads wind down after this returns:
/// keep the library loaded (no `dlclose`) while they may still run.
///
/// # Safety
/// `p` must be NULL or a handle from `ig_processor_new` not yet freed, with no call on it in
/// progress.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_free(p: *mut IgProcessor) {
    if p.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the handle came from Box::into_raw in ig_processor_new.
        drop(unsafe { Box::from_raw(p) });
    }));
}

/// The message of the last failing call on this handle ("" if none), NUL-terminated, into
/// `buf` of `cap` bytes; the needed size (including the NUL) goes to `*needed` when it is not
/// NULL. If `cap` is smaller, nothing is written to `buf` and BUFFER_TOO_SMALL is returned.
/// Unlike `ig_last_error`, it survives the caller moving between threads; with several
/// threads failing on one handle, it holds the latest failure.
///
/// Errors: NULL_POINTER (p, or buf with cap > 0), BUFFER_TOO_SMALL.
///
/// # Safety
/// `p` a live handle; `buf` NULL or `cap` writable bytes; `needed` NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_last_error(
    p: *const IgProcessor,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> IgStatus {
    boundary(|| {
        if p.is_null() {
            return Err(null("processor"));
        }
        // SAFETY: non-NULL (checked) and live (this function's contract).
        let h = unsafe { &*p };
        let msg = h.error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // SAFETY: `buf` holds `cap` writable bytes and `needed` is NULL or writable (contract).
        unsafe { copy_string(&msg, buf, cap, needed, "last error") }
    })
}

/// Copy `s` and a NUL into a caller buffer (size query when `cap` is 0).
///
/// # Safety
/// `buf` NULL or `cap` writable bytes; `needed` NULL or writable.
unsafe fn copy_string(
    s: &str,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    what: &str,
) -> Result<(), Fail> {
    let need = s.len() + 1;
    // SAFETY: `needed` is NULL or writable (this function's contract).
    unsafe { write_opt(needed, need) };
    if cap < need {
        return Err(Fail::new(
            IgStatus::BufferTooSmall,
            format!("{what} needs {need} bytes, the buffer has {cap}"),
        ));
    }
    // SAFETY: `buf` holds `cap` writable bytes (this function's contract).
    let out = unsafe { slice_mut(buf.cast::<u8>(), cap, "buf")? };
    out[..s.len()].copy_from_slice(s.as_bytes());
    out[s.len()] = 0;
    Ok(())
}

/// Start sequence `seq`: compute M(Q) from `params` (NULL = defaults) and, if `mass_out` is not
/// NULL, write it there.
///
/// Errors: NULL_POINTER, DUPLICATE_SEQUENCE, TOO_MANY_SEQUENCES, STRUCT_TOO_SMALL (a
/// `struct_size` of 0 — use `ig_seq_params_init` — or below the v1 size), TOKEN_OUT_OF_RANGE
/// (anchor or query token ≥ V), SIZE_MISMATCH (prompt logits not P·V), NAN_LOGITS /
/// INFINITE_LOGITS (prompt logits), INVALID_ARGUMENT (negative D, bad entropies, more anchors
/// than `limits.max_anchors`, misaligned arrays).
///
/// # Safety
/// `p` must be a live handle; `params` NULL or a valid IgSeqParams whose arrays hold the stated
/// lengths; `mass_out` NULL or a writable IgQueryMass with struct_size set.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_begin(
    p: *mut IgProcessor,
    seq: u64,
    params: *const IgSeqParams,
    mass_out: *mut IgQueryMass,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        // SAFETY: `params` is NULL or a valid IgSeqParams (this function's contract).
        let sp = unsafe {
            read_versioned(
                params,
                IG_SEQ_PARAMS_V1_SIZE,
                "params",
                "ig_seq_params_init",
            )?
        };
        // SAFETY: each array holds the length stated beside it (the contract on `params`);
        // `slice` checks NULL, alignment and the byte length before building anything.
        let (anchors, query_tokens, prompt_logits, prompt_entropies) = unsafe {
            (
                slice(sp.anchors, sp.n_anchors, "params.anchors")?,
                slice(sp.query_tokens, sp.n_query_tokens, "params.query_tokens")?,
                slice(sp.prompt_logits, sp.n_prompt_logits, "params.prompt_logits")?,
                slice(
                    sp.prompt_entropies,
                    sp.n_prompt_entropies,
                    "params.prompt_entropies",
                )?,
            )
        };
        let query = QueryInput {
            prompt_logits: nonempty(prompt_logits),
            prompt_entropies: nonempty(prompt_entropies),
            context_gain: (sp.has_context_gain != 0).then_some(sp.context_gain),
            query_tokens: nonempty(query_tokens),
        };
        let out_len = if mass_out.is_null() {
            0
        } else {
            // SAFETY: a non-NULL `mass_out` has a readable struct_size (contract).
            unsafe {
                check_out(
                    mass_out,
                    IG_QUERY_MASS_V1_SIZE,
                    "mass_out",
                    "ig_query_mass_init",
                )?
            }
        };
        let seq_params = SeqParams {
            seed: sp.seed,
            anchors,
            query,
            context: &[],
        };
        let m = g.proc.begin(seq, &seq_params)?;
        if out_len > 0 {
            // SAFETY: checked by `check_out`: aligned, `out_len` writable bytes.
            unsafe { write_versioned(mass_out, &IgQueryMass::from(&m), out_len) };
        }
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// Write a batch's reports into the caller's array of `stride`-byte elements.
///
/// # Safety
/// `reports` must point to `out.len()` writable, 8-aligned elements of `stride` bytes each,
/// `stride` ≥ the v1 size.
unsafe fn write_reports(reports: *mut IgStepReport, stride: usize, out: &[StepReport]) {
    let n = stride.min(std::mem::size_of::<IgStepReport>());
    for (b, r) in out.iter().enumerate() {
        // SAFETY: element b starts b·stride bytes in, inside the caller's array; it is aligned
        // (stride is a multiple of 8) and has `n` ≤ stride writable bytes.
        unsafe {
            let dst = reports.cast::<u8>().add(b * stride).cast::<IgStepReport>();
            dst.cast::<usize>().write(stride);
            write_versioned(dst, &IgStepReport::from(r), n);
        }
    }
}

fn nonempty<T>(s: &[T]) -> Option<&[T]> {
    (!s.is_empty()).then_some(s)
}

/// A row view of a C logits buffer of `n` elements of `dtype`, after `n` was checked.
///
/// # Safety
/// As `slice_mut` for the element type `dtype` names.
unsafe fn logits<'a>(ptr: *mut c_void, dtype: u32, n: usize) -> Result<LogitsMut<'a>, Fail> {
    // SAFETY: forwarded to the caller's contract on `ptr`/`n`.
    unsafe {
        Ok(match dtype {
            IG_DTYPE_F32 => LogitsMut::F32(slice_mut(ptr.cast::<f32>(), n, "logits")?),
            IG_DTYPE_F16 => LogitsMut::F16(slice_mut(ptr.cast::<f16>(), n, "logits")?),
            _ => LogitsMut::BF16(slice_mut(ptr.cast::<bf16>(), n, "logits")?),
        })
    }
}

/// One step on one row of `n` logits of type `dtype` (IG_DTYPE_*), in mode `mode`
/// (IG_MODE_*). Writes the step's diagnostics to `*report` (struct_size set by the caller).
/// The step is provisional until `ig_processor_accept`: stepping the same position again (a
/// grammar rejection, a speculative verify) gives the same result as stepping it once.
/// IG_MODE_SAMPLE only reads `logits`; IG_MODE_LOGITS overwrites it with the final logits.
///
/// Errors: NULL_POINTER, UNKNOWN_SEQUENCE, SIZE_MISMATCH (n ≠ V), NAN_LOGITS, INFINITE_LOGITS,
/// ALL_MASKED (the row is left untouched for these three), UNSUPPORTED_DTYPE,
/// UNSUPPORTED_MODE, STRUCT_TOO_SMALL, INVALID_ARGUMENT (misaligned logits).
///
/// # Safety
/// `p` a live handle; `logits` points to `n` elements of the named type, writable, not
/// aliased during the call; `report` a writable IgStepReport with struct_size set.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_step(
    p: *mut IgProcessor,
    seq: u64,
    logits: *mut c_void,
    dtype: u32,
    n: usize,
    mode: u32,
    report: *mut IgStepReport,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        let m = self::mode(mode)?;
        dtype_size(dtype)?;
        // SAFETY: a non-NULL `report` has a readable struct_size (this function's contract).
        let out_len = unsafe {
            check_out(
                report,
                IG_STEP_REPORT_V1_SIZE,
                "report",
                "ig_step_report_init",
            )?
        };
        let v = g.proc.vocab();
        if n != v {
            return Err(Fail::new(
                IgStatus::SizeMismatch,
                format!("size mismatch: logits row: expected {v}, got {n}"),
            ));
        }
        // SAFETY: `logits` holds `n` (= V, checked) elements of `dtype` (contract).
        let row = unsafe { self::logits(logits, dtype, n)? };
        let r = g.proc.step_row(seq, row, m)?;
        // SAFETY: checked by `check_out`: aligned, `out_len` writable bytes.
        unsafe { write_versioned(report, &IgStepReport::from(&r), out_len) };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// One step on a row-major batch of `n_rows` rows × V logits (`n` = n_rows·V elements);
/// row b belongs to `seqs[b]` (distinct live ids). `reports` is an array of `n_rows`
/// IgStepReport whose stride is `reports[0].struct_size` (every element is written with it).
/// Rows run on the handle's worker pool when `limits.threads` > 1.
///
/// Atomic: every row is checked and measured before any is stepped, so on an error no report
/// is written, no row is modified and no sequence moves (the message names the failing row).
/// `n_rows` = 0 with `n` = 0 is a no-op.
///
/// Errors: as `ig_processor_step`, plus DUPLICATE_SEQUENCE (an id twice), SIZE_MISMATCH
/// (n ≠ n_rows·V, or more rows than live sequences), OUT_OF_MEMORY (the report buffer).
///
/// # Safety
/// As `ig_processor_step`, for `seqs` (n_rows ids), `logits` (n elements) and `reports`
/// (n_rows × `reports[0].struct_size` writable bytes).
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn ig_processor_step_batch(
    p: *mut IgProcessor,
    seqs: *const u64,
    n_rows: usize,
    logits: *mut c_void,
    dtype: u32,
    n: usize,
    mode: u32,
    reports: *mut IgStepReport,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        let m = self::mode(mode)?;
        dtype_size(dtype)?;
        let (v, live) = (g.proc.vocab(), g.proc.live());
        if n_rows > live {
            return Err(Fail::new(
                IgStatus::SizeMismatch,
                format!("n_rows = {n_rows} exceeds the {live} live sequences"),
            ));
        }
        // n_rows ≤ live ≤ 2^20 and V ≤ 2^24: the product cannot overflow.
        if n != n_rows * v {
            return Err(Fail::new(
                IgStatus::SizeMismatch,
                format!(
                    "size mismatch: batch logits: expected n_rows × V = {}, got {n}",
                    n_rows * v
                ),
            ));
        }
        if n_rows == 0 {
            return Ok(());
        }
        // SAFETY: `seqs` holds `n_rows` ids (contract); `slice` checks NULL and alignment.
        let ids = unsafe { slice(seqs, n_rows, "seqs")? };
        // SAFETY: a non-NULL `reports` has a readable struct_size (contract).
        unsafe {
            check_out(
                reports,
                IG_STEP_REPORT_V1_SIZE,
                "reports[0]",
                "ig_step_report_init",
            )?
        };
        // SAFETY: checked just above: non-NULL, aligned, readable; its value is the caller's
        // element size, within [v1 size, IG_MAX_STRUCT_SIZE].
        let stride = unsafe { reports.cast::<usize>().read() };
        if stride % std::mem::align_of::<IgStepReport>() != 0 {
            return Err(Fail::new(
                IgStatus::StructTooSmall,
                format!("reports[0].struct_size = {stride} is not a multiple of 8"),
            ));
        }
        // SAFETY: `logits` holds `n` (= n_rows·V, checked) elements of `dtype` (contract).
        let row = unsafe { self::logits(logits, dtype, n)? };
        let inner = &mut *g;
        inner.reports.clear();
        try_reserve(&mut inner.reports, n_rows, "batch reports")?;
        inner.reports.resize(n_rows, StepReport::default());
        let out = &mut inner.reports;
        match row {
            LogitsMut::F32(r) => inner.proc.step_batch(ids, r, m, out)?,
            LogitsMut::F16(r) => inner.proc.step_batch(ids, r, m, out)?,
            LogitsMut::BF16(r) => inner.proc.step_batch(ids, r, m, out)?,
        }
        // SAFETY: `reports` holds n_rows elements of `stride` bytes (contract), the stride
        // is checked above, and each element gets at most min(stride, sizeof) bytes.
        unsafe { write_reports(reports, stride, out) };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// One step on `n_rows` rows that are not one contiguous block: `rows[b]` points to the V
/// (= `n`) logits of `seqs[b]`, anywhere in memory (a subset of the host's own batch; for a
/// strided layout pass base + b·stride). Used in place, on the worker pool; otherwise as
/// `ig_processor_step_batch`, atomic included. The rows must not overlap.
///
/// Errors: as `ig_processor_step_batch`; INVALID_ARGUMENT (a NULL, misaligned or overlapping
/// row); SIZE_MISMATCH (n ≠ V).
///
/// # Safety
/// `p` a live handle; `seqs` and `rows` hold `n_rows` entries; each row points to `n`
/// writable elements of `dtype`, not accessed by anything else during the call; `reports`
/// (n_rows × `reports[0].struct_size` writable bytes).
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn ig_processor_step_rows(
    p: *mut IgProcessor,
    seqs: *const u64,
    n_rows: usize,
    rows: *const *mut c_void,
    dtype: u32,
    n: usize,
    mode: u32,
    reports: *mut IgStepReport,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        let m = self::mode(mode)?;
        let size = dtype_size(dtype)?;
        let (v, live) = (g.proc.vocab(), g.proc.live());
        if n != v {
            return Err(Fail::new(
                IgStatus::SizeMismatch,
                format!("size mismatch: logits row: expected {v}, got {n}"),
            ));
        }
        if n_rows > live {
            return Err(Fail::new(
                IgStatus::SizeMismatch,
                format!("n_rows = {n_rows} exceeds the {live} live sequences"),
            ));
        }
        if n_rows == 0 {
            return Ok(());
        }
        // SAFETY: `seqs` and `rows` hold `n_rows` entries (contract); `slice` checks NULL
        // and alignment first.
        let (ids, ptrs) = unsafe { (slice(seqs, n_rows, "seqs")?, slice(rows, n_rows, "rows")?) };
        // The rows must be non-NULL, aligned, and pairwise disjoint: sort their addresses.
        let inner = &mut *g;
        inner.addrs.clear();
        try_reserve(&mut inner.addrs, n_rows, "row addresses")?;
        for (b, &r) in ptrs.iter().enumerate() {
            if r.is_null() || !(r as usize).is_multiple_of(size) {
                return Err(Fail::new(
                    IgStatus::InvalidArgument,
                    format!("rows[{b}] is NULL or misaligned"),
                ));
            }
            inner.addrs.push(r as usize);
        }
        inner.addrs.sort_unstable();
        if inner.addrs.windows(2).any(|w| w[1] - w[0] < v * size) {
            return Err(Fail::new(
                IgStatus::InvalidArgument,
                "two rows overlap (each needs V elements of its own)",
            ));
        }
        // SAFETY: checked just above (non-NULL, aligned); readable per the contract.
        unsafe {
            check_out(
                reports,
                IG_STEP_REPORT_V1_SIZE,
                "reports[0]",
                "ig_step_report_init",
            )?
        };
        // SAFETY: as in `ig_processor_step_batch`.
        let stride = unsafe { reports.cast::<usize>().read() };
        if stride % std::mem::align_of::<IgStepReport>() != 0 {
            return Err(Fail::new(
                IgStatus::StructTooSmall,
                format!("reports[0].struct_size = {stride} is not a multiple of 8"),
            ));
        }
        inner.reports.clear();
        try_reserve(&mut inner.reports, n_rows, "batch reports")?;
        inner.reports.resize(n_rows, StepReport::default());
        let out = &mut inner.reports;
        // `RawRow` is a transparent wrapper of the pointer: the caller's array, as is.
        let raw: &[RawRow] =
            // SAFETY: `RawRow` is `repr(transparent)` over `*mut c_void`; same length.
            unsafe { std::slice::from_raw_parts(ptrs.as_ptr().cast::<RawRow>(), ptrs.len()) };
        // SAFETY: every row holds V elements of `dtype` (contract), non-NULL, aligned and
        // disjoint (checked above), and the handle's lock keeps other calls out.
        unsafe {
            match dtype {
                IG_DTYPE_F32 => inner.proc.step_raw_rows::<f32>(ids, raw, m, out)?,
                IG_DTYPE_F16 => inner.proc.step_raw_rows::<f16>(ids, raw, m, out)?,
                _ => inner.proc.step_raw_rows::<bf16>(ids, raw, m, out)?,
            }
        }
        // SAFETY: as in `ig_processor_step_batch`.
        unsafe { write_reports(reports, stride, out) };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// Start sequence `dst` as a copy of `src` in every respect (position, regimes, sampling
/// stream, loop history, query, a pending step); the two then evolve independently. For
/// llama.cpp's sampler `clone`, speculative decoding and beam search.
///
/// Errors: NULL_POINTER, UNKNOWN_SEQUENCE (src), DUPLICATE_SEQUENCE (dst is live),
/// TOO_MANY_SEQUENCES.
///
/// # Safety
/// `p` must be a live handle.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_fork(p: *mut IgProcessor, src: u64, dst: u64) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        unsafe { lock(p)? }.proc.fork(src, dst)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// End every live sequence (for engines that have no per-sequence end). The number ended goes
/// to `*ended` when it is not NULL (no alignment needed). Errors: NULL_POINTER (p).
///
/// # Safety
/// `p` a live handle; `ended` NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_end_all(p: *mut IgProcessor, ended: *mut usize) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let n = unsafe { lock(p)? }.proc.end_all();
        // SAFETY: `ended` is NULL or writable (contract).
        unsafe { write_opt(ended, n) };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// End every sequence not begun, stepped or accepted during the last `idle` step calls
/// (`ig_processor_step`, `_step_batch`, `_step_rows`) on this handle: for engines that recycle
/// sequence slots without telling (vLLM's model runner v2, SGLang). The number ended goes to
/// `*ended` when it is not NULL. Errors: NULL_POINTER (p).
///
/// # Safety
/// `p` a live handle; `ended` NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_sweep(
    p: *mut IgProcessor,
    idle: u64,
    ended: *mut usize,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let n = unsafe { lock(p)? }.proc.sweep(idle);
        // SAFETY: `ended` is NULL or writable (contract).
        unsafe { write_opt(ended, n) };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// The host emitted `token` for `seq`: commits the last step's proposal and feeds loop
/// detection and the surprisal trend. Tokens accepted before the sequence's first step are
/// its query instead (a host priming the sampler with the prompt, as llama-server does): they
/// join N(Q), and M(Q) is recomputed before the first step.
///
/// Errors: NULL_POINTER, UNKNOWN_SEQUENCE, TOKEN_OUT_OF_RANGE.
///
/// # Safety
/// `p` must be a live handle.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_accept(
    p: *mut IgProcessor,
    seq: u64,
    token: u32,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        g.proc.accept(seq, token)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// The tokens `seq` must drop now to return to where the copy its last step advised rewinding
/// began, into `*n`: read it when a report carries IG_FLAG_ROLLBACK (`escape.rollback`) — the
/// copy so far before the step's token is accepted, one more after (llama.cpp's
/// `llama_sampler_sample` accepts at once); 0 when the last step advised nothing. Then drop
/// them from the KV cache (llama.cpp: `llama_memory_seq_rm`) and call
/// `ig_processor_rollback(p, seq, *n)`.
///
/// Errors: NULL_POINTER, UNKNOWN_SEQUENCE.
///
/// # Safety
/// `p` must be a live handle; `n` NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_rollback_advice(
    p: *mut IgProcessor,
    seq: u64,
    n: *mut u32,
) -> IgStatus {
    let body = || {
        if n.is_null() {
            return Err(null("n"));
        }
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let g = unsafe { lock(p)? };
        let k = g.proc.rollback_advice(seq)?;
        // SAFETY: `n` is non-NULL and writable (contract).
        unsafe { n.write(k) };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// Rewind `seq` by its last `n` accepted tokens (a host that truncated its KV cache: llama.cpp
/// `llama_memory_seq_rm`): its state returns to what it was before them, and the pending step
/// is discarded. When the rewind lands where the copy the last step advised rewinding began
/// (`n` = `ig_processor_rollback_advice`), the token that began it is masked when that
/// position is stepped again. Other rewinds (a speculative draft rejected) ban nothing. `n` = 0
/// does nothing.
///
/// Errors: NULL_POINTER, UNKNOWN_SEQUENCE, INVALID_ARGUMENT (`n` beyond the tokens that can be
/// rewound: at most `escape.rollback`, none before the first step or a reset; or a host
/// processor in the chain that cannot rewind). Nothing changes on error.
/// (`IgStepReport` is frozen at version 1: the advised count comes from
/// `ig_processor_rollback_advice`.)
///
/// # Safety
/// `p` must be a live handle.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_rollback(p: *mut IgProcessor, seq: u64, n: u32) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        g.proc.rollback(seq, n)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// End sequence `seq`, freeing its slot. Errors: NULL_POINTER, UNKNOWN_SEQUENCE.
///
/// # Safety
/// `p` must be a live handle.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_end(p: *mut IgProcessor, seq: u64) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        g.proc.end(seq)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// Reset `seq` to its state right after begin (same seed, anchors and mass).
/// Errors: NULL_POINTER, UNKNOWN_SEQUENCE.
///
/// # Safety
/// `p` must be a live handle.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_reset(p: *mut IgProcessor, seq: u64) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        g.proc.reset(seq)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// The body of the `ig_processor_load_*` functions: the file at `path` is read and checked by
/// `read` before the handle is locked (other calls on it go on meanwhile), then handed to the
/// processor by `set`.
///
/// # Safety
/// `p` NULL or a live handle; `path` NULL or a NUL-terminated string.
unsafe fn load_file<T>(
    p: *mut IgProcessor,
    path: *const c_char,
    read: impl FnOnce(&std::path::Path) -> crate::Result<T>,
    set: impl FnOnce(&mut crate::GravityProcessor, T) -> crate::Result<()>,
) -> IgStatus {
    let body = || {
        if p.is_null() {
            return Err(null("processor"));
        }
        // SAFETY: `path` is NULL or a NUL-terminated string (contract).
        let path = unsafe { str_arg(path, "path", IgStatus::InvalidArgument)? };
        let loaded = read(std::path::Path::new(path))?;
        // SAFETY: `p` is a live handle (contract).
        set(&mut unsafe { lock(p)? }.proc, loaded)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (contract).
    unsafe { on_handle(p, body) }
}

/// Load a Prior file (format in the crate docs) for N(Q). Applies to sequences begun after.
/// The file is read and checked before the handle is locked (other calls on it go on), and
/// only a regular file of at most 64 MiB + 64 KiB is read.
///
/// Errors: NULL_POINTER, IO (missing, unreadable, not a regular file, too large),
/// CORRUPT_FILE, SIZE_MISMATCH (its vocabulary ≠ V).
///
/// # Safety
/// `p` a live handle; `path` a NUL-terminated string.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_load_prior(
    p: *mut IgProcessor,
    path: *const c_char,
) -> IgStatus {
    // SAFETY: forwarded contract.
    unsafe { load_file(p, path, Prior::load, |g, x| g.set_prior(Some(x))) }
}

/// Load a calibration file (fitted void weights, M(Q) standardisation). Read and checked
/// before the handle is locked; only a regular file of at most 1 MiB is read.
///
/// Errors: NULL_POINTER, IO (missing, unreadable, not a regular file, too large),
/// CORRUPT_FILE.
///
/// # Safety
/// `p` a live handle; `path` a NUL-terminated string.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_load_calibration(
    p: *mut IgProcessor,
    path: *const c_char,
) -> IgStatus {
    // SAFETY: forwarded contract.
    unsafe {
        load_file(p, path, Calibration::load, |g, x| {
            g.set_calibration(Some(x));
            Ok(())
        })
    }
}

/// The answer-level aggregates of `seq` over its tokens accepted so far (read them before
/// `ig_processor_end`). Writes `min(out->struct_size, sizeof(IgAnswerStats))` bytes.
///
/// Errors: NULL_POINTER, STRUCT_TOO_SMALL (`struct_size` 0 — use `ig_answer_stats_init` — or
/// below the v1 size), INVALID_ARGUMENT (misaligned), UNKNOWN_SEQUENCE.
///
/// # Safety
/// `p` a live handle; `out` NULL or a writable IgAnswerStats with `struct_size` set.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_answer(
    p: *const IgProcessor,
    seq: u64,
    out: *mut IgAnswerStats,
) -> IgStatus {
    let body = || {
        if p.is_null() {
            return Err(null("processor"));
        }
        // SAFETY: a non-NULL `out` has a readable struct_size (contract).
        let n = unsafe { check_out(out, IG_ANSWER_STATS_V1_SIZE, "out", "ig_answer_stats_init")? };
        // SAFETY: `p` is a live handle (this function's contract).
        let stats = unsafe { lock(p)? }.proc.answer(seq)?;
        // SAFETY: `out` is checked: non-NULL, aligned, `n` writable bytes.
        unsafe { write_versioned(out, &IgAnswerStats::from(&stats), n) };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// The hidden-state probe's values for `seq` over its tokens accepted so far: `*first`, its
/// value at the first step (the hidden state before the answer), and `*mean`, its mean over the
/// answer (the answer's mean hidden state); NaN without a probe, before the first step, or
/// where a probe token's logit was not finite. Either pointer may be NULL. (`IgAnswerStats` is
/// frozen at version 1: the probe's values come from here.)
///
/// Errors: NULL_POINTER (p), UNKNOWN_SEQUENCE.
///
/// # Safety
/// `p` a live handle; `first`, `mean` NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_answer_probe(
    p: *const IgProcessor,
    seq: u64,
    first: *mut f32,
    mean: *mut f32,
) -> IgStatus {
    let body = || {
        if p.is_null() {
            return Err(null("processor"));
        }
        // SAFETY: `p` is a live handle (this function's contract).
        let stats = unsafe { lock(p)? }.proc.answer(seq)?;
        // SAFETY: each is NULL or writable (contract).
        unsafe {
            write_opt(first, stats.probe_first);
            write_opt(mean, stats.probe_mean);
        }
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// The answer-level void of `seq` over its tokens accepted so far: `*void_score` = P(the answer
/// is wrong) by the processor's answer weights (the config's `answer` section, or the loaded
/// calibration's; docs/DESIGN.md §1 "Regimes"); NaN before the first token or where a weighted
/// input is unknown (e.g. a probe weight without a probe). Read it before `ig_processor_end`.
/// (`IgAnswerStats` is frozen at version 1: the score comes from here.)
///
/// Errors: NULL_POINTER (p, void_score), UNKNOWN_SEQUENCE.
///
/// # Safety
/// `p` a live handle; `void_score` NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_answer_void(
    p: *const IgProcessor,
    seq: u64,
    void_score: *mut f32,
) -> IgStatus {
    let body = || {
        if p.is_null() {
            return Err(null("processor"));
        }
        if void_score.is_null() {
            return Err(null("void_score"));
        }
        // SAFETY: `p` is a live handle (this function's contract).
        let stats = unsafe { lock(p)? }.proc.answer(seq)?;
        // SAFETY: `void_score` is non-NULL and writable (contract).
        unsafe { void_score.write_unaligned(stats.void) };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// Set the hidden-state probe read at every step: `bias + Σ weights[k]·z[tokens[k]]` on the
/// row's raw logits — a linear probe θ·ĥ of the final hidden state, since z = Γh (written by
/// `infogravity eval qa --hidden` as `probe.json`; `ig_processor_load_probe` reads one). `n`
/// terms, each token < V, weights and bias finite; copied. NULL pointers with `n` = 0 clear it.
/// Applies from the next step; `n` multiply-adds per step.
///
/// Errors: NULL_POINTER (p, or `tokens`/`weights` with n > 0), INVALID_ARGUMENT (a token ≥ V,
/// more than V terms, a non-finite number, a misaligned pointer).
///
/// # Safety
/// `p` a live handle; `tokens` and `weights` NULL or `n` readable elements each.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_set_probe(
    p: *mut IgProcessor,
    tokens: *const u32,
    weights: *const f32,
    n: usize,
    bias: f32,
) -> IgStatus {
    let body = || {
        if p.is_null() {
            return Err(null("processor"));
        }
        // SAFETY: `p` is a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        let probe = if tokens.is_null() && weights.is_null() && n == 0 {
            None
        } else {
            // SAFETY: `tokens` and `weights` are `n` readable elements (contract); NULL with
            // n > 0 is refused.
            let (t, w) = unsafe { (slice(tokens, n, "tokens")?, slice(weights, n, "weights")?) };
            Some(Probe::new(g.proc.vocab(), t, w, bias)?)
        };
        g.proc.set_probe(probe)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// Load a probe file (`probe.json` of `infogravity eval qa --hidden`, format in the Rust docs
/// of `infogravity::probe`), read and checked before the handle is locked; only a regular file
/// of at most 16 MiB is read. Its vocabulary must be the processor's.
///
/// Errors: NULL_POINTER, IO (missing, unreadable, not a regular file, too large),
/// CORRUPT_FILE, SIZE_MISMATCH (another vocabulary).
///
/// # Safety
/// `p` a live handle; `path` a NUL-terminated string.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_load_probe(
    p: *mut IgProcessor,
    path: *const c_char,
) -> IgStatus {
    // SAFETY: forwarded contract.
    unsafe { load_file(p, path, Probe::load, |g, x| g.set_probe(Some(x))) }
}

/// Set the content table of the answer aggregates: `content[t]` non-zero when token t carries
/// content (words, names, numbers), zero for function words, whitespace and punctuation;
/// `n` must be the vocabulary size. NULL with `n` = 0 clears it (every token is content).
/// Applies to tokens accepted from now on. Built once per tokenizer by the host.
///
/// Errors: NULL_POINTER (p, or `content` with n > 0), SIZE_MISMATCH (n ≠ V).
///
/// # Safety
/// `p` a live handle; `content` NULL or `n` readable bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_set_content_tokens(
    p: *mut IgProcessor,
    content: *const u8,
    n: usize,
) -> IgStatus {
    let body = || {
        if p.is_null() {
            return Err(null("processor"));
        }
        let table = if content.is_null() && n == 0 {
            None
        } else {
            // SAFETY: `content` holds `n` readable bytes (contract); NULL is refused.
            let bytes = unsafe { slice(content, n, "content")? };
            Some(ContentTable::from_bytes(bytes))
        };
        // SAFETY: `p` is a live handle (this function's contract).
        unsafe { lock(p)? }.proc.set_content_tokens(table)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// A concept from a C (pointer, length) pair: NULL with `n` = 0 is None (clear); with its
/// own tokens from a second pair (NULL with 0: none; refused without a bias). `n` must be
/// `vocab`, checked before the tokens are read against it.
///
/// # Safety
/// `bias` NULL or `n` readable, aligned floats; `tokens` NULL or `n_tokens` readable ids.
unsafe fn concept_arg(
    bias: *const f32,
    n: usize,
    tokens: *const u32,
    n_tokens: usize,
    vocab: usize,
) -> Result<Option<Concept>, Fail> {
    // SAFETY: forwarded contract; NULL with n_tokens > 0 is refused.
    let t = unsafe { slice(tokens, n_tokens, "tokens")? };
    if bias.is_null() && n == 0 {
        if !t.is_empty() {
            return Err(crate::Error::InvalidArgument(
                "concept tokens without a concept bias (NULL bias clears the concept)".into(),
            )
            .into());
        }
        return Ok(None);
    }
    // SAFETY: forwarded contract; NULL with n > 0 is refused.
    let b = unsafe { slice(bias, n, "bias")? };
    if n != vocab {
        return Err(crate::Error::SizeMismatch {
            what: "concept bias",
            expected: vocab,
            got: n,
        }
        .into());
    }
    Ok(Some(Concept::from_bias(b)?.with_tokens(t)?))
}

/// Set the concept every sequence is tilted toward (the `concept` configuration section: while
/// the void score v ≥ `concept.min_void`, the row becomes z + α·b with α = min(λ·v, the largest
/// α whose KL stays ≤ `concept.max_kl`); IG_FLAG_CONCEPT reports it). `bias` holds one finite logit bias per token (`n` = V), e.g. Γ·ℓ for a direction ℓ in
/// unembedding space (`ig_concept_bias` computes it); it is copied and standardised to mean 0,
/// SD 1, so λ is in SDs. NULL with `n` = 0 clears it. A sequence's own concept
/// (`ig_processor_set_seq_concept`) takes precedence.
///
/// Errors: NULL_POINTER (p, or `bias` with n > 0), SIZE_MISMATCH (n ≠ V), INVALID_ARGUMENT (a
/// non-finite or constant bias, a misaligned pointer), OUT_OF_MEMORY.
///
/// # Safety
/// `p` a live handle; `bias` NULL or `n` readable floats.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_set_concept(
    p: *mut IgProcessor,
    bias: *const f32,
    n: usize,
) -> IgStatus {
    // SAFETY: this function's contract, with no tokens.
    unsafe { ig_processor_set_concept_typed(p, bias, n, std::ptr::null(), 0) }
}

/// Set the concept of one live sequence, as `ig_processor_set_concept`; NULL with `n` = 0
/// clears it (the sequence follows the processor's again). Kept by `ig_processor_reset`,
/// copied by `ig_processor_fork`. Memory: 4 bytes × V for as long as the sequence lives.
///
/// Errors: as `ig_processor_set_concept`, and UNKNOWN_SEQUENCE.
///
/// # Safety
/// `p` a live handle; `bias` NULL or `n` readable floats.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_set_seq_concept(
    p: *mut IgProcessor,
    seq: u64,
    bias: *const f32,
    n: usize,
) -> IgStatus {
    // SAFETY: this function's contract, with no tokens.
    unsafe { ig_processor_set_seq_concept_typed(p, seq, bias, n, std::ptr::null(), 0) }
}

/// As `ig_processor_set_concept` (NULL `bias` with `n` = 0 clears), with the concept's own
/// tokens: the answer type it stands for (e.g. the first token of every capital's name), which
/// the `concept.max_type_mass` gate reads — a step whose probability already lies on them is
/// left alone. `tokens` NULL with `n_tokens` = 0: none (as `ig_processor_set_concept`); they are
/// copied, sorted and made distinct (4 bytes each).
///
/// Errors: as `ig_processor_set_concept`; NULL_POINTER (`tokens` with n_tokens > 0),
/// TOKEN_OUT_OF_RANGE (a token ≥ V; checked after SIZE_MISMATCH), INVALID_ARGUMENT (tokens
/// without a bias, a misaligned `tokens`). Memory: 4 bytes per token given while it is copied,
/// 4 per distinct token kept.
///
/// # Safety
/// `p` a live handle; `bias` NULL or `n` readable floats; `tokens` NULL or `n_tokens` readable
/// ids.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_set_concept_typed(
    p: *mut IgProcessor,
    bias: *const f32,
    n: usize,
    tokens: *const u32,
    n_tokens: usize,
) -> IgStatus {
    let body = || {
        if p.is_null() {
            return Err(null("processor"));
        }
        // SAFETY: `p` is a live handle (this function's contract).
        let mut h = unsafe { lock(p)? };
        // SAFETY: `bias` and `tokens` are NULL or that many readable values (contract).
        let c = unsafe { concept_arg(bias, n, tokens, n_tokens, h.proc.vocab())? };
        h.proc.set_concept(c)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// As `ig_processor_set_seq_concept`, with the concept's own tokens (see
/// `ig_processor_set_concept_typed`).
///
/// Errors: as `ig_processor_set_concept_typed`, and UNKNOWN_SEQUENCE.
///
/// # Safety
/// As `ig_processor_set_concept_typed`.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_set_seq_concept_typed(
    p: *mut IgProcessor,
    seq: u64,
    bias: *const f32,
    n: usize,
    tokens: *const u32,
    n_tokens: usize,
) -> IgStatus {
    let body = || {
        if p.is_null() {
            return Err(null("processor"));
        }
        // SAFETY: `p` is a live handle (this function's contract).
        let mut h = unsafe { lock(p)? };
        // SAFETY: `bias` and `tokens` are NULL or that many readable values (contract).
        let c = unsafe { concept_arg(bias, n, tokens, n_tokens, h.proc.vocab())? };
        h.proc.set_sequence_concept(seq, c)?;
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// Give the logits of sequence `seq`'s next step under a content-free query, for the
/// null-query contrast (the `contrast` configuration section; domain-conditional PMI against
/// attractor answers): the host runs a second sequence on the same prompt with its content
/// removed (the subject replaced by "N/A"), feeds it the same tokens, and passes its row of `n`
/// (= V) logits of type `dtype` here before `ig_processor_step`. The step at this position
/// (stepped again too) reorders the tokens within `contrast.plausibility` of its best by
/// log p − β·log q, q the null row's distribution, and IG_FLAG_CONTRAST reports it — under
/// `contrast.prior_top_only` (the default) only where its best token is also the null row's
/// (an attractor candidate); accepting a token, a rollback or a reset drops the row. Under
/// `contrast.until_content` (the default) a row given after the sequence's first content token
/// is not used. The row is only read.
///
/// Errors: NULL_POINTER, UNKNOWN_SEQUENCE, SIZE_MISMATCH (n ≠ V), NAN_LOGITS,
/// INFINITE_LOGITS, ALL_MASKED, UNSUPPORTED_DTYPE, INVALID_ARGUMENT (misaligned logits),
/// OUT_OF_MEMORY; on error nothing changes. Memory: 4 bytes × V for the sequence, kept until it
/// ends, and per worker thread.
///
/// # Safety
/// `p` a live handle; `logits` points to `n` readable elements of the named type.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_set_contrast(
    p: *mut IgProcessor,
    seq: u64,
    logits: *const c_void,
    dtype: u32,
    n: usize,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let mut g = unsafe { lock(p)? };
        dtype_size(dtype)?;
        let v = g.proc.vocab();
        if n != v {
            return Err(Fail::new(
                IgStatus::SizeMismatch,
                format!("size mismatch: null-query row: expected {v}, got {n}"),
            ));
        }
        // SAFETY: `logits` holds `n` (= V, checked) readable elements of `dtype` (contract);
        // `slice` checks NULL and alignment.
        unsafe {
            match dtype {
                IG_DTYPE_F32 => g
                    .proc
                    .set_contrast(seq, slice(logits.cast::<f32>(), n, "logits")?),
                IG_DTYPE_F16 => g
                    .proc
                    .set_contrast(seq, slice(logits.cast::<f16>(), n, "logits")?),
                _ => g
                    .proc
                    .set_contrast(seq, slice(logits.cast::<bf16>(), n, "logits")?),
            }?
        };
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// The handle's vocabulary size and number of live sequences (either out pointer may be NULL;
/// no alignment needed). Errors: NULL_POINTER (p).
///
/// # Safety
/// `p` a live handle; out pointers NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_info(
    p: *const IgProcessor,
    vocab_out: *mut usize,
    live_out: *mut usize,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let g = unsafe { lock(p)? };
        // SAFETY: each out pointer is NULL or writable (contract); no alignment needed.
        unsafe {
            write_opt(vocab_out, g.proc.vocab());
            write_opt(live_out, g.proc.live());
        }
        Ok(())
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// The configuration in force as JSON, NUL-terminated, into `buf` of `cap` bytes. The needed
/// size (including the NUL) is written to `*needed` when it is not NULL; if `cap` is smaller,
/// nothing is written to `buf` and BUFFER_TOO_SMALL is returned. `buf` may be NULL when
/// `cap` is 0 (a size query).
///
/// Errors: NULL_POINTER, BUFFER_TOO_SMALL.
///
/// # Safety
/// `p` a live handle; `buf` NULL or `cap` writable bytes; `needed` NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ig_processor_config_json(
    p: *const IgProcessor,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> IgStatus {
    let body = || {
        // SAFETY: `p` is NULL or a live handle (this function's contract).
        let json = unsafe { lock(p)? }.proc.config().to_json();
        // SAFETY: `buf` holds `cap` writable bytes and `needed` is NULL or writable (contract).
        unsafe { copy_string(&json, buf, cap, needed, "config JSON") }
    };
    // SAFETY: `p` is NULL or a live handle (this function's contract).
    unsafe { on_handle(p, body) }
}

/// Hooks for the crate's own tests; not part of the C API (not exported, not in the header).
#[cfg(feature = "testing")]
pub mod testing {
    use super::*;

    /// Panic inside the boundary while holding the handle's lock, as a bug would.
    ///
    /// # Safety
    /// `p` must be a live handle.
    pub unsafe fn panic_inside(p: *mut IgProcessor) -> IgStatus {
        let body = || {
            // SAFETY: `p` is a live handle (this function's contract).
            let _guard = unsafe { lock(p)? };
            panic!("deliberate test panic");
        };
        // SAFETY: as above.
        unsafe { on_handle(p, body) }
    }
}
