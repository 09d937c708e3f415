//! A steady-state step allocates nothing: a counting global allocator around the real one.
//! It counts per thread: the test harness's own threads allocate while a test runs (reporting
//! another test's result), which a process-wide count would blame on the step. (Its own test
//! binary, so no other test's code runs beside these.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use infogravity::{Config, GravityProcessor, SeqParams, StepMode, StepReport};

struct Counting;

thread_local! {
    /// Allocations made by this thread (const-initialised: reading it never allocates).
    static MINE: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the allocator runs during thread teardown too.
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

/// Allocations made by the calling thread so far.
fn allocs() -> usize {
    MINE.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is process-wide: tests in this binary take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rows(v: usize, n: usize) -> Vec<Vec<f32>> {
    let mut s = 42u64;
    (0..n)
        .map(|k| {
            (0..v)
                .map(|i| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let base = ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0;
                    // A few peaks that move, and a loop in the second half.
                    if i == (k * 31) % v || (k > n / 2 && i == 7 + k % 2) {
                        base + 9.0
                    } else {
                        base
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn steady_state_steps_do_not_allocate() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let v = 32_000;
    let data = rows(v, 64);
    for (preset, mode) in [
        ("neutral", StepMode::Sample),
        ("balanced", StepMode::Sample),
        ("balanced", StepMode::Logits),
        ("factual", StepMode::Sample),
        ("creative", StepMode::Logits),
    ] {
        let cfg = Config::from_json(&format!(
            r#"{{"preset":"{preset}","task_space":{{"tokens":[3,4,5]}},"black_hole":{{"attractors":[[7,8,7]]}}}}"#
        ))
        .unwrap();
        let mut p = GravityProcessor::new(cfg, v).unwrap();
        p.begin(
            1,
            &SeqParams {
                seed: 5,
                anchors: &[1, 2, 3],
                ..Default::default()
            },
        )
        .unwrap();
        let mut row = vec![0f32; v];
        // Warm-up: buffers reach their steady size.
        for r in &data[..4] {
            row.copy_from_slice(r);
            let t = p.step(1, &mut row, mode).unwrap().token.unwrap_or(0);
            p.accept(1, t).unwrap();
        }
        let before = allocs();
        let mut flags = 0;
        for r in &data[4..] {
            row.copy_from_slice(r);
            let rep = p.step(1, &mut row, mode).unwrap();
            flags |= rep.flags;
            p.accept(1, rep.token.unwrap_or(7)).unwrap();
        }
        let n = allocs() - before;
        assert_eq!(
            n, 0,
            "{preset}/{mode:?}: {n} allocations in 60 steps (flags seen {flags:#x})"
        );
    }
}

#[test]
fn steady_state_batches_do_not_allocate_single_threaded() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let v = 8_000;
    let b = 8;
    let data = rows(v, b);
    // One worker, as the name says: the default (`limits.threads` = 0) is one per core, whose
    // allocations would happen on the pool's threads, which this per-thread count does not see.
    let cfg = Config::from_json(r#"{"limits":{"threads":1}}"#).unwrap();
    let mut p = GravityProcessor::new(cfg, v).unwrap();
    let ids: Vec<u64> = (0..b as u64).collect();
    for &id in &ids {
        p.begin(
            id,
            &SeqParams {
                seed: id,
                ..Default::default()
            },
        )
        .unwrap();
    }
    let mut flat = data.concat();
    let mut reps = vec![StepReport::default(); b];
    p.step_batch(&ids, &mut flat, StepMode::Sample, &mut reps)
        .unwrap();
    let before = allocs();
    for _ in 0..10 {
        flat.copy_from_slice(&data.concat()[..]);
        // (the concat above allocates; count only the batch call)
        let start = allocs();
        p.step_batch(&ids, &mut flat, StepMode::Sample, &mut reps)
            .unwrap();
        assert_eq!(allocs(), start, "batch step allocated");
        for (id, r) in ids.iter().zip(&reps) {
            p.accept(*id, r.token.unwrap()).unwrap();
        }
    }
    assert!(allocs() > before, "the counter counts");
}
