//! Benchmark workloads and timing, shared by `infogravity bench` and `benches/field.rs`.
//!
//! Rows imitate LLM logits: a Gaussian bulk (σ = 2) and a few dozen tokens 6–14 nats above
//! it, different in every row. Timings are medians of individually timed calls; the floor
//! kernel ([`infogravity::field::floor_kernel`]) is timed in the same run so ratios are comparable.

use std::time::Instant;

use infogravity::config::Config;
use infogravity::field;
use infogravity::processor::{GravityProcessor, SeqParams, StepMode, StepReport};
use infogravity::sampler::Rng;

/// The C reference kernel (benches/c/ref_kernel.c): the bare moment sums in two passes,
/// AVX2/FMA, with the Cephes exp (`degree` 7), the degree-5 minimax exp of infogravity's own
/// kernel (5, the like-for-like reference) or a ~3e-6 one (4). None where it is not built (not
/// x86-64) or the CPU lacks AVX2/FMA.
pub fn c_reference(row: &[f32], degree: i32) -> Option<[f64; 3]> {
    #[cfg(ref_kernel)]
    {
        unsafe extern "C" {
            fn ig_ref_available() -> i32;
            fn ig_ref_stats(z: *const f32, n: usize, degree: i32, out: *mut f64);
        }
        // SAFETY: a CPUID query.
        if unsafe { ig_ref_available() } == 0 {
            return None;
        }
        let mut out = [0f64; 3];
        // SAFETY: `row` holds `len` floats and `out` 3 doubles, as the C function reads/writes.
        unsafe { ig_ref_stats(row.as_ptr(), row.len(), degree, out.as_mut_ptr()) };
        Some(out)
    }
    #[cfg(not(ref_kernel))]
    {
        let _ = (row, degree);
        None
    }
}

/// Vocabulary sizes of common model families (Llama-2, Llama-3, Qwen2, Gemma).
pub const VOCABS: [usize; 4] = [32_000, 128_256, 151_936, 262_144];

/// Peaks planted per row.
const PEAKS: usize = 32;

/// `n` bulk rows for vocabulary `v`: Gaussian logits, σ = 2.
pub fn bulk_rows(v: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            (0..v)
                .map(|_| {
                    // Box–Muller.
                    let u1 = rng.uniform().max(1e-12);
                    let u2 = rng.uniform();
                    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * 2.0) as f32
                })
                .collect()
        })
        .collect()
}

/// Plant the peaks of decoding step `step` (32 tokens 6–15 nats above the bulk, at positions
/// new every step, as a model's next-token distribution moves) and return what they replaced.
pub fn plant(row: &mut [f32], step: u64, saved: &mut Vec<(usize, f32)>) {
    let mut rng = Rng::new(step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xABCD);
    saved.clear();
    for k in 0..PEAKS {
        let i = (rng.next_u64() % row.len() as u64) as usize;
        saved.push((i, row[i]));
        row[i] = 6.0 + 8.0 * (k as f32 / PEAKS as f32) + rng.uniform() as f32;
    }
}

/// Undo [`plant`] (in reverse, so repeated positions get their original back).
pub fn unplant(row: &mut [f32], saved: &[(usize, f32)]) {
    for &(i, z) in saved.iter().rev() {
        row[i] = z;
    }
}

/// LLM-like rows: a Gaussian bulk with planted peaks (for tests and the criterion bench).
pub fn rows(v: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut saved = Vec::new();
    let mut r = bulk_rows(v, n, seed);
    for (k, row) in r.iter_mut().enumerate() {
        plant(row, seed ^ k as u64, &mut saved);
    }
    r
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct Case {
    pub case: &'static str,
    pub vocab: usize,
    pub batch: usize,
    pub threads: usize,
    pub median_ns: f64,
    pub floor_median_ns: f64,
    /// Share of steps that needed the exact second pass (step and batch cases).
    pub full_pass_rate: f64,
}

impl Case {
    /// One JSON object (a line of `infogravity bench --json`).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"case\":\"{}\",\"vocab\":{},\"batch\":{},\"threads\":{},\"median_ns\":{:.0},\"floor_median_ns\":{:.0},\"ratio_to_floor\":{:.3},\"full_pass_rate\":{:.4},\"kernel\":\"{}\"}}",
            self.case,
            self.vocab,
            self.batch,
            self.threads,
            self.median_ns,
            self.floor_median_ns,
            self.median_ns / self.floor_median_ns,
            self.full_pass_rate,
            field::kernel_name()
        )
    }
}

