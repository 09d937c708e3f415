//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and the stable smoke test
//! `tests/fuzz_smoke.rs`. Each takes arbitrary bytes and must never panic, abort, or let a
//! panic reach the C boundary (`IG_STATUS_PANIC` is a failure here).
//!
//! The C entry points are fed arbitrary logits bytes (any bit pattern: NaN, ±inf, subnormals),
//! sizes, dtypes, modes, sequence ids and token ids. Pointers passed are always real buffers of
//! at least the stated length: lying about a length is outside the C contract, not a bug.

use std::ffi::CString;
use std::ptr;

use crate::ffi::*;

/// A little reader over the fuzz input.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn assert_no_panic(st: IgStatus) {
    assert_ne!(st, IgStatus::Panic, "a panic reached the C boundary");
}

/// Configuration parsing: the Rust parser and `ig_config_validate`.
pub fn config(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::Config::from_json(s);
    }
    if let Ok(c) = CString::new(data) {
        // SAFETY: a valid NUL-terminated string.
        assert_no_panic(unsafe { ig_config_validate(c.as_ptr()) });
    }
}

/// Prior and calibration file parsers.
pub fn files(data: &[u8]) {
    let _ = crate::Prior::from_bytes(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::Calibration::from_json(s);
    }
}

const PRESETS: [&str; 6] = [
    r#"{"preset":"neutral"}"#,
    r#"{"preset":"balanced"}"#,
    r#"{"preset":"factual","sampler":{"top_k":3,"top_p":0.8}}"#,
    r#"{"preset":"creative","temperature":{"response":"edt"}}"#,
    r#"{"temperature":{"base":0},"abstain":{"enabled":true,"target":0.9,"tokens":[0,1]}}"#,
    r#"{"sampler":{"window":0.5,"max_candidates":2},"limits":{"threads":2},"black_hole":{"max_period":2,"attractors":[[0,0]]},"task_space":{"tokens":[0]}}"#,
];

/// The C entry points driven by a byte-coded program of calls.
pub fn c_api(data: &[u8]) {
    let mut b = Bytes(data);
    let vocab = (b.u16() % 600) as usize; // 0 is a legal (rejected) input too
    let cfg = CString::new(PRESETS[b.u8() as usize % PRESETS.len()]).expect("no NUL");
    let mut p = ptr::null_mut();
    // SAFETY: valid string and out pointer.
    let st = unsafe { ig_processor_new(cfg.as_ptr(), vocab, &mut p) };
    assert_no_panic(st);
    if st != IgStatus::Ok {
        assert!(p.is_null(), "out written on failure");
        return;
    }
    let mut reports = vec![IgStepReport::default(); 4];
    for _ in 0..64 {
        if b.0.is_empty() {
            break;
        }
        let seq = (b.u8() % 4) as u64;
        let st = match b.u8() % 6 {
            0 => {
                let anchors: Vec<u32> = (0..b.u8() % 4).map(|_| b.u16() as u32).collect();
                let query: Vec<u32> = (0..b.u8() % 4).map(|_| b.u16() as u32).collect();
                let params = IgSeqParams {
                    struct_size: if b.u8() % 8 == 0 { b.u8() as usize } else { 0 },
                    seed: b.u32() as u64,
                    anchors: anchors.as_ptr(),
                    n_anchors: anchors.len(),
                    has_context_gain: b.u8() as u32 % 2,
                    context_gain: f32::from_bits(b.u32()),
                    query_tokens: query.as_ptr(),
                    n_query_tokens: query.len(),
                    ..IgSeqParams::default()
                };
                let mut mass = IgQueryMass::default();
                // SAFETY: live handle, valid struct and arrays.
                unsafe { ig_processor_begin(p, seq, &params, &mut mass) }
            }
            1 | 2 => {
                let dtype = b.u8() as u32 % 4; // 3 is unknown
                let mode = b.u8() as u32 % 3; // 2 is unknown
                let elem = if dtype == IG_DTYPE_F32 { 4 } else { 2 };
                let n = if b.u8() % 8 == 0 {
                    b.u16() as usize % 700
                } else {
                    vocab
                };
                let raw = b.take(n * elem).to_vec();
                // Aligned storage for the row, filled with the fuzz bytes (zero-padded).
                let mut row = vec![0u32; (n * elem).div_ceil(4)];
                // SAFETY: `row` holds at least raw.len() bytes.
                unsafe {
                    ptr::copy_nonoverlapping(raw.as_ptr(), row.as_mut_ptr().cast::<u8>(), raw.len())
                };
                // SAFETY: live handle; `row` holds n elements of the named type.
                let st = unsafe {
                    ig_processor_step(
                        p,
                        seq,
                        row.as_mut_ptr().cast(),
                        dtype,
                        n,
                        mode,
                        &mut reports[0],
                    )
                };
                if st == IgStatus::Ok && mode == IG_MODE_SAMPLE {
                    let t = reports[0].token;
                    assert!(t >= -1 && t < vocab as i64, "token {t} out of range");
                }
                st
            }
            3 => {
                let rows = (b.u8() % 4) as usize;
                let ids: Vec<u64> = (0..rows).map(|_| (b.u8() % 4) as u64).collect();
                let n = rows * vocab;
                let mut row = vec![0f32; n];
                for x in row.iter_mut() {
                    *x = f32::from_bits(if b.0.is_empty() { 0 } else { b.u32() });
                }
                // SAFETY: live handle; buffers of the stated sizes.
                unsafe {
                    ig_processor_step_batch(
                        p,
                        ids.as_ptr(),
                        rows,
                        row.as_mut_ptr().cast(),
                        IG_DTYPE_F32,
                        n,
                        b.u8() as u32 % 2,
                        reports.as_mut_ptr(),
                    )
                }
            }
            4 => {
                let tok = if b.u8() % 4 == 0 {
                    b.u32()
                } else {
                    b.u16() as u32 % vocab.max(1) as u32
                };
                // SAFETY: live handle.
                unsafe { ig_processor_accept(p, seq, tok) }
            }
            _ => {
                if b.u8() % 2 == 0 {
                    // SAFETY: live handle.
                    unsafe { ig_processor_end(p, seq) }
                } else {
                    // SAFETY: live handle.
                    unsafe { ig_processor_reset(p, seq) }
                }
            }
        };
        assert_no_panic(st);
    }
    // SAFETY: created above, freed once.
    unsafe { ig_processor_free(p) };
}
