//! What engine adapters need of a sequence's life (docs/DESIGN.md §1 "Pipeline order"): fork,
//! the prompt accepted before the first step as the query, row-pointer batches, end-all and
//! sweep — through the Rust API and the C ABI.

use std::ptr;

use infogravity::ffi::*;
use infogravity::{Prior, QueryInput, SeqParams, StepMode, StepReport};

mod common;
use common::{begin_seeded, flat, peaked, proc};

/// Rows that wander between flat and peaked, so regimes and the sampler both move.
fn row(v: usize, i: usize) -> Vec<f32> {
    let mut r = if i % 5 < 2 {
        flat(v)
    } else {
        peaked(v, (i * 7) % v)
    };
    r[(i * 3) % v] += 1.5;
    r
}

fn drive(p: &mut infogravity::GravityProcessor, seq: u64, from: usize, n: usize) -> Vec<String> {
    let v = p.vocab();
    (from..from + n)
        .map(|i| {
            let r = p.step(seq, &mut row(v, i), StepMode::Sample).unwrap();
            p.accept(seq, r.token.unwrap()).unwrap();
            // Everything but the id, which differs between a sequence and its fork.
            let mut r = r;
            r.seq = 0;
            format!("{r:?}")
        })
        .collect()
}

/// A fork continues exactly as the original would (same position, regimes, stream, loop
/// history), and from then on the two are independent.
#[test]
fn a_fork_continues_identically() {
    let v = 50;
    let mut p = proc(r#"{"preset":"creative"}"#, v);
    begin_seeded(&mut p, 1, 9, &[4]);
    drive(&mut p, 1, 0, 7);
    // Fork with a step pending too: the proposal travels with it.
    let _ = p.step(1, &mut row(v, 7), StepMode::Sample).unwrap();
    p.fork(1, 2).unwrap();
    let a = drive(&mut p, 1, 7, 12);
    let b = drive(&mut p, 2, 7, 12);
    assert_eq!(a, b);
    // Independent afterwards: ending one leaves the other.
    p.end(1).unwrap();
    assert_eq!(drive(&mut p, 2, 19, 1).len(), 1);
    assert!(matches!(
        p.fork(1, 3),
        Err(infogravity::Error::UnknownSequence(1))
    ));
    assert!(matches!(
        p.fork(2, 2),
        Err(infogravity::Error::DuplicateSequence(2))
    ));
}

/// Tokens accepted before the first step are the query: M(Q)'s novelty is computed from them as
/// if they had been given at `begin`, they take no position and form no loop.
#[test]
fn the_prompt_accepted_before_the_first_step_is_the_query() {
    let v = 20;
    let prior = Prior::from_counts((1..=v as u32).collect(), "test").unwrap();
    let query = [3u32, 3, 3, 3, 3, 3, 7, 3, 3, 3, 3, 3];
    let with = |via_accept: bool| {
        let mut p = proc(
            r#"{"temperature":{"mass_gain":1},"mass":{"scale":"minmax"}}"#,
            v,
        );
        p.set_prior(Some(prior.clone())).unwrap();
        let q = if via_accept { None } else { Some(&query[..]) };
        p.begin(
            1,
            &SeqParams {
                seed: 5,
                query: QueryInput {
                    query_tokens: q,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        if via_accept {
            for &t in &query {
                p.accept(1, t).unwrap();
            }
        }
        let r = p.step(1, &mut flat(v), StepMode::Sample).unwrap();
        (r, p.mass(1).unwrap())
    };
    let (ra, ma) = with(true);
    let (rb, mb) = with(false);
    assert!(ma.n_kl.is_some() && ma.m.is_some(), "{ma:?}");
    assert_eq!(ma, mb);
    assert_eq!(ra.temperature, rb.temperature, "M(Q) moved T the same way");
    assert_eq!((ra.step, ra.black_hole_score, ra.cycle_period), (0, 0.0, 0));
}

/// Row-pointer batches equal contiguous batches, rows in any memory order, on 1 and 2 threads,
/// and through the C ABI.
#[test]
fn row_pointer_batches_equal_contiguous_batches() {
    let v = 300;
    for threads in [1, 2] {
        let json = format!(r#"{{"limits":{{"threads":{threads}}}}}"#);
        let (mut a, mut b) = (proc(&json, v), proc(&json, v));
        let ids = [4u64, 9, 2];
        for &s in &ids {
            begin_seeded(&mut a, s, s, &[]);
            begin_seeded(&mut b, s, s, &[]);
        }
        for step in 0..6 {
            let mut block: Vec<f32> = (0..3).flat_map(|k| row(v, step * 3 + k)).collect();
            // The same rows, stored in reverse order, handed over by reference.
            let mut store: Vec<Vec<f32>> = (0..3).rev().map(|k| row(v, step * 3 + k)).collect();
            let mut refs: Vec<&mut [f32]> = store.iter_mut().rev().map(|r| &mut r[..]).collect();
            let mut ra = vec![StepReport::default(); 3];
            let mut rb = vec![StepReport::default(); 3];
            a.step_batch(&ids, &mut block, StepMode::Logits, &mut ra)
                .unwrap();
            b.step_rows(&ids, &mut refs, StepMode::Logits, &mut rb)
                .unwrap();
            assert_eq!(format!("{ra:?}"), format!("{rb:?}"));
            for (k, r) in refs.iter().enumerate() {
                assert_eq!(&block[k * v..(k + 1) * v], &r[..]);
            }
            for (&s, r) in ids.iter().zip(&ra) {
                let tok = r.step % v as u32;
                a.accept(s, tok).unwrap();
                b.accept(s, tok).unwrap();
            }
        }
    }
}

struct Handle(*mut IgProcessor);
impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by ig_processor_new, freed once.
        unsafe { ig_processor_free(self.0) }
    }
}

fn handle(json: &std::ffi::CStr, v: usize) -> Handle {
    let mut p = ptr::null_mut();
    // SAFETY: valid string and out pointer.
    let st = unsafe { ig_processor_new(json.as_ptr(), v, &mut p) };
    assert_eq!(st, IgStatus::Ok);
    Handle(p)
}

#[test]
fn c_row_pointers_fork_end_all_and_sweep() {
    let v = 64;
    let h = handle(c"{\"limits\":{\"threads\":2}}", v);
    for s in 1..=3u64 {
        // SAFETY: live handle, defaults.
        let st = unsafe { ig_processor_begin(h.0, s, ptr::null(), ptr::null_mut()) };
        assert_eq!(st, IgStatus::Ok);
    }
    let mut rows: Vec<Vec<f32>> = (0..3).map(|i| row(v, i)).collect();
    let ids = [3u64, 1, 2];
    let mut ptrs: Vec<*mut std::ffi::c_void> =
        rows.iter_mut().map(|r| r.as_mut_ptr().cast()).collect();
    let mut reps = vec![IgStepReport::default(); 3];
    // SAFETY: live handle; three rows of V floats; reports for three.
    let st = unsafe {
        ig_processor_step_rows(
            h.0,
            ids.as_ptr(),
            3,
            ptrs.as_ptr(),
            IG_DTYPE_F32,
            v,
            IG_MODE_SAMPLE,
            reps.as_mut_ptr(),
        )
    };
    assert_eq!(st, IgStatus::Ok);
    assert_eq!(reps.iter().map(|r| r.seq).collect::<Vec<_>>(), ids);
    // The same row twice overlaps itself: refused before anything happens.
    ptrs[2] = ptrs[0];
    // SAFETY: as above; the overlap is the bad input under test.
    let st = unsafe {
        ig_processor_step_rows(
            h.0,
            ids.as_ptr(),
            3,
            ptrs.as_ptr(),
            IG_DTYPE_F32,
            v,
            IG_MODE_SAMPLE,
            reps.as_mut_ptr(),
        )
    };
    assert_eq!(st, IgStatus::InvalidArgument);
    ptrs[2] = ptr::null_mut();
    // SAFETY: as above; the NULL row is the bad input under test.
    let st = unsafe {
        ig_processor_step_rows(
            h.0,
            ids.as_ptr(),
            3,
            ptrs.as_ptr(),
            IG_DTYPE_F32,
            v,
            IG_MODE_SAMPLE,
            reps.as_mut_ptr(),
        )
    };
    assert_eq!(st, IgStatus::InvalidArgument);

    // fork: 1 → 7; then 7 is live.
    // SAFETY: live handle.
    assert_eq!(unsafe { ig_processor_fork(h.0, 1, 7) }, IgStatus::Ok);
    // SAFETY: live handle.
    let st = unsafe { ig_processor_fork(h.0, 1, 7) };
    assert_eq!(st, IgStatus::DuplicateSequence);
    // SAFETY: live handle.
    let st = unsafe { ig_processor_fork(h.0, 99, 8) };
    assert_eq!(st, IgStatus::UnknownSequence);

    // sweep: step only sequence 2 three times; with idle 2 the others (1, 3, 7) are ended.
    for i in 0..3 {
        let mut r = row(v, 10 + i);
        let mut rep = IgStepReport::default();
        // SAFETY: live handle; a row of V floats.
        let st = unsafe {
            ig_processor_step(h.0, 2, r.as_mut_ptr().cast(), IG_DTYPE_F32, v, 0, &mut rep)
        };
        assert_eq!(st, IgStatus::Ok);
        // SAFETY: live handle.
        let st = unsafe { ig_processor_accept(h.0, 2, rep.token as u32) };
        assert_eq!(st, IgStatus::Ok);
    }
    let mut ended = usize::MAX;
    // SAFETY: live handle, writable out.
    let st = unsafe { ig_processor_sweep(h.0, 2, &mut ended) };
    assert_eq!(st, IgStatus::Ok);
    assert_eq!(ended, 3);
    let mut live = 0;
    // SAFETY: live handle, writable out.
    let st = unsafe { ig_processor_info(h.0, ptr::null_mut(), &mut live) };
    assert_eq!(st, IgStatus::Ok);
    assert_eq!(live, 1);
    // SAFETY: live handle, writable out.
    let st = unsafe { ig_processor_end_all(h.0, &mut ended) };
    assert_eq!(st, IgStatus::Ok);
    assert_eq!(ended, 1);
}
