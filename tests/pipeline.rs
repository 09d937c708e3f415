//! The pipeline order (docs/DESIGN.md §1) and each intervention, table-driven, through the Rust API.

use infogravity::field;
use infogravity::{
    Config, Error, GravityProcessor, LogitsProcessor, QueryInput, Regime, SeqParams, StepMode,
    flags,
};

/// Config keys for T = 1 exactly and no truncation (Logits mode then writes only the edits).
const T_ONE: &str =
    r#""temperature":{"base":1,"response":"none","mass_gain":0},"sampler":{"min_p":0}"#;

mod common;
use common::{flat, peaked, proc};

fn begin(p: &mut GravityProcessor, seq: u64, anchors: &[u32]) {
    common::begin_seeded(p, seq, 11, anchors);
}

/// Sets token 3 to +40 and records that it ran.
struct Host {
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}
impl LogitsProcessor for Host {
    fn apply(&mut self, _seq: u64, logits: &mut [f32]) -> infogravity::Result<()> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        logits[3] = 40.0;
        Ok(())
    }
}

#[test]
fn host_processors_run_before_the_measurement() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut p = proc(r#"{"preset":"neutral"}"#, 100);
    p.push_pre(Box::new(Host {
        calls: calls.clone(),
    }));
    begin(&mut p, 1, &[]);
    let r = p.step(1, &mut flat(100), StepMode::Sample).unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    // The field seen is the host-edited one: token 3 dominates.
    assert!(r.p_max > 0.999 && r.token == Some(3));
}

#[test]
fn the_field_is_measured_before_interventions_and_truncation() {
    let v = 200;
    let row = flat(v);
    let reference = field::measure(&row).unwrap();
    // Strong anchoring and top-k 1: the report still describes the untruncated, unbiased row.
    let mut p = proc(
        r#"{"preset":"balanced","anchor":{"lambda":5,"min_void":0},"sampler":{"top_k":1}}"#,
        v,
    );
    begin(&mut p, 1, &[9]);
    let mut out = row.clone();
    let r = p.step(1, &mut out, StepMode::Logits).unwrap();
    assert!((r.entropy as f64 - reference.entropy).abs() < 1e-5);
    assert!(r.flags & flags::ANCHOR != 0);
    // Then bias, then temperature, then truncation: only the biased anchor survives top-1,
    // holding (z + λv)/T.
    let kept: Vec<usize> = (0..v).filter(|&i| out[i] > f32::NEG_INFINITY).collect();
    assert_eq!(kept, vec![9]);
    let want = (row[9] + 5.0 * r.void_score) / r.temperature;
    assert!((out[9] - want).abs() < 1e-5, "{} vs {want}", out[9]);
}

#[test]
fn min_p_cuts_after_the_temperature() {
    let v = 6;
    let row = [0.0f32, -1.0, -2.0, -3.0, -4.0, -5.0];
    // T = 2, min-p 0.2: keep (z − max)/T ≥ ln 0.2 = −1.609, i.e. z ≥ −3.22: four tokens.
    let mut p = proc(
        r#"{"preset":"neutral","temperature":{"base":2.0,"max":2.0},"sampler":{"min_p":0.2}}"#,
        v,
    );
    begin(&mut p, 1, &[]);
    let mut out = row.to_vec();
    p.step(1, &mut out, StepMode::Logits).unwrap();
    let kept = out.iter().filter(|z| **z > f32::NEG_INFINITY).count();
    assert_eq!(kept, 4);
    assert_eq!(out[1], -0.5);
}