/// Row index for call `i`: pseudo-random over `n` rows, so that the sampled tokens do not
/// repeat with a fixed period (which the loop detector would rightly call a black hole).
fn pick(i: usize, n: usize) -> usize {
    (Rng::new(i as u64).next_u64() % n as u64) as usize
}

/// Settings of one bench run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub vocabs: Vec<usize>,
    /// Timed calls per single-row case (batch cases use an eighth, at least 5).
    pub iters: usize,
    pub batch: usize,
    pub preset: String,
}

/// One read of a row at memory speed: a sum over eight independent lanes (vectorised).
fn read_row(row: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Median of timed calls, where `setup` and `teardown` run outside the timing.
fn timed(iters: usize, mut call: impl FnMut(usize) -> u128) -> f64 {
    let mut t: Vec<u128> = (0..iters).map(&mut call).collect();
    t.sort_unstable();
    t[t.len() / 2] as f64
}

/// Run every case of `plan`, calling `out` as each finishes.
pub fn run(plan: &Plan, mut out: impl FnMut(&Case)) -> infogravity::Result<()> {
    const ROWS: usize = 16;
    let mut saved = Vec::with_capacity(PEAKS);
    for &v in &plan.vocabs {
        let mut data = bulk_rows(v, ROWS, v as u64);
        // Every single-row case times a row just copied into a work buffer (untimed), as logits
        // just written by a model's output layer are: all cases see the same cache state.
        let mut work = vec![0f32; v];
        let mut clock = |row: &mut Vec<f32>, i: usize, f: &mut dyn FnMut(&mut [f32])| {
            plant(row, i as u64, &mut saved);
            work.copy_from_slice(row);
            unplant(row, &saved);
            let s = Instant::now();
            f(&mut work);
            s.elapsed().as_nanos()
        };
        let floor = timed(plan.iters, |i| {
            clock(&mut data[pick(i, ROWS)], i, &mut |r| {
                std::hint::black_box(field::floor_kernel(std::hint::black_box(r)));
            })
        });
        let measure = timed(plan.iters, |i| {
            clock(&mut data[pick(i, ROWS)], i, &mut |r| {
                std::hint::black_box(field::measure(std::hint::black_box(r)).ok());
            })
        });
        let mut cases = vec![("floor", floor), ("measure", measure)];
        if c_reference(&[0.0], 7).is_some() {
            for (case, degree) in [("c-ref-exp7", 7), ("c-ref-exp5", 5), ("c-ref-exp4", 4)] {
                let t = timed(plan.iters, |i| {
                    clock(&mut data[pick(i, ROWS)], i, &mut |r| {
                        std::hint::black_box(c_reference(std::hint::black_box(r), degree));
                    })
                });
                cases.push((case, t));
            }
        }
        for (case, t) in cases {
            out(&Case {
                case,
                vocab: v,
                batch: 1,
                threads: 1,
                median_ns: t,
                floor_median_ns: floor,
                full_pass_rate: 0.0,
            });
        }

        // Full step: measure + policy + anchor bias + temperature + truncation + sampling.
        let cfg = Config::from_json(&format!(r#"{{"preset":"{}"}}"#, plan.preset))?;
        let mut p = GravityProcessor::new(cfg.clone(), v)?;
        let anchors = [11u32, 12, 13, 14];
        p.begin(
            1,
            &SeqParams {
                seed: 1,
                anchors: &anchors,
                ..Default::default()
            },
        )?;
        let mut full = 0usize;
        let step = timed(plan.iters, |i| {
            let mut r = None;
            let ns = clock(&mut data[pick(i, ROWS)], i, &mut |row| {
                r = Some(
                    p.step(1, row, StepMode::Sample)
                        .expect("bench rows are valid"),
                );
            });
            let r = r.expect("the step ran");
            full += (r.flags & infogravity::flags::FULL_PASS != 0) as usize;
            let _ = p.accept(1, r.token.unwrap_or(0));
            ns
        });
        out(&Case {
            case: "step",
            vocab: v,
            batch: 1,
            threads: 1,
            median_ns: step,
            floor_median_ns: floor,
            full_pass_rate: full as f64 / plan.iters as f64,
        });

        // Batch of `plan.batch` rows on 1 and 2 threads.
        let b = plan.batch;
        let iters = (plan.iters / 8).max(5);
        let mut flat: Vec<f32> = (0..b)
            .flat_map(|k| data[k % ROWS].iter().copied())
            .collect();
        let base = flat.clone();
        let mut saved_b: Vec<Vec<(usize, f32)>> = vec![Vec::with_capacity(PEAKS); b];
        let plant_all = |flat: &mut [f32], it: usize, saved_b: &mut Vec<Vec<(usize, f32)>>| {
            for (k, (row, sv)) in flat.chunks_exact_mut(v).zip(saved_b.iter_mut()).enumerate() {
                plant(row, (it * b + k) as u64, sv);
            }
        };
        let floor_b = timed(iters, |it| {
            plant_all(&mut flat, it, &mut saved_b);
            let s = Instant::now();
            for row in flat.chunks_exact(v) {
                std::hint::black_box(field::floor_kernel(std::hint::black_box(row)));
            }
            let ns = s.elapsed().as_nanos();
            flat.copy_from_slice(&base);
            ns
        });
        for threads in [1usize, 2] {
            // The memory floor of the batch on `threads` threads: one plain read of every row
            // (a sum), which no pass over the batch can beat.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| infogravity::Error::InvalidArgument(e.to_string()))?;
            let read = timed(iters, |it| {
                plant_all(&mut flat, it, &mut saved_b);
                let s = Instant::now();
                pool.install(|| {
                    use rayon::prelude::*;
                    let total: f32 = flat.par_chunks(v).map(read_row).sum();
                    std::hint::black_box(total);
                });
                let ns = s.elapsed().as_nanos();
                flat.copy_from_slice(&base);
                ns
            });
            out(&Case {
                case: "read",
                vocab: v,
                batch: b,
                threads,
                median_ns: read,
                floor_median_ns: floor_b,
                full_pass_rate: 0.0,
            });
            let mut c = cfg.clone();
            c.limits.threads = threads as u32;
            let mut p = GravityProcessor::new(c, v)?;
            let ids: Vec<u64> = (0..b as u64).collect();
            for &id in &ids {
                p.begin(
                    id,
                    &SeqParams {
                        seed: id,
                        anchors: &anchors,
                        ..Default::default()
                    },
                )?;
            }
            let mut reps = vec![StepReport::default(); b];
            let mut full = 0usize;
            let t = timed(iters, |it| {
                plant_all(&mut flat, it, &mut saved_b);
                let s = Instant::now();
                p.step_batch(&ids, &mut flat, StepMode::Sample, &mut reps)
                    .expect("bench rows are valid");
                let ns = s.elapsed().as_nanos();
                full += reps
                    .iter()
                    .filter(|r| r.flags & infogravity::flags::FULL_PASS != 0)
                    .count();
                for (id, r) in ids.iter().zip(&reps) {
                    let _ = p.accept(*id, r.token.unwrap_or(0));
                }
                flat.copy_from_slice(&base);
                ns
            });
            out(&Case {
                case: "batch",
                vocab: v,
                batch: b,
                threads,
                median_ns: t,
                floor_median_ns: floor_b,
                full_pass_rate: full as f64 / (iters * b) as f64,
            });
        }
    }
    Ok(())
}
