//! Concurrency: several host threads share one handle, each driving its own sequences through
//! begin / step / step_batch / accept / end in an interleaved order, while the handle's own
//! worker pool runs the batches. Every report must equal a single-threaded replay of the same
//! sequence: sequences are independent, so no interleaving may change a result.
//!
//! `scripts/tsan.sh` runs this test under ThreadSanitizer (nightly, `-Zsanitizer=thread` with
//! an instrumented std); CI runs it there too.

use std::ptr;

use infogravity::ffi::*;

const V: usize = 2048;
const THREADS: u64 = 4;
const SEQS_PER_THREAD: u64 = 3;
const STEPS: u32 = 40;
const CONFIG: &std::ffi::CStr =
    c"{\"preset\":\"balanced\",\"limits\":{\"threads\":2},\"black_hole\":{\"max_period\":4}}";

/// The row of `seq` at `step`: a few peaks over noise, with a loop later on.
fn row(seq: u64, step: u32, out: &mut [f32]) {
    let mut s = seq
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step as u64 + 1);
    for x in out.iter_mut() {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *x = ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0;
    }
    out[(seq as usize * 31 + step as usize * 7) % V] += 6.0;
    if step > STEPS / 2 {
        out[100 + (step % 2) as usize] += 10.0;
    }
}

/// What a report says, for comparison.
type Line = (u64, u32, i64, u32, u32, u32, u32);

fn line(r: &IgStepReport) -> Line {
    (
        r.seq,
        r.step,
        r.token,
        r.entropy.to_bits(),
        r.temperature.to_bits(),
        r.flags,
        r.regime,
    )
}

struct Handle(*mut IgProcessor);
// SAFETY: the C contract: a handle may be used from any thread; calls are serialised inside.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

fn ok(st: IgStatus, what: &str) {
    assert_eq!(st, IgStatus::Ok, "{what}");
}

fn begin(p: *mut IgProcessor, seq: u64) {
    let sp = IgSeqParams {
        seed: seq * 7 + 1,
        ..IgSeqParams::default()
    };
    // SAFETY: live handle, valid params.
    ok(
        unsafe { ig_processor_begin(p, seq, &sp, ptr::null_mut()) },
        "begin",
    );
}

/// One host thread's program: its sequences, stepped one by one on even steps and as one
/// batch on odd ones; returns every report in order.
fn drive(p: *mut IgProcessor, seqs: &[u64]) -> Vec<Line> {
    let mut out = vec![];
    for &s in seqs {
        begin(p, s);
    }
    let mut buf = vec![0f32; V * seqs.len()];
    let mut reps = vec![IgStepReport::default(); seqs.len()];
    for step in 0..STEPS {
        for (k, &s) in seqs.iter().enumerate() {
            row(s, step, &mut buf[k * V..(k + 1) * V]);
        }
        if step % 2 == 0 {
            for (k, &s) in seqs.iter().enumerate() {
                let mut r = IgStepReport::default();
                let rowp = buf[k * V..].as_mut_ptr();
                // SAFETY: live handle; the row holds V floats.
                let st =
                    unsafe { ig_processor_step(p, s, rowp.cast(), IG_DTYPE_F32, V, 0, &mut r) };
                ok(st, "step");
                reps[k] = r;
            }
        } else {
            // SAFETY: live handle; buffers of the stated sizes.
            let st = unsafe {
                ig_processor_step_batch(
                    p,
                    seqs.as_ptr(),
                    seqs.len(),
                    buf.as_mut_ptr().cast(),
                    IG_DTYPE_F32,
                    buf.len(),
                    0,
                    reps.as_mut_ptr(),
                )
            };
            ok(st, "batch");
        }
        for (&s, r) in seqs.iter().zip(&reps) {
            out.push(line(r));
            // SAFETY: live handle.
            ok(
                unsafe { ig_processor_accept(p, s, r.token as u32) },
                "accept",
            );
        }
    }
    for &s in seqs {
        // SAFETY: live handle.
        ok(unsafe { ig_processor_end(p, s) }, "end");
    }
    out
}

fn new_handle() -> *mut IgProcessor {
    let mut p = ptr::null_mut();
    // SAFETY: valid string and out pointer.
    ok(
        unsafe { ig_processor_new(CONFIG.as_ptr(), V, &mut p) },
        "new",
    );
    p
}

#[test]
fn threads_sharing_a_handle_match_a_single_threaded_replay() {
    let h = Handle(new_handle());
    let per_thread: Vec<Vec<u64>> = (0..THREADS)
        .map(|t| (0..SEQS_PER_THREAD).map(|k| t * 100 + k + 1).collect())
        .collect();
    let got: Vec<Vec<Line>> = std::thread::scope(|sc| {
        let hs = &h;
        let handles: Vec<_> = per_thread
            .iter()
            .map(|seqs| sc.spawn(move || drive(hs.0, seqs)))
            .collect();
        handles.into_iter().map(|j| j.join().unwrap()).collect()
    });
    // Nothing is left live, and the handle is healthy.
    let mut live = usize::MAX;
    // SAFETY: live handle, valid out pointer.
    ok(
        unsafe { ig_processor_info(h.0, ptr::null_mut(), &mut live) },
        "info",
    );
    assert_eq!(live, 0);
    // SAFETY: created above, no call in progress.
    unsafe { ig_processor_free(h.0) };

    // The replay: each sequence alone, on one thread, on a fresh handle.
    for (seqs, lines) in per_thread.iter().zip(&got) {
        for &s in seqs {
            let p = new_handle();
            let want = drive(p, &[s]);
            // SAFETY: created above.
            unsafe { ig_processor_free(p) };
            let mine: Vec<Line> = lines.iter().filter(|l| l.0 == s).copied().collect();
            assert_eq!(mine.len(), STEPS as usize);
            assert_eq!(
                mine, want,
                "sequence {s} differs from its single-threaded replay"
            );
        }
    }
}