/// Anchoring, table-driven: (row, lambda, min_void, expect bias).
#[test]
fn anchoring_table() {
    let v = 300;
    let cases: [(&str, Vec<f32>, f32, f32, bool); 4] = [
        ("flat row, default threshold", flat(v), 2.0, 0.3, true),
        (
            "peaked row: field has support",
            peaked(v, 5),
            2.0,
            0.3,
            false,
        ),
        ("lambda 0 disables", flat(v), 0.0, 0.3, false),
        ("threshold above any score", flat(v), 2.0, 1.0, false),
    ];
    for (name, row, lambda, min_void, want) in cases {
        // T = 1 and no truncation: Logits mode hands back the row with only the edits applied.
        let mut p = proc(
            &format!(r#"{{"anchor":{{"lambda":{lambda},"min_void":{min_void}}},{T_ONE}}}"#),
            v,
        );
        begin(&mut p, 1, &[40, 41]);
        let mut out = row.clone();
        let r = p.step(1, &mut out, StepMode::Logits).unwrap();
        assert_eq!(r.temperature, 1.0);
        assert_eq!(r.flags & flags::ANCHOR != 0, want, "{name}");
        let moved = out[40] - row[40];
        if want {
            assert!((moved - lambda * r.void_score).abs() < 1e-5, "{name}");
        } else {
            assert_eq!(moved, 0.0, "{name}");
        }
    }
}

/// Loop escape, table-driven over (escape enabled, penalty): a 3-cycle accepted under
/// low-entropy rows enters the black hole.
#[test]
fn escape_table() {
    let v = 50;
    for (enabled, penalty) in [(true, 6.0f32), (true, 0.0), (false, 6.0)] {
        let mut p = proc(
            &format!(
                r#"{{"escape":{{"enabled":{enabled},"cycle_penalty":{penalty},"kick":1.5}},"temperature":{{"response":"none","base":0.5}},"sampler":{{"min_p":0}}}}"#
            ),
            v,
        );
        begin(&mut p, 1, &[]);
        let cycle = [10u32, 11, 12];
        let mut last = None;
        for i in 0..12 {
            let next = cycle[i % 3];
            let mut row = peaked(v, next as usize);
            let before = row.clone();
            // Logits mode hands back z'/T: undo T to see the edits.
            let r = p.step(1, &mut row, StepMode::Logits).unwrap();
            row.iter_mut().for_each(|z| *z *= r.temperature);
            p.accept(1, next).unwrap();
            last = Some((r, before, row));
        }
        let (r, before, after) = last.unwrap();
        assert_eq!(
            r.regime,
            Regime::BlackHole,
            "enabled={enabled} penalty={penalty}"
        );
        assert_eq!(r.cycle_period, 3);
        assert!(r.black_hole_score >= 0.7);
        assert_eq!(r.flags & flags::KICK != 0, enabled);
        let penalised = r.flags & flags::CYCLE_PENALTY != 0;
        assert_eq!(penalised, enabled && penalty > 0.0);
        if enabled {
            assert!((r.temperature - 0.75).abs() < 1e-6, "kick 1.5 × base 0.5");
            // Accepted so far: 10,11,12,…,10,11 → the token that would extend the cycle is 12.
            let diff = before[12] - after[12];
            assert!(
                (diff - if penalised { penalty } else { 0.0 }).abs() < 1e-5,
                "{diff}"
            );
        } else {
            assert_eq!(r.temperature, 0.5);
            assert!(before.iter().zip(&after).all(|(a, b)| (a - b).abs() < 1e-6));
        }
    }
}

#[test]
fn attractor_phrase_scores_one() {
    let v = 30;
    let mut p = proc(r#"{"black_hole":{"attractors":[[4,5,6]]}}"#, v);
    begin(&mut p, 1, &[]);
    for t in [4, 5, 6] {
        p.step(1, &mut flat(v), StepMode::Sample).unwrap();
        p.accept(1, t).unwrap();
    }
    let r = p.step(1, &mut flat(v), StepMode::Sample).unwrap();
    assert_eq!(r.black_hole_score, 1.0);
}

/// One abstention case: name, row, target, abstention tokens (JSON), abstains, forced tokens.
type AbstainCase = (&'static str, Vec<f32>, f32, &'static str, bool, Vec<u32>);

/// Abstention, table-driven.
#[test]
fn abstention_table() {
    let v = 100;
    let cases: [AbstainCase; 4] = [
        ("confident: answers", peaked(v, 3), 0.5, "[]", false, vec![]),
        ("flat: stops", flat(v), 0.5, "[]", true, vec![]),
        (
            "flat: says its text",
            flat(v),
            0.5,
            "[7,8]",
            true,
            vec![7, 8],
        ),
        (
            "low target never abstains",
            flat(v),
            0.01,
            "[]",
            false,
            vec![],
        ),
    ];
    for (name, row, target, tokens, abstain, forced) in cases {
        let mut p = proc(
            &format!(r#"{{"abstain":{{"enabled":true,"target":{target},"tokens":{tokens}}}}}"#),
            v,
        );
        begin(&mut p, 1, &[]);
        let mut got = vec![];
        let mut stopped = false;
        for _ in 0..4 {
            let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
            assert_eq!(r.flags & flags::ABSTAIN != 0, abstain, "{name}");
            if r.stop {
                stopped = true;
                break;
            }
            if r.flags & flags::FORCED != 0 {
                got.push(r.token.unwrap());
            }
            p.accept(1, r.token.unwrap()).unwrap();
        }
        assert_eq!(got, forced, "{name}");
        assert_eq!(stopped, abstain, "{name}");
    }
}

#[test]
fn task_space_mass_is_reported() {
    let v = 4;
    let row = [1.0f32, 1.0, 0.0, 0.0];
    let mut p = proc(r#"{"task_space":{"tokens":[0,1]}}"#, v);
    begin(&mut p, 1, &[]);
    let r = p.step(1, &mut row.to_vec(), StepMode::Sample).unwrap();
    let e = std::f32::consts::E;
    assert!((r.task_mass.unwrap() - 2.0 * e / (2.0 * e + 2.0)).abs() < 1e-6);
    let mut q = proc("{}", v);
    begin(&mut q, 1, &[]);
    assert_eq!(
        q.step(1, &mut row.to_vec(), StepMode::Sample)
            .unwrap()
            .task_mass,
        None
    );
}

#[test]
fn void_regime_hysteresis_in_the_processor() {
    let v = 500;
    let mut p = proc(
        r#"{"void":{"enter_after":2,"exit_after":3},"anchor":{"enabled":false}}"#,
        v,
    );
    begin(&mut p, 1, &[]);
    // (row kind, expected regime after the step)
    let table = [
        ("flat", Regime::Orbit),
        ("flat", Regime::Void),
        ("peak", Regime::Void),
        ("peak", Regime::Void),
        ("peak", Regime::Orbit),
        ("flat", Regime::Orbit),
    ];
    for (i, (kind, want)) in table.into_iter().enumerate() {
        // Peaks move, so the accepted tokens do not form a loop (that would be a black hole).
        let mut row = if kind == "flat" {
            flat(v)
        } else {
            peaked(v, 9 + i)
        };
        let r = p.step(1, &mut row, StepMode::Sample).unwrap();
        assert_eq!(r.regime, want, "step {i}");
        p.accept(1, r.token.unwrap()).unwrap();
    }
}

#[test]
fn mass_moves_the_base_temperature_in_the_configured_direction() {
    let v = 100;
    let t = |gain: f32, d: f32| {
        let mut p = proc(
            &format!(
                r#"{{"preset":"neutral","temperature":{{"mass_gain":{gain},"min":0.01,"max":5}}}}"#
            ),
            v,
        );
        p.begin(
            1,
            &SeqParams {
                query: QueryInput {
                    context_gain: Some(d),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        p.step(1, &mut flat(v), StepMode::Sample)
            .unwrap()
            .temperature
    };
    // M = D / d_max: 0 for D = 0, 1 for D = 4.
    assert!(t(1.0, 4.0) > t(1.0, 0.0));
    assert!(t(-1.0, 4.0) < t(-1.0, 0.0));
    assert_eq!(t(0.0, 4.0), 1.0);
}

#[test]
fn rust_api_errors() {
    let v = 10;
    let mut p = proc(r#"{"limits":{"max_sequences":1}}"#, v);
    assert_eq!(
        p.step(1, &mut [0.0; 10], StepMode::Sample),
        Err(Error::UnknownSequence(1))
    );
    begin(&mut p, 1, &[]);
    assert!(matches!(
        p.begin(1, &SeqParams::default()),
        Err(Error::DuplicateSequence(1))
    ));
    assert!(matches!(
        p.begin(2, &SeqParams::default()),
        Err(Error::TooManySequences { limit: 1 })
    ));
    let mut row = [0.0f32; 10];
    row[4] = f32::NAN;
    let before = row;
    assert!(matches!(
        p.step(1, &mut row, StepMode::Logits),
        Err(Error::InvalidLogits(_))
    ));
    assert!(
        row.iter()
            .zip(before)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert!(matches!(
        p.step(1, &mut [0.0; 9], StepMode::Sample),
        Err(Error::SizeMismatch { .. })
    ));
    assert!(matches!(
        p.accept(1, 10),
        Err(Error::TokenOutOfRange { .. })
    ));
    p.end(1).unwrap();
    assert_eq!(p.end(1), Err(Error::UnknownSequence(1)));
    assert!(GravityProcessor::new(Config::default(), 0).is_err());
}

#[test]
fn reset_replays_the_same_tokens() {
    let v = 64;
    let mut p = proc(r#"{"preset":"creative"}"#, v);
    begin(&mut p, 1, &[]);
    let row: Vec<f32> = (0..v).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
    let run = |p: &mut GravityProcessor| {
        (0..6)
            .map(|_| {
                let t = p
                    .step(1, &mut row.clone(), StepMode::Sample)
                    .unwrap()
                    .token
                    .unwrap();
                p.accept(1, t).unwrap();
                t
            })
            .collect::<Vec<_>>()
    };
    let a = run(&mut p);
    p.reset(1).unwrap();
    assert_eq!(run(&mut p), a);
}

#[test]
fn gravity_processor_is_a_logits_processor() {
    let mut p: Box<dyn LogitsProcessor> = Box::new(proc(r#"{"preset":"factual"}"#, 8));
    let mut row = vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
    p.apply(9, &mut row).unwrap();
    // factual: T < 1 and min-p 0.1 → the final logits are sharper and truncated.
    assert!(row[7] > 7.0);
    assert_eq!(row[0], f32::NEG_INFINITY);
    p.accept(9, 7).unwrap();
    p.reset(9);
}

/// A row sequence that visits every regime: flat (void), a loop of peaks (black hole), moving
/// peaks (orbit).
fn scripted_row(v: usize, i: usize) -> Vec<f32> {
    match i % 12 {
        0..=2 => flat(v),
        3..=8 => {
            let mut r = peaked(v, 5 + i % 3);
            r[5 + (i + 1) % 3] = 20.0;
            r
        }
        _ => peaked(v, 17 + i),
    }
}

const CONFIGS: [&str; 6] = [
    r#"{"preset":"neutral"}"#,
    r#"{"preset":"balanced"}"#,
    r#"{"preset":"factual","sampler":{"top_k":3}}"#,
    r#"{"preset":"creative","temperature":{"response":"edt"}}"#,
    r#"{"abstain":{"enabled":true,"target":0.9,"tokens":[1,2]}}"#,
    r#"{"temperature":{"base":0},"task_space":{"tokens":[5,6]}}"#,
];

/// Steps are provisional until `accept`: `step; step; accept` ≡ `step; accept`, for every
/// preset and mode, in the reports and in the state the later steps see.
#[test]
fn stepping_a_position_twice_equals_once() {
    let v = 64;
    for json in CONFIGS {
        for mode in [StepMode::Sample, StepMode::Logits] {
            let mut once = proc(json, v);
            let mut twice = proc(json, v);
            begin(&mut once, 1, &[3, 4]);
            begin(&mut twice, 1, &[3, 4]);
            for i in 0..24 {
                let row = scripted_row(v, i);
                let (mut a, mut b, mut c) = (row.clone(), row.clone(), row.clone());
                let ra = once.step(1, &mut a, mode).unwrap();
                let rb1 = twice.step(1, &mut b, mode).unwrap();
                let rb2 = twice.step(1, &mut c, mode).unwrap();
                // Debug text compares NaN fields (no token potential in Logits mode) as equal.
                let (ra_s, rb1_s, rb2_s) =
                    (format!("{ra:?}"), format!("{rb1:?}"), format!("{rb2:?}"));
                assert_eq!(ra_s, rb1_s, "{json} {mode:?} step {i}: first report");
                assert_eq!(
                    ra_s, rb2_s,
                    "{json} {mode:?} step {i}: a second step differs"
                );
                assert_eq!(a, c, "{json} {mode:?} step {i}: rows differ");
                if ra.stop {
                    break;
                }
                let tok = ra.token.unwrap_or(field::measure(&row).unwrap().argmax);
                once.accept(1, tok).unwrap();
                twice.accept(1, tok).unwrap();
            }
        }
    }
}

/// `Sample` mode only reads the row, whatever the interventions do.
#[test]
fn sample_mode_leaves_the_row_untouched() {
    let v = 64;
    for json in CONFIGS {
        let mut p = proc(json, v);
        begin(&mut p, 1, &[3, 4]);
        for i in 0..24 {
            let row = scripted_row(v, i);
            let mut work = row.clone();
            let r = p.step(1, &mut work, StepMode::Sample).unwrap();
            assert!(
                row.iter()
                    .zip(&work)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{json} step {i} wrote the row"
            );
            if r.stop {
                break;
            }
            p.accept(1, r.token.unwrap()).unwrap();
        }
    }
}

/// A batch with one bad row steps no row: no report, no rewritten row, no sequence moved.
#[test]
fn a_failing_batch_steps_no_row() {
    let v = 40;
    for threads in [1, 3] {
        let mut p = proc(&format!(r#"{{"limits":{{"threads":{threads}}}}}"#), v);
        for s in 1..=4 {
            begin(&mut p, s, &[]);
        }
        let mut rows: Vec<f32> = (0..4).flat_map(|i| scripted_row(v, i)).collect();
        rows[2 * v + 7] = f32::NAN;
        let before = rows.clone();
        let mut reps = vec![infogravity::StepReport::default(); 4];
        let e = p
            .step_batch(&[1, 2, 3, 4], &mut rows, StepMode::Logits, &mut reps)
            .unwrap_err();
        assert!(
            matches!(&e, Error::BatchRow { row: 2, seq: 3, .. }),
            "threads {threads}: {e}"
        );
        assert!(
            before
                .iter()
                .zip(&rows)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
        assert!(
            reps.iter().all(|r| r.entropy.is_nan()),
            "a report was written"
        );
        for s in 1..=4 {
            let r = p.step(s, &mut flat(v), StepMode::Sample).unwrap();
            assert_eq!(r.step, 0, "threads {threads}: sequence {s} moved");
        }
    }
}
