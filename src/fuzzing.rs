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
        let st = match b.u8() % 7 {
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
                let mode = b.u8() as u32 % 3; // 2 is unknown
                let (dtype, n, mut row) = raw_row(&mut b, vocab);
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
            5 => {
                // A null-query row for the next step.
                let (dtype, n, row) = raw_row(&mut b, vocab);
                // SAFETY: live handle; `row` holds n elements of the named type.
                unsafe { ig_processor_set_contrast(p, seq, row.as_ptr().cast(), dtype, n) }
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

/// A row of fuzz bytes: a dtype (3 is unknown), a length (mostly V), and aligned storage
/// holding the next bytes of the input (zero-padded), n elements of the dtype's size.
fn raw_row(b: &mut Bytes<'_>, vocab: usize) -> (u32, usize, Vec<u32>) {
    let dtype = b.u8() as u32 % 4;
    let elem = if dtype == IG_DTYPE_F32 { 4 } else { 2 };
    let n = if b.u8().is_multiple_of(8) {
        b.u16() as usize % 700
    } else {
        vocab
    };
    let raw = b.take(n * elem);
    let mut row = vec![0u32; (n * elem).div_ceil(4)];
    // SAFETY: `row` holds at least raw.len() bytes.
    unsafe { ptr::copy_nonoverlapping(raw.as_ptr(), row.as_mut_ptr().cast::<u8>(), raw.len()) };
    (dtype, n, row)
}

/// Values a knob is drawn from: its extremes, its default region, and the awkward ones in
/// between (tiny positives, exact boundaries).
const BASES: [f32; 7] = [0.0, 1e-3, 0.05, 0.8, 1.0, 5.0, 100.0];
const MINS: [f32; 4] = [0.0, 1e-3, 0.05, 1.0];
const MAXES: [f32; 4] = [1e-3, 0.5, 2.0, 100.0];
const GAINS: [f32; 5] = [-10.0, -1.0, 0.0, 0.25, 10.0];
const REFS: [f32; 4] = [-10.0, 0.0, 0.5, 10.0];
const RESPONSES: [&str; 3] = ["none", "edt", "dynatemp"];
const MIN_PS: [f32; 4] = [0.0, 1e-6, 0.05, 1.0];
const TOP_KS: [u32; 4] = [0, 1, 3, 50];
const TOP_PS: [f32; 3] = [1e-6, 0.5, 1.0];
const WINDOWS: [f32; 4] = [0.0, 1e-3, 1.0, 64.0];
const MAX_CANDS: [u32; 3] = [1, 2, 4096];
const LAMBDAS: [f32; 4] = [-100.0, 0.0, 2.0, 100.0];
const KICKS: [f32; 3] = [1.0, 1.6, 100.0];
const PENALTIES: [f32; 3] = [0.0, 6.0, 1e4];
const WEIGHTS: [f32; 5] = [-1000.0, -4.0, 0.0, 5.0, 1000.0];
const STDS: [f64; 3] = [1e-6, 1.0, 1e3];
const MEANS: [f64; 3] = [-1e6, 0.5, 1e6];
const GAINS_D: [f32; 4] = [0.0, 0.5, 7.0, 3.0e38];
/// Logit values a row is built from (per element type they may round or saturate).
const LOGITS: [f32; 10] = [
    0.0,
    1.0,
    -1.0,
    30.0,
    -30.0,
    1e-30,
    56_768.0,
    -65_504.0,
    3.0e38,
    f32::NEG_INFINITY,
];

/// One case of [`pipeline`]: a configuration, an optional calibration, what the host knows of
/// the query, and the rows of a few steps. Built from fuzz bytes or by proptest.
#[derive(Debug, Clone)]
pub struct PipelineCase {
    pub config: String,
    pub calibration: Option<String>,
    pub vocab: usize,
    /// IG_DTYPE_*.
    pub dtype: u32,
    /// IG_MODE_*.
    pub mode: u32,
    pub context_gain: Option<f32>,
    pub anchors: Vec<u32>,
    /// Each row holds `vocab` indices into the logit table; at least one is finite.
    pub rows: Vec<Vec<u8>>,
    /// Step the rows as one batch of as many sequences instead of one sequence.
    pub batch: bool,
}

impl PipelineCase {
    /// Decode a case from fuzz bytes (every byte string is a valid case).
    pub fn from_bytes(data: &[u8]) -> PipelineCase {
        let mut b = Bytes(data);
        let mut pick = |n: usize| b.u8() as usize % n;
        let min = MINS[pick(MINS.len())];
        let max = MAXES
            .iter()
            .copied()
            .filter(|&m| m >= min)
            .nth(pick(2))
            .unwrap_or(100.0);
        let config = format!(
            r#"{{"preset":"{}","temperature":{{"base":{},"min":{min},"max":{max},"response":"{}","mass_gain":{},"mass_ref":{},"edt_theta":{},"edt_n":{},"dyn_range":{},"dyn_exponent":{}}},"sampler":{{"min_p":{},"top_k":{},"top_p":{},"window":{},"max_candidates":{}}},"anchor":{{"lambda":{},"min_void":{}}},"escape":{{"kick":{},"cycle_penalty":{}}},"abstain":{{"enabled":{},"target":{},"tokens":{}}},"black_hole":{{"max_period":{},"repeats":2,"low_entropy_steps":1}},"limits":{{"threads":{}}}}}"#,
            crate::config::PRESETS[pick(4)],
            BASES[pick(BASES.len())],
            RESPONSES[pick(3)],
            GAINS[pick(GAINS.len())],
            REFS[pick(REFS.len())],
            [0.0, 1.0, 100.0][pick(3)],
            [0.01, 0.8, 0.99][pick(3)],
            [0.0, 0.3, 0.999][pick(3)],
            [1e-3, 1.0, 100.0][pick(3)],
            MIN_PS[pick(MIN_PS.len())],
            TOP_KS[pick(TOP_KS.len())],
            TOP_PS[pick(TOP_PS.len())],
            WINDOWS[pick(WINDOWS.len())],
            MAX_CANDS[pick(MAX_CANDS.len())],
            LAMBDAS[pick(LAMBDAS.len())],
            [0.0, 0.3, 1.0][pick(3)],
            KICKS[pick(KICKS.len())],
            PENALTIES[pick(PENALTIES.len())],
            pick(2) == 0,
            [0.01, 0.5, 0.99][pick(3)],
            ["[]", "[0,1]"][pick(2)],
            [1, 2, 16][pick(3)],
            1 + pick(2),
        );
        let calibration = (pick(3) == 0).then(|| {
            let w = |p: &mut dyn FnMut(usize) -> usize| WEIGHTS[p(WEIGHTS.len())];
            format!(
                r#"{{"format":"infogravity-calibration","version":1,"void":{{"bias":{},"entropy":{},"energy":{},"one_minus_pmax":{},"varentropy":{},"trend":{},"task":{},"mass":{}}},"mass":{{"d":{{"mean":{},"std":{}}}}}}}"#,
                w(&mut pick),
                w(&mut pick),
                w(&mut pick),
                w(&mut pick),
                w(&mut pick),
                w(&mut pick),
                w(&mut pick),
                w(&mut pick),
                MEANS[pick(3)],
                STDS[pick(3)],
            )
        });
        let vocab = 2 + pick(40);
        let dtype = pick(3) as u32;
        let mode = pick(2) as u32;
        let context_gain = [None, Some(GAINS_D[pick(GAINS_D.len())])][pick(2)];
        let anchors = (0..pick(3)).map(|_| pick(vocab) as u32).collect();
        let n_rows = 1 + pick(4);
        let batch = pick(2) == 0;
        let rows = (0..n_rows)
            .map(|_| {
                let mut r: Vec<u8> = (0..vocab).map(|_| pick(LOGITS.len()) as u8).collect();
                let keep = pick(vocab);
                r[keep] = pick(LOGITS.len() - 1) as u8; // one finite entry at least
                r
            })
            .collect();
        PipelineCase {
            config,
            calibration,
            vocab,
            dtype,
            mode,
            context_gain,
            anchors,
            rows,
            batch,
        }
    }
}

/// The row of a case as the bytes of its element type (f32, f16 or bf16).
fn encode(dtype: u32, idx: &[u8]) -> Vec<u32> {
    let vals = idx.iter().map(|&i| LOGITS[i as usize % LOGITS.len()]);
    match dtype {
        IG_DTYPE_F32 => vals.map(f32::to_bits).collect(),
        _ => {
            // Two 16-bit values per u32 (keeps the buffer 4-byte aligned, which covers 2).
            let halves: Vec<u16> = vals
                .map(|z| {
                    if dtype == IG_DTYPE_F16 {
                        // Round-to-nearest saturating at ±65504 for finite values, as a model
                        // producing f16 logits would (no +inf inputs: they are rejected).
                        if z.is_finite() {
                            half::f16::from_f32(z.clamp(-65504.0, 65504.0)).to_bits()
                        } else {
                            half::f16::from_f32(z).to_bits()
                        }
                    } else if z.is_finite() {
                        half::bf16::from_f32(z.clamp(-3.38e38, 3.38e38)).to_bits()
                    } else {
                        half::bf16::from_f32(z).to_bits()
                    }
                })
                .collect();
            halves
                .chunks(2)
                .map(|c| c[0] as u32 | (*c.get(1).unwrap_or(&0) as u32) << 16)
                .collect()
        }
    }
}

fn decode(dtype: u32, buf: &[u32], n: usize) -> Vec<f32> {
    match dtype {
        IG_DTYPE_F32 => buf[..n].iter().map(|&u| f32::from_bits(u)).collect(),
        _ => (0..n)
            .map(|i| {
                let h = (buf[i / 2] >> (16 * (i % 2))) as u16;
                if dtype == IG_DTYPE_F16 {
                    half::f16::from_bits(h).to_f32()
                } else {
                    half::bf16::from_bits(h).to_f32()
                }
            })
            .collect(),
    }
}

/// The pipeline's invariants for any valid configuration, calibration and query, through the
/// C ABI: every step of a row with a finite entry and no NaN/+inf succeeds (never a panic, never
/// a poisoned handle), the temperature is 0 or finite within [min, max], a `Logits` row comes
/// back with no NaN or +inf and at least one finite entry, a sampled token is in range and was
/// not masked. Returns a description of the first violation.
pub fn pipeline(case: &PipelineCase) -> Result<(), String> {
    let cfg_c = CString::new(case.config.as_str()).expect("no NUL");
    // SAFETY: a valid string.
    if unsafe { ig_config_validate(cfg_c.as_ptr()) } != IgStatus::Ok {
        return Ok(()); // an invalid configuration is refused, which is all it may do
    }
    let cfg = crate::Config::from_json(&case.config).map_err(|e| e.to_string())?;
    let (t_min, t_max) = (cfg.temperature.min, cfg.temperature.max);
    let mut p = ptr::null_mut();
    // SAFETY: valid string and out pointer.
    let st = unsafe { ig_processor_new(cfg_c.as_ptr(), case.vocab, &mut p) };
    if st == IgStatus::TokenOutOfRange {
        return Ok(()); // abstention tokens beyond a tiny vocabulary
    }
    if st != IgStatus::Ok {
        return Err(format!("new: {st:?}"));
    }
    struct Free(*mut IgProcessor);
    impl Drop for Free {
        fn drop(&mut self) {
            // SAFETY: created above, freed once.
            unsafe { ig_processor_free(self.0) }
        }
    }
    let _free = Free(p);
    if let Some(cal) = &case.calibration {
        let path = std::env::temp_dir().join(format!(
            "ig-pipeline-cal-{}-{:?}.json",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, cal).map_err(|e| e.to_string())?;
        let c = CString::new(path.to_string_lossy().as_bytes()).expect("no NUL");
        // SAFETY: live handle, valid string.
        let st = unsafe { ig_processor_load_calibration(p, c.as_ptr()) };
        let _ = std::fs::remove_file(&path);
        if st != IgStatus::Ok && st != IgStatus::CorruptFile {
            return Err(format!("calibration: {st:?}"));
        }
    }
    let seqs: Vec<u64> = if case.batch {
        (1..=case.rows.len() as u64).collect()
    } else {
        vec![1]
    };
    for &s in &seqs {
        let mut sp = IgSeqParams {
            seed: s,
            anchors: case.anchors.as_ptr(),
            n_anchors: case.anchors.len(),
            ..IgSeqParams::default()
        };
        if let Some(d) = case.context_gain {
            sp.has_context_gain = 1;
            sp.context_gain = d;
        }
        let mut m = IgQueryMass::default();
        // SAFETY: live handle, valid struct and arrays.
        let st = unsafe { ig_processor_begin(p, s, &sp, &mut m) };
        if st != IgStatus::Ok {
            return Err(format!("begin: {st:?}"));
        }
        if !m.m.is_nan() && !m.m.is_finite() {
            return Err(format!("M = {}", m.m));
        }
    }
    let v = case.vocab;
    let check = |rep: &IgStepReport, before: &[f32], after: &[f32]| -> Result<(), String> {
        let t = rep.temperature;
        if !(t == 0.0 || (t.is_finite() && t >= t_min && t <= t_max)) {
            return Err(format!("T = {t} outside {{0}} ∪ [{t_min}, {t_max}]"));
        }
        if case.mode == IG_MODE_LOGITS {
            if after.iter().any(|z| z.is_nan() || *z == f32::INFINITY) {
                return Err(format!("Logits row has NaN/+inf: {after:?}"));
            }
            if !after.iter().any(|z| z.is_finite()) {
                return Err(format!(
                    "Logits row has no finite entry: {before:?} → {after:?}"
                ));
            }
        } else if rep.stop == 0 {
            let tok = rep.token;
            if !(0..v as i64).contains(&tok) {
                return Err(format!("token {tok} out of range"));
            }
            if rep.flags & IG_FLAG_FORCED == 0 && before[tok as usize] == f32::NEG_INFINITY {
                return Err(format!("sampled the masked token {tok}"));
            }
        }
        Ok(())
    };
    if case.batch {
        let mut buf: Vec<u32> = case
            .rows
            .iter()
            .flat_map(|r| encode(case.dtype, r))
            .collect();
        let per = buf.len() / case.rows.len();
        let before: Vec<Vec<f32>> = buf.chunks(per).map(|c| decode(case.dtype, c, v)).collect();
        let mut reps = vec![IgStepReport::default(); seqs.len()];
        // The rows are packed per row: for 16-bit types an odd V leaves a pad element, so
        // only f32 rows (and even V) can be stepped as one contiguous batch.
        if case.dtype != IG_DTYPE_F32 && v % 2 == 1 {
            return Ok(());
        }
        // SAFETY: live handle; buffers of the stated sizes.
        let st = unsafe {
            ig_processor_step_batch(
                p,
                seqs.as_ptr(),
                seqs.len(),
                buf.as_mut_ptr().cast(),
                case.dtype,
                v * seqs.len(),
                case.mode,
                reps.as_mut_ptr(),
            )
        };
        if st != IgStatus::Ok {
            return Err(format!("batch: {st:?}"));
        }
        for (k, rep) in reps.iter().enumerate() {
            let after = decode(case.dtype, &buf[k * per..], v);
            check(rep, &before[k], &after)?;
        }
        return Ok(());
    }
    for row in &case.rows {
        let mut buf = encode(case.dtype, row);
        let before = decode(case.dtype, &buf, v);
        let mut rep = IgStepReport::default();
        // SAFETY: live handle; `buf` holds v elements of the type.
        let st = unsafe {
            ig_processor_step(
                p,
                1,
                buf.as_mut_ptr().cast(),
                case.dtype,
                v,
                case.mode,
                &mut rep,
            )
        };
        if st != IgStatus::Ok {
            return Err(format!("step: {st:?} on {before:?}"));
        }
        check(&rep, &before, &decode(case.dtype, &buf, v))?;
        if rep.stop != 0 {
            break;
        }
        let tok = if rep.token >= 0 {
            rep.token as u32
        } else {
            // Logits mode: the host would pick; accept the first finite entry.
            before.iter().position(|z| z.is_finite()).unwrap_or(0) as u32
        };
        // SAFETY: live handle.
        let st = unsafe { ig_processor_accept(p, 1, tok) };
        if st != IgStatus::Ok {
            return Err(format!("accept: {st:?}"));
        }
    }
    Ok(())
}

/// The pipeline invariants on fuzz bytes (the `pipeline` fuzz target).
pub fn pipeline_bytes(data: &[u8]) {
    if let Err(e) = pipeline(&PipelineCase::from_bytes(data)) {
        panic!("pipeline invariant violated: {e}");
    }
}
