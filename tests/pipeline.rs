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

/// Top-nσ keeps z ≥ max − n·σ over the finite logits (σ in f64 here), the same set at every
/// temperature; sampled tokens never fall outside it; masked tokens do not enter σ.
#[test]
fn top_nsigma_cuts_in_logit_units_at_any_temperature() {
    let v = 5000;
    let mut row: Vec<f32> = (0..v)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 * 6.0 - 3.0 + (i % 3) as f32 * 0.5)
        .collect();
    row[4999] = f32::NEG_INFINITY;
    row[17] = 4.5;
    let finite: Vec<f64> = row
        .iter()
        .filter(|z| z.is_finite())
        .map(|&z| z as f64)
        .collect();
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    let sd = (finite.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / finite.len() as f64).sqrt();
    for n in [0.5f32, 1.0, 2.0] {
        let thr = 4.5 - n as f64 * sd;
        let want: Vec<usize> = (0..v).filter(|&i| row[i] as f64 >= thr).collect();
        assert!(want.len() > 1 && want.len() < v - 1, "a test that can fail");
        for t in [0.3f32, 1.0, 2.5] {
            let cfg = format!(
                r#"{{"preset":"neutral","temperature":{{"base":{t},"max":3}},"sampler":{{"top_nsigma":{n}}}}}"#
            );
            let mut p = proc(&cfg, v);
            begin(&mut p, 1, &[]);
            let mut out = row.clone();
            p.step(1, &mut out, StepMode::Logits).unwrap();
            let kept: Vec<usize> = (0..v).filter(|&i| out[i] > f32::NEG_INFINITY).collect();
            assert_eq!(kept, want, "n {n}, T {t}");
            for seed in 0..20 {
                let mut p = proc(&cfg, v);
                common::begin_seeded(&mut p, 1, seed, &[]);
                let tok = p.step(1, &mut row.clone(), StepMode::Sample).unwrap().token;
                assert!(want.contains(&(tok.unwrap() as usize)), "n {n}, T {t}");
            }
        }
    }
    // Off by default; out of range is an error.
    assert_eq!(Config::default().sampler.top_nsigma, 0.0);
    assert!(Config::from_json(r#"{"sampler":{"top_nsigma":-1}}"#).is_err());
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
                r#"{{"escape":{{"enabled":{enabled},"cycle_penalty":{penalty},"kick":1.5,"repeat_penalty":0,"guard_min_period":0}},"temperature":{{"response":"none","base":0.5}},"sampler":{{"min_p":0}}}}"#
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

/// Accept `tokens` one step each (flat rows, T = 1, Logits mode) and return, for the step after
/// the last, its flags and the penalty each token received.
fn escape_after(json: &str, v: usize, tokens: &[u32]) -> (u32, Vec<f32>) {
    let mut p = proc(&format!(r#"{{{T_ONE},{json}}}"#), v);
    begin(&mut p, 1, &[]);
    for &t in tokens {
        p.step(1, &mut flat(v), StepMode::Logits).unwrap();
        p.accept(1, t).unwrap();
    }
    let mut row = flat(v);
    let r = p.step(1, &mut row, StepMode::Logits).unwrap();
    (
        r.flags,
        flat(v).iter().zip(&row).map(|(a, b)| a - b).collect(),
    )
}

/// The escape penalties act while a repeat forms, before any black hole: the graded penalty
/// grows with the repeat (DRY's m·base^(n − a), times the cycle strength), the guard masks the
/// token that would complete the second copy of a unit of ≥ 4 tokens, and text that does not
/// repeat pays nothing.
#[test]
fn escape_acts_before_the_loop_completes() {
    let v = 40;
    let esc = r#""escape":{"kick":1.0,"cycle_penalty":0}"#;
    let unit = [20u32, 21, 22, 23, 24];
    // One copy and the unit's first token again: a repeat of length 1 (< allowed 2) is free.
    let mut toks: Vec<u32> = [1, 2].iter().chain(&unit).copied().collect();
    toks.push(20);
    let (f, pen) = escape_after(esc, v, &toks);
    assert_eq!(f, 0);
    assert!(pen.iter().all(|&x| x == 0.0), "{pen:?}");
    // "20 21" again: 22 would extend a repeat of 2: 0.8 · 1.75⁰ · strength 2/(2·5).
    toks.push(21);
    let (f, pen) = escape_after(esc, v, &toks);
    assert_eq!(f, flags::REPEAT_PENALTY);
    assert!((pen[22] - 0.8 * 0.2).abs() < 1e-5, "{}", pen[22]);
    assert_eq!(pen.iter().filter(|&&x| x != 0.0).count(), 1);
    // "20 21 22": 0.8 · 1.75¹ · 3/10.
    toks.push(22);
    let (_, pen) = escape_after(esc, v, &toks);
    assert!((pen[23] - 0.8 * 1.75 * 0.3).abs() < 1e-5, "{}", pen[23]);
    // "20 21 22 23": 24 would complete the second copy — guarded.
    toks.push(23);
    let (f, pen) = escape_after(esc, v, &toks);
    assert_eq!(f, flags::GUARD);
    assert_eq!(pen[24], 1e4);
    // Off switches: no guard, no graded penalty.
    let off = r#""escape":{"kick":1.0,"cycle_penalty":0,"guard_min_period":0,"repeat_penalty":0}"#;
    assert_eq!(escape_after(off, v, &toks).0, 0);
    // A breaker inside the repeat cuts its length for the graded penalty: "21" is a breaker,
    // so after "20 21 22" the repeat counts one token (22) and nothing is penalised.
    let brk = r#""escape":{"kick":1.0,"cycle_penalty":0,"guard_min_period":0,"breakers":[21]}"#;
    assert_eq!(escape_after(brk, v, &toks[..toks.len() - 1]).0, 0);
    // Forty distinct tokens: never a penalty.
    let distinct: Vec<u32> = (0..39).collect();
    assert_eq!(escape_after(esc, v, &distinct).0, 0);
    // A period-1 run: "7 7 7" is a repeat of 2 with strength 1 → 0.8 on a fourth 7 (and a
    // complete 3-cycle: the black hole too, whose kick is 1 here).
    let (f, pen) = escape_after(esc, v, &[3, 7, 7, 7]);
    assert_eq!(f, flags::REPEAT_PENALTY | flags::KICK);
    assert!((pen[7] - 0.8).abs() < 1e-5);
    // The escape off (the `neutral` preset's default): nothing at all.
    let none = r#""escape":{"enabled":false}"#;
    assert_eq!(escape_after(none, v, &toks).0, 0);
}

/// The answer aggregates stream: after each accepted token the next step's report (and
/// `answer`) carries the mean and max of H, the mean √varentropy and Φ over the tokens so far,
/// and the field at the first content token of the content table.
#[test]
fn answer_aggregates_stream() {
    use infogravity::ContentTable;
    let v = 20;
    let mut p = proc(r#"{"preset":"neutral","temperature":{"base":0}}"#, v);
    // Tokens 0..10 are function words, 10..20 content.
    let table: Vec<bool> = (0..v).map(|t| t >= 10).collect();
    assert!(
        p.set_content_tokens(Some(ContentTable::from_bools(&table[..5])))
            .is_err()
    );
    p.set_content_tokens(Some(ContentTable::from_bools(&table)))
        .unwrap();
    // A probe reading 0.25 + z[3] − 0.5·z[12]; another vocabulary's is refused.
    let probe = |row: &[f32]| 0.25 + row[3] as f64 - 0.5 * row[12] as f64;
    let other = infogravity::Probe::new(v + 1, &[3], &[1.0], 0.0).unwrap();
    assert!(p.set_probe(Some(other)).is_err());
    p.set_probe(Some(
        infogravity::Probe::new(v, &[3, 12], &[1.0, -0.5], 0.25).unwrap(),
    ))
    .unwrap();
    begin(&mut p, 1, &[]);
    assert_eq!(p.answer(1).unwrap().tokens, 0);
    assert!(p.answer(1).unwrap().probe_first.is_nan());
    assert!(p.answer(1).unwrap().mean_entropy.is_nan());
    // Three greedy steps whose argmax is 3 (function), 12, 15.
    let bump = |at: usize, by: f32| {
        let mut r = flat(v);
        r[at] += by;
        r
    };
    let rows = [bump(3, 1.0), peaked(v, 12), bump(15, 2.0)];
    let mut fields = vec![];
    for (row, tok) in rows.iter().zip([3u32, 12, 15]) {
        let f = field::measure(row).unwrap();
        let phi = f.potential(row[tok as usize]) as f32;
        fields.push((f, phi));
        let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
        assert_eq!(r.token, Some(tok));
        assert!((r.probe as f64 - probe(row)).abs() < 1e-5);
        // The report carries the void of the answer before this step (NaN before the first).
        assert_eq!(r.answer.void.is_nan(), fields.len() == 1);
        assert_eq!(
            r.answer.tokens as usize,
            fields.len() - 1,
            "before this step"
        );
        p.accept(1, tok).unwrap();
    }
    let a = p.answer(1).unwrap();
    let n = fields.len() as f64;
    let mean = |g: &dyn Fn(&(field::Field, f32)) -> f64| fields.iter().map(g).sum::<f64>() / n;
    assert_eq!(a.tokens, 3);
    assert!((a.mean_entropy as f64 - mean(&|x| x.0.entropy)).abs() < 1e-5);
    let max_h = fields.iter().map(|x| x.0.entropy).fold(0.0, f64::max);
    assert!((a.max_entropy as f64 - max_h).abs() < 1e-5);
    let sv = mean(&|x| x.0.varentropy.max(0.0).sqrt());
    assert!((a.mean_sqrt_varentropy as f64 - sv).abs() < 1e-5);
    assert!((a.mean_potential as f64 - mean(&|x| x.1 as f64)).abs() < 1e-5);
    assert!((a.sum_potential as f64 - n * mean(&|x| x.1 as f64)).abs() < 1e-4);
    // The first content token is 12, at step 1, on the peaked row.
    let fc = a.first_content.unwrap();
    assert_eq!(fc.step, 1);
    assert!((fc.entropy as f64 - fields[1].0.entropy).abs() < 1e-6);
    assert!((fc.one_minus_pmax as f64 - (1.0 - fields[1].0.p_max())).abs() < 1e-6);
    assert!((a.probe_first as f64 - probe(&rows[0])).abs() < 1e-5);
    let pm = rows.iter().map(|r| probe(r)).sum::<f64>() / n;
    assert!((a.probe_mean as f64 - pm).abs() < 1e-5);
    assert!((a.first_entropy as f64 - fields[0].0.entropy).abs() < 1e-6);
    assert!((a.first_one_minus_pmax as f64 - (1.0 - fields[0].0.p_max())).abs() < 1e-6);
    // The answer-level void by the shipped weights: σ(b + w·(mean H, mean Φ, max Φ)).
    let w = infogravity::config::AnswerWeights::default();
    let max_phi = fields.iter().map(|x| x.1 as f64).fold(0.0, f64::max);
    let s = w.bias as f64
        + w.mean_entropy as f64 * mean(&|x| x.0.entropy)
        + w.mean_potential as f64 * mean(&|x| x.1 as f64)
        + w.max_potential as f64 * max_phi;
    assert!(
        (a.void as f64 - 1.0 / (1.0 + (-s).exp())).abs() < 1e-5,
        "{}",
        a.void
    );
    // A calibration's answer section replaces the weights: here the probe's and the first
    // content token's entropy (step 1) only.
    let only = infogravity::config::AnswerWeights {
        bias: 0.5,
        mean_entropy: 0.0,
        mean_potential: 0.0,
        max_potential: 0.0,
        probe: -0.01,
        content_entropy: 2.0,
        ..w.clone()
    };
    let c = format!(
        r#"{{"format":"infogravity-calibration","version":2,"answer":{}}}"#,
        serde_json::to_string(&only).unwrap()
    );
    p.set_calibration(Some(infogravity::Calibration::from_json(&c).unwrap()));
    let s = 0.5 - 0.01 * pm + 2.0 * fields[1].0.entropy;
    let b = p.answer(1).unwrap();
    assert!(
        (b.void as f64 - 1.0 / (1.0 + (-s).exp())).abs() < 1e-5,
        "{}",
        b.void
    );
    p.set_calibration(None);
    assert_eq!(p.answer(1).unwrap().void, a.void);
    // A fork carries them; a reset clears them.
    p.fork(1, 2).unwrap();
    assert_eq!(p.answer(2).unwrap(), a);
    p.reset(1).unwrap();
    assert_eq!(p.answer(1).unwrap().tokens, 0);
    assert!(p.answer(9).is_err(), "unknown sequence");
    // Without a table every token is content: the first is.
    p.set_content_tokens(None).unwrap();
    begin(&mut p, 3, &[]);
    p.step(3, &mut flat(v), StepMode::Sample).unwrap();
    p.accept(3, 4).unwrap();
    assert_eq!(p.answer(3).unwrap().first_content.unwrap().step, 0);
    // A token the host chose outside the step's largest candidates: its Φ is unknown, so the
    // shipped void (which weighs Φ) is NaN rather than a score over part of the answer.
    begin(&mut p, 4, &[]);
    let mut rising: Vec<f32> = (0..v).map(|i| i as f32).collect();
    p.step(4, &mut rising, StepMode::Logits).unwrap();
    p.accept(4, 0).unwrap();
    let a = p.answer(4).unwrap();
    assert_eq!((a.tokens, a.potential_tokens), (1, 0));
    assert!(a.void.is_nan() && a.mean_entropy.is_finite());
}

/// The content judgement of a decoded piece: words, names and numbers are content; function
/// words, whitespace and punctuation are not.
#[test]
fn content_pieces() {
    use infogravity::processor::is_content_piece;
    for p in [" Paris", "Ky", " 1989", "stan", " Asia", " French"] {
        assert!(is_content_piece(p), "{p:?}");
    }
    for p in [" the", " The", " of", "\n", " ", ".", ",", " is", "'s", ""] {
        assert!(!is_content_piece(p), "{p:?}");
    }
    let t = infogravity::ContentTable::from_pieces([" the", " Paris", "."]);
    assert_eq!(t.len(), 3);
    assert!(!t.is_content(0) && t.is_content(1) && !t.is_content(2) && !t.is_content(3));
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
                r#"{{"preset":"neutral","temperature":{{"mass_gain":{gain},"min":0.01,"max":5}},"mass":{{"scale":"minmax"}}}}"#
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

/// `mass.scale = auto` without a calibration: M is absent until `warmup` queries have reached
/// their first step, then the z-score of the new query against those (population SD); a
/// sequence counts once (reset and fork do not add it again); the temperature then moves by
/// `mass_gain` per SD.
#[test]
fn mass_is_standardised_by_the_running_statistics() {
    let v = 50;
    let mut p = proc(
        r#"{"preset":"neutral","temperature":{"mass_gain":0.5,"min":0.01,"max":5},"mass":{"warmup":4}}"#,
        v,
    );
    let begin_d = |p: &mut GravityProcessor, seq: u64, d: f32| {
        p.begin(
            seq,
            &SeqParams {
                query: QueryInput {
                    context_gain: Some(d),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap()
    };
    let ds = [1.0f32, 2.0, 3.0, 6.0];
    for (i, &d) in ds.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(begin_d(&mut p, seq, d).m, None, "warming up");
        let r = p.step(seq, &mut flat(v), StepMode::Sample).unwrap();
        assert_eq!(r.temperature, 1.0);
        // Neither reset nor fork counts the query again.
        p.reset(seq).unwrap();
        p.step(seq, &mut flat(v), StepMode::Sample).unwrap();
        p.fork(seq, 100 + seq).unwrap();
        p.step(100 + seq, &mut flat(v), StepMode::Sample).unwrap();
    }
    let mean = ds.iter().map(|&d| d as f64).sum::<f64>() / 4.0;
    let sd = (ds.iter().map(|&d| (d as f64 - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    let m = begin_d(&mut p, 9, 5.0).m.unwrap() as f64;
    assert!((m - (5.0 - mean) / sd).abs() < 1e-5, "{m}");
    let t = p
        .step(9, &mut flat(v), StepMode::Sample)
        .unwrap()
        .temperature as f64;
    assert!((t - (0.5 * m).exp()).abs() < 1e-4, "{t}");
    // The fifth query is counted now: the sixth is standardised against all five.
    let all = [1.0f64, 2.0, 3.0, 6.0, 5.0];
    let mean = all.iter().sum::<f64>() / 5.0;
    let sd = (all.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
    let m = begin_d(&mut p, 10, 0.5).m.unwrap() as f64;
    assert!((m - (0.5 - mean) / sd).abs() < 1e-5, "{m}");
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

/// A concept bias over `v` tokens pointing at tokens 10..20 (one SD up per token there).
fn concept_toward_tens(v: usize) -> infogravity::Concept {
    let b: Vec<f32> = (0..v)
        .map(|i| if (10..20).contains(&i) { 1.0 } else { 0.0 })
        .collect();
    infogravity::Concept::from_bias(&b).unwrap()
}

/// The exact KL(q ‖ p) of two logit rows, in f64.
fn kl_rows(q: &[f32], p: &[f32]) -> f64 {
    let lse = |x: &[f32]| {
        let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
    };
    let (lq, lp) = (lse(q), lse(p));
    q.iter()
        .zip(p)
        .map(|(&a, &b)| {
            let pa = (a as f64 - lq).exp();
            pa * ((a as f64 - lq) - (b as f64 - lp))
        })
        .sum()
}

#[test]
fn concept_tilt_is_bounded_in_kl_and_written_whole() {
    let v = 300;
    let row = flat(v);
    for max_kl in [0.01f32, 0.1, 1.0] {
        let mut p = proc(
            &format!(r#"{{"concept":{{"lambda":50,"max_kl":{max_kl}}},{T_ONE}}}"#),
            v,
        );
        p.set_concept(Some(concept_toward_tens(v))).unwrap();
        begin(&mut p, 1, &[]);
        let mut out = row.clone();
        let r = p.step(1, &mut out, StepMode::Logits).unwrap();
        assert!(r.flags & flags::CONCEPT != 0, "{max_kl}");
        // T = 1, no truncation: the host receives the tilted row itself, every token moved.
        let kl = kl_rows(&out, &row);
        assert!(kl <= max_kl as f64 * 1.001, "{max_kl}: KL {kl}");
        assert!(kl >= max_kl as f64 * 0.97, "{max_kl}: KL {kl}");
        assert!((kl - r.concept_kl as f64).abs() < 1e-3 * max_kl as f64 + 1e-6);
        let up = out[15] - row[15];
        let down = out[100] - row[100];
        assert!(up > 0.0 && down < 0.0, "{up} {down}");
        // The report still describes the measured row.
        let measured = field::measure(&row).unwrap();
        assert!((r.entropy as f64 - measured.entropy).abs() < 1e-5);
    }
}

#[test]
fn concept_tilt_gates_and_precedence() {
    let v = 300;
    let tens = concept_toward_tens(v);
    // λ = 0, a threshold above the score, or the neutral preset: bit-identical to no concept.
    for json in [
        format!(r#"{{"concept":{{"lambda":0}},{T_ONE}}}"#),
        format!(r#"{{"concept":{{"min_void":1}},{T_ONE}}}"#),
        format!(r#"{{"concept":{{"enabled":false}},{T_ONE}}}"#),
    ] {
        let mut p = proc(&json, v);
        p.set_concept(Some(tens.clone())).unwrap();
        begin(&mut p, 1, &[]);
        let mut out = flat(v);
        let r = p.step(1, &mut out, StepMode::Logits).unwrap();
        assert_eq!(r.flags & flags::CONCEPT, 0, "{json}");
        assert_eq!(out, flat(v), "{json}");
    }
    // Greedy on a row where token 3 leads token 12 by a hair: the tilt flips the choice.
    let mut row = flat(v);
    row[3] = 1.0;
    row[12] = 0.99;
    let json = r#"{"concept":{"lambda":4},"temperature":{"base":0}}"#;
    let mut p = proc(json, v);
    begin(&mut p, 1, &[]);
    begin(&mut p, 2, &[]);
    let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_eq!((r.token, r.flags & flags::CONCEPT), (Some(3), 0));
    // A sequence's own concept; the other sequence is untouched.
    p.set_sequence_concept(1, Some(tens.clone())).unwrap();
    let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_eq!(r.token, Some(12));
    assert!(r.flags & flags::CONCEPT != 0);
    // Φ is reported under the measured field, not the tilted one.
    let f = field::measure(&row).unwrap();
    assert!((r.token_potential as f64 - f.potential(row[12])).abs() < 1e-5);
    assert_eq!(
        p.step(2, &mut row.clone(), StepMode::Sample).unwrap().token,
        Some(3)
    );
    // Reset keeps it; fork copies it; clearing it falls back to the processor's (none).
    p.reset(1).unwrap();
    p.fork(1, 3).unwrap();
    for s in [1, 3] {
        assert_eq!(
            p.step(s, &mut row.clone(), StepMode::Sample).unwrap().token,
            Some(12)
        );
    }
    p.set_sequence_concept(1, None).unwrap();
    assert_eq!(
        p.step(1, &mut row.clone(), StepMode::Sample).unwrap().token,
        Some(3)
    );
    // Sample and Logits modes agree: the written row's argmax is the sampled token.
    let mut out = row.clone();
    p.step(3, &mut out, StepMode::Logits).unwrap();
    let best = (0..v).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
    assert_eq!(best, 12);
    // Errors: a concept for another vocabulary, an unknown sequence, a constant bias.
    assert!(matches!(
        p.set_concept(Some(concept_toward_tens(v + 1))),
        Err(Error::SizeMismatch { .. })
    ));
    assert!(matches!(
        p.set_sequence_concept(99, Some(tens.clone())),
        Err(Error::UnknownSequence(99))
    ));
    assert!(infogravity::Concept::from_bias(&vec![1.0; v]).is_err());
}

#[test]
fn concept_type_mass_gate() {
    // The concept's type is tokens 10..20. A row that already puts most of its mass there is
    // left alone under `max_type_mass` 0.5 (the default); a row that does not is tilted; a
    // concept without its tokens, or the gate at 1, tilts both.
    let v = 300;
    let typed = concept_toward_tens(v)
        .with_tokens(&(10..20).rev().chain([12, 15]).collect::<Vec<u32>>())
        .unwrap();
    assert_eq!(typed.tokens(), Some(&(10..20).collect::<Vec<u32>>()[..]));
    let mut named = flat(v);
    named[12] = 8.0; // p(type) ≈ e⁸ / (e⁸ + 299) ≈ 0.91
    let mut absent = flat(v);
    absent[3] = 8.0; // p(type) ≈ 10 / (e⁸ + 299) ≈ 0.003
    let tilted = |json: &str, c: &infogravity::Concept, row: &[f32]| {
        let mut p = proc(json, v);
        p.set_concept(Some(c.clone())).unwrap();
        begin(&mut p, 1, &[]);
        let mut out = row.to_vec();
        let r = p.step(1, &mut out, StepMode::Logits).unwrap();
        (r.flags & flags::CONCEPT != 0, out)
    };
    let gate = format!(r#"{{"concept":{{"max_type_mass":0.5}},{T_ONE}}}"#);
    let (t, out) = tilted(&gate, &typed, &named);
    assert!(!t);
    assert_eq!(out, named);
    assert!(tilted(&gate, &typed, &absent).0);
    assert!(tilted(&gate, &concept_toward_tens(v), &named).0);
    let default = format!(r#"{{"concept":{{}},{T_ONE}}}"#);
    assert!(!tilted(&default, &typed, &named).0);
    let off = format!(r#"{{"concept":{{"max_type_mass":1}},{T_ONE}}}"#);
    assert!(tilted(&off, &typed, &named).0);
    // The threshold is compared with the mass itself: just above it, the gate opens.
    let open = format!(r#"{{"concept":{{"max_type_mass":0.95}},{T_ONE}}}"#);
    assert!(tilted(&open, &typed, &named).0);
    // Bad input: a token outside the vocabulary, a threshold outside (0, 1].
    assert!(matches!(
        concept_toward_tens(v).with_tokens(&[3, v as u32]),
        Err(Error::TokenOutOfRange { .. })
    ));
    for bad in ["0", "-0.1", "1.5"] {
        let json = format!(r#"{{"concept":{{"max_type_mass":{bad}}}}}"#);
        assert!(infogravity::Config::from_json(&json).is_err(), "{bad}");
    }
}

#[test]
fn concept_tilt_until_the_first_content_token() {
    // Tokens below 10 are function words, the rest content. Under `until_content` the tilt acts
    // while the sequence has emitted only function words, and stops after its first content
    // token; without a content table every token counts, so only the first step is tilted.
    let v = 300;
    let table: Vec<bool> = (0..v).map(|i| i >= 10).collect();
    let mut the = flat(v);
    the[5] = 12.0; // a function word far ahead: the tilt moves mass, not the choice
    let mut named = flat(v);
    named[12] = 12.0;
    let json = r#"{"concept":{"lambda":4,"until_content":true},"temperature":{"base":0}}"#;
    for with_table in [true, false] {
        let mut p = proc(json, v);
        p.set_concept(Some(concept_toward_tens(v))).unwrap();
        if with_table {
            p.set_content_tokens(Some(infogravity::ContentTable::from_bools(&table)))
                .unwrap();
        }
        begin(&mut p, 1, &[]);
        let mut tilted = vec![];
        for (row, want) in [(&the, 5), (&the, 5), (&named, 12), (&the, 5)] {
            let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
            assert_eq!(r.token, Some(want));
            p.accept(1, want).unwrap();
            tilted.push(r.flags & flags::CONCEPT != 0);
        }
        let want = if with_table {
            [true, true, true, false]
        } else {
            [true, false, false, false]
        };
        assert_eq!(tilted, want, "table: {with_table}");
        // A reset starts the onset again; a content token forced without a step of its own
        // (a grammar's, a host's) ends it too.
        p.reset(1).unwrap();
        let r = p.step(1, &mut the.clone(), StepMode::Sample).unwrap();
        assert!(r.flags & flags::CONCEPT != 0);
        p.accept(1, 5).unwrap();
        p.accept(1, 12).unwrap();
        let r = p.step(1, &mut the.clone(), StepMode::Sample).unwrap();
        assert_eq!(r.flags & flags::CONCEPT, 0);
    }
}

#[test]
fn concept_tilt_in_batches_equals_single_steps() {
    use half::f16;
    let v = 257;
    let rows: Vec<Vec<f32>> = (0..4)
        .map(|s| (0..v).map(|i| ((i * (s + 3)) % 11) as f32 * 0.05).collect())
        .collect();
    let json = r#"{"concept":{"lambda":8,"max_kl":0.2},"limits":{"threads":2}}"#;
    let run = |batch: bool| {
        let mut p = proc(json, v);
        p.set_concept(Some(concept_toward_tens(v))).unwrap();
        for s in 0..4 {
            begin(&mut p, s, &[]);
        }
        let mut block: Vec<f16> = rows.iter().flatten().map(|&z| f16::from_f32(z)).collect();
        let mut reps = vec![infogravity::StepReport::default(); 4];
        if batch {
            p.step_batch(&[0, 1, 2, 3], &mut block, StepMode::Logits, &mut reps)
                .unwrap();
        } else {
            for (s, row) in block.chunks_exact_mut(v).enumerate() {
                let r = p
                    .step_row(s as u64, infogravity::LogitsMut::F16(row), StepMode::Logits)
                    .unwrap();
                reps[s] = r;
            }
        }
        (block, reps)
    };
    let (a, ra) = run(true);
    let (b, rb) = run(false);
    assert_eq!(a, b);
    // (Debug: the reports hold NaN, which `==` never matches.)
    assert_eq!(format!("{ra:?}"), format!("{rb:?}"));
    assert!(ra.iter().all(|r| r.flags & flags::CONCEPT != 0));
}

#[test]
fn concept_tilt_onset_only() {
    let v = 300;
    let mut row = flat(v);
    row[3] = 1.0;
    row[12] = 0.99;
    let mut p = proc(
        r#"{"concept":{"lambda":4,"max_steps":1},"temperature":{"base":0}}"#,
        v,
    );
    p.set_concept(Some(concept_toward_tens(v))).unwrap();
    begin(&mut p, 1, &[]);
    let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_eq!(
        (r.token, r.flags & flags::CONCEPT),
        (Some(12), flags::CONCEPT)
    );
    p.accept(1, 12).unwrap();
    // The second step is past the onset: untilted.
    let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_eq!((r.token, r.flags & flags::CONCEPT), (Some(3), 0));
}

/// A query row where token 3 (the attractor) leads token 12 (plausible: p within 0.9 of the
/// best), and a null-query row that makes 3 the answer whatever the query names.
fn attractor_rows(v: usize) -> (Vec<f32>, Vec<f32>) {
    let mut row = flat(v);
    row[3] = 6.0;
    row[12] = 5.9;
    let mut null = flat(v);
    null[3] = 8.0;
    (row, null)
}

#[test]
fn contrast_demotes_the_attractor_for_one_position() {
    let v = 300;
    let (row, null) = attractor_rows(v);
    let greedy = r#"{"temperature":{"base":0}}"#;
    let mut p = proc(greedy, v);
    begin(&mut p, 1, &[]);
    begin(&mut p, 2, &[]);
    let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_eq!((r.token, r.flags & flags::CONTRAST), (Some(3), 0));
    p.set_contrast(1, &null).unwrap();
    let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_eq!(
        (r.token, r.flags & flags::CONTRAST),
        (Some(12), flags::CONTRAST)
    );
    // Φ and the report are the measured row's.
    let f = field::measure(&row).unwrap();
    assert!((r.token_potential as f64 - f.potential(row[12])).abs() < 1e-5);
    assert!((r.entropy as f64 - f.entropy).abs() < 1e-5);
    // The step is provisional: stepped again at the same position, the row still applies; the
    // other sequence never saw it.
    let again = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_eq!(format!("{again:?}"), format!("{r:?}"));
    assert_eq!(
        p.step(2, &mut row.clone(), StepMode::Sample).unwrap().token,
        Some(3)
    );
    // Logits mode agrees: the written row's argmax is the sampled token.
    let mut out = row.clone();
    p.step(1, &mut out, StepMode::Logits).unwrap();
    let best = (0..v).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
    assert_eq!(best, 12);
    // Accepting a token spends it.
    p.accept(1, 12).unwrap();
    let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
    assert_eq!((r.token, r.flags & flags::CONTRAST), (Some(3), 0));
    // A confident step keeps its token: nothing else is within α of p_max.
    begin(&mut p, 4, &[]);
    let mut sure = row.clone();
    sure[3] = 12.0;
    p.set_contrast(4, &null).unwrap();
    let r = p.step(4, &mut sure, StepMode::Sample).unwrap();
    assert_eq!(
        (r.token, r.flags & flags::CONTRAST),
        (Some(3), flags::CONTRAST)
    );
    // Fork copies the pending row; reset drops it.
    p.fork(4, 3).unwrap();
    assert_eq!(
        p.step(3, &mut row.clone(), StepMode::Sample).unwrap().token,
        Some(12)
    );
    p.reset(4).unwrap();
    assert_eq!(
        p.step(4, &mut row.clone(), StepMode::Sample).unwrap().token,
        Some(3)
    );
    // Bad rows are refused and leave the pending one in place.
    p.set_contrast(2, &null).unwrap();
    let mut nan = null.clone();
    nan[7] = f32::NAN;
    assert!(matches!(
        p.set_contrast(2, &nan),
        Err(Error::InvalidLogits(_))
    ));
    assert!(matches!(
        p.set_contrast(2, &null[1..]),
        Err(Error::SizeMismatch { .. })
    ));
    assert!(matches!(
        p.set_contrast(2, &vec![f32::NEG_INFINITY; v]),
        Err(Error::InvalidLogits(_))
    ));
    assert!(matches!(
        p.set_contrast(99, &null),
        Err(Error::UnknownSequence(99))
    ));
    assert_eq!(
        p.step(2, &mut row.clone(), StepMode::Sample).unwrap().token,
        Some(12)
    );
}

#[test]
fn contrast_gates() {
    let v = 300;
    let (row, null) = attractor_rows(v);
    // Off, β = 0, the neutral preset, or a plausibility that leaves only the best token:
    // bit-identical to no row.
    for json in [
        format!(r#"{{"contrast":{{"enabled":false}},{T_ONE}}}"#),
        format!(r#"{{"contrast":{{"beta":0}},{T_ONE}}}"#),
        format!(r#"{{"preset":"neutral","contrast":{{"plausibility":0.1}},{T_ONE}}}"#),
    ] {
        let mut p = proc(&json, v);
        begin(&mut p, 1, &[]);
        p.set_contrast(1, &null).unwrap();
        let mut out = row.clone();
        let r = p.step(1, &mut out, StepMode::Logits).unwrap();
        assert_eq!(r.flags & flags::CONTRAST, 0, "{json}");
        assert_eq!(out, row, "{json}");
    }
    // At T = 1 the host receives the contrasted row itself: the head (p ≥ 0.1·p_max) raised
    // by −log q, every other token untouched.
    let mut p = proc(&format!(r#"{{"contrast":{{}},{T_ONE}}}"#), v);
    begin(&mut p, 1, &[]);
    p.set_contrast(1, &null).unwrap();
    let mut out = row.clone();
    p.step(1, &mut out, StepMode::Logits).unwrap();
    let q = field::measure(&null).unwrap();
    for t in [3, 12] {
        let want = row[t] as f64 - (null[t] as f64 - q.log_z);
        assert!(
            (out[t] as f64 - want).abs() < 1e-4,
            "{t}: {} {want}",
            out[t]
        );
    }
    assert!(
        (0..v)
            .filter(|&t| t != 3 && t != 12)
            .all(|t| out[t] == row[t])
    );
    let only_best = format!(r#"{{"contrast":{{"plausibility":1}},{T_ONE}}}"#);
    let mut p = proc(&only_best, v);
    begin(&mut p, 1, &[]);
    p.set_contrast(1, &null).unwrap();
    let mut out = row.clone();
    p.step(1, &mut out, StepMode::Logits).unwrap();
    let best = (0..v).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
    assert_eq!(best, 3);
    // Only where the step's most likely token is the null row's too (the default): a step led
    // by token 12, which the null query does not favour, stays plain, bit for bit; without the
    // gate it is reordered (12 − log q(12) still leads).
    let mut led = row.clone();
    led[12] = 6.1;
    for (json, used) in [
        (format!(r#"{{"contrast":{{}},{T_ONE}}}"#), false),
        (
            format!(r#"{{"contrast":{{"prior_top_only":false}},{T_ONE}}}"#),
            true,
        ),
    ] {
        let mut p = proc(&json, v);
        begin(&mut p, 1, &[]);
        p.set_contrast(1, &null).unwrap();
        let mut out = led.clone();
        let r = p.step(1, &mut out, StepMode::Logits).unwrap();
        assert_eq!(r.flags & flags::CONTRAST != 0, used, "{json}");
        assert_eq!(out == led, !used, "{json}");
    }
    // Until the first content token (the default): tokens below 10 are function words. (The
    // gate is off here: " the" leads the first step, the attractor 3 the null row's.)
    let table: Vec<bool> = (0..v).map(|i| i >= 10).collect();
    let mut p = proc(
        r#"{"temperature":{"base":0},"contrast":{"prior_top_only":false}}"#,
        v,
    );
    p.set_content_tokens(Some(infogravity::ContentTable::from_bools(&table)))
        .unwrap();
    begin(&mut p, 1, &[]);
    let mut the = flat(v);
    the[5] = 12.0;
    let mut used = vec![];
    for (r0, want) in [(&the, 5), (&row, 12), (&row, 3)] {
        p.set_contrast(1, &null).unwrap();
        let r = p.step(1, &mut r0.clone(), StepMode::Sample).unwrap();
        assert_eq!(r.token, Some(want));
        p.accept(1, want).unwrap();
        used.push(r.flags & flags::CONTRAST != 0);
    }
    assert_eq!(used, [true, true, false]);
    // Bad knobs.
    for bad in [
        r#"{"contrast":{"beta":-1}}"#,
        r#"{"contrast":{"beta":11}}"#,
        r#"{"contrast":{"plausibility":0}}"#,
        r#"{"contrast":{"plausibility":1.5}}"#,
        r#"{"contrast":{"plausibility":"NaN"}}"#,
    ] {
        assert!(infogravity::Config::from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn contrast_and_typed_concept_in_batches_equal_single_steps() {
    // f16 rows, two worker threads, the null-query contrast and a typed concept on the same
    // steps: a batch writes what single steps write.
    use half::f16;
    let v = 257;
    let rows: Vec<Vec<f32>> = (0..4)
        .map(|s| (0..v).map(|i| ((i * (s + 3)) % 11) as f32 * 0.05).collect())
        .collect();
    let nulls: Vec<Vec<f16>> = (0..4)
        .map(|s| {
            (0..v)
                .map(|i| f16::from_f32(((i * (s + 5)) % 7) as f32 * 0.3))
                .collect()
        })
        .collect();
    let json = r#"{"concept":{"lambda":8,"max_kl":0.2},"contrast":{"plausibility":0.5,"prior_top_only":false},"limits":{"threads":2}}"#;
    let typed = concept_toward_tens(v)
        .with_tokens(&(10..20).collect::<Vec<u32>>())
        .unwrap();
    let run = |batch: bool| {
        let mut p = proc(json, v);
        p.set_concept(Some(typed.clone())).unwrap();
        for s in 0..4 {
            begin(&mut p, s, &[]);
            if s != 2 {
                p.set_contrast(s, &nulls[s as usize]).unwrap();
            }
        }
        let mut block: Vec<f16> = rows.iter().flatten().map(|&z| f16::from_f32(z)).collect();
        let mut reps = vec![infogravity::StepReport::default(); 4];
        if batch {
            p.step_batch(&[0, 1, 2, 3], &mut block, StepMode::Logits, &mut reps)
                .unwrap();
        } else {
            for (s, row) in block.chunks_exact_mut(v).enumerate() {
                let r = p
                    .step_row(s as u64, infogravity::LogitsMut::F16(row), StepMode::Logits)
                    .unwrap();
                reps[s] = r;
            }
        }
        (block, reps)
    };
    let (a, ra) = run(true);
    let (b, rb) = run(false);
    assert_eq!(a, b);
    assert_eq!(format!("{ra:?}"), format!("{rb:?}"));
    let used: Vec<bool> = ra.iter().map(|r| r.flags & flags::CONTRAST != 0).collect();
    assert_eq!(used, [true, true, false, true]);
    assert!(ra.iter().all(|r| r.flags & flags::CONCEPT != 0));
}

/// `rollback(seq, n)` returns a sequence exactly to where it was before its last n tokens:
/// stepping on afterwards gives the reports, tokens and answer aggregates of a sequence that
/// never took them — every preset, sampling at T > 0 included (the stream is rewound too).
#[test]
fn rollback_is_exact() {
    let v = 64;
    let mut checked = 0;
    for json in CONFIGS {
        let json = json.replacen('{', r#"{"escape":{"rollback":64},"#, 1);
        let mut a = proc(&json, v);
        let mut b = proc(&json, v);
        begin(&mut a, 1, &[3, 4]);
        begin(&mut b, 1, &[3, 4]);
        let mut i = 0;
        checked += 1;
        // Both take 9 steps; `a` then 5 more (a detour through every regime), rewound.
        let go = |p: &mut GravityProcessor, i: usize| -> Option<String> {
            let row = scripted_row(v, i);
            let r = p.step(1, &mut row.clone(), StepMode::Sample).unwrap();
            if r.stop {
                return None;
            }
            p.accept(1, r.token.unwrap()).unwrap();
            Some(format!("{r:?}"))
        };
        while i < 9 && go(&mut a, i).is_some() && go(&mut b, i).is_some() {
            i += 1;
        }
        if i < 9 {
            checked -= 1;
            continue; // abstained: nothing to rewind
        }
        // A detour, rewound; the main path on; a second detour, rewound to a position saved
        // after the first rewind.
        for k in 0..5 {
            go(&mut a, 30 + k);
        }
        a.rollback(1, 5).unwrap();
        for i in 9..15 {
            assert_eq!(go(&mut a, i), go(&mut b, i), "{json} step {i}");
        }
        for k in 0..3 {
            go(&mut a, 50 + k);
        }
        a.rollback(1, 3).unwrap();
        assert_eq!(format!("{:?}", a.answer(1)), format!("{:?}", b.answer(1)));
        for i in 15..26 {
            assert_eq!(go(&mut a, i), go(&mut b, i), "{json} step {i}");
        }
    }
    assert!(checked >= 5, "{checked} configurations rewound");
}

/// Where the guard fires with rollback on, the step advises dropping the copy so far; after the
/// host rewinds, the token that began the copy is masked at that position, and the budget
/// bounds how much a sequence rewinds before the guard acts alone.
#[test]
fn rollback_advice_bans_the_copy_start() {
    let v = 40;
    let esc = r#""escape":{"kick":1.0,"cycle_penalty":0,"repeat_penalty":0,"rollback":8,"rollback_budget":6}"#;
    let mut p = proc(&format!(r#"{{{T_ONE},{esc}}}"#), v);
    begin(&mut p, 1, &[]);
    let mut out = vec![];
    // "1 2 20 21 22 23 24 20 21 22 23": 24 would complete the second copy.
    for t in [1u32, 2, 20, 21, 22, 23, 24, 20, 21, 22, 23] {
        let r = p.step(1, &mut flat(v), StepMode::Logits).unwrap();
        assert_eq!(r.rollback, 0);
        p.accept(1, t).unwrap();
        out.push(t);
    }
    let mut row = peaked(v, 24);
    let r = p.step(1, &mut row, StepMode::Sample).unwrap();
    assert_eq!(
        r.flags & (flags::GUARD | flags::ROLLBACK),
        flags::GUARD | flags::ROLLBACK
    );
    assert_eq!(r.rollback, 4, "the copy so far: 20 21 22 23");
    assert_eq!(p.rollback_advice(1), Ok(4));
    assert_ne!(
        r.token,
        Some(24),
        "the guarded token is valid for a host that does not rewind"
    );
    // A rewind other than the advised one bans nothing (and cannot reach the query).
    assert!(matches!(p.rollback(1, 12), Err(Error::InvalidArgument(_))));
    p.rollback(1, 4).unwrap();
    assert_eq!(p.rollback_advice(1), Ok(0));
    // Back after "… 24": the row wants 20 again, which began the copy: banned here only.
    let r = p.step(1, &mut peaked(v, 20), StepMode::Sample).unwrap();
    assert_eq!(r.step, 7);
    assert_eq!(r.flags & flags::BANNED, flags::BANNED);
    assert_ne!(r.token, Some(20));
    p.accept(1, r.token.unwrap()).unwrap();
    let r = p.step(1, &mut peaked(v, 20), StepMode::Sample).unwrap();
    assert_eq!((r.flags & flags::BANNED, r.token), (0, Some(20)));
    p.accept(1, 20).unwrap();
    // The budget: 4 of 6 spent, so a second copy of 4 is guarded but not rewound.
    for t in [30u32, 31, 32, 33, 20, 30, 31, 32] {
        p.step(1, &mut flat(v), StepMode::Logits).unwrap();
        p.accept(1, t).unwrap();
    }
    let r = p.step(1, &mut peaked(v, 33), StepMode::Sample).unwrap();
    assert_eq!(r.flags & (flags::GUARD | flags::ROLLBACK), flags::GUARD);
    assert_eq!(r.rollback, 0);
    // llama.cpp's order: the guarded token is accepted at once; the advice then counts it too.
    let esc2 = esc.replace("\"rollback_budget\":6", "\"rollback_budget\":32");
    let mut q = proc(&format!(r#"{{{T_ONE},{esc2}}}"#), v);
    begin(&mut q, 1, &[]);
    for t in [1u32, 2, 20, 21, 22, 23, 24, 20, 21, 22, 23] {
        q.step(1, &mut flat(v), StepMode::Logits).unwrap();
        q.accept(1, t).unwrap();
    }
    let r = q.step(1, &mut peaked(v, 24), StepMode::Sample).unwrap();
    q.accept(1, r.token.unwrap()).unwrap();
    assert_eq!(q.rollback_advice(1), Ok(5));
    q.rollback(1, 5).unwrap();
    let r = q.step(1, &mut peaked(v, 20), StepMode::Sample).unwrap();
    assert_eq!(r.step, 7);
    assert_eq!(r.flags & flags::BANNED, flags::BANNED);
    // The next step clears the advice.
    assert_eq!(q.rollback_advice(1), Ok(0));
    // A plain rewind (a rejected draft) is still allowed and bans nothing.
    p.rollback(1, 3).unwrap();
    let r = p.step(1, &mut peaked(v, 30), StepMode::Sample).unwrap();
    assert_eq!((r.flags & flags::BANNED, r.token), (0, Some(30)));
}

/// Rollback errors: off (depth 0), more than held, a host processor that cannot rewind, an
/// unknown sequence; nothing changes on error.
#[test]
fn rollback_errors() {
    let v = 16;
    let mut off = proc(r#"{"preset":"balanced"}"#, v);
    begin(&mut off, 1, &[]);
    off.step(1, &mut flat(v), StepMode::Sample).unwrap();
    off.accept(1, 3).unwrap();
    assert!(matches!(off.rollback(1, 1), Err(Error::InvalidArgument(_))));
    assert_eq!(off.rollback(1, 0), Ok(()));
    assert_eq!(off.rollback(2, 1), Err(Error::UnknownSequence(2)));
    let mut p = proc(r#"{"escape":{"rollback":2}}"#, v);
    begin(&mut p, 1, &[]);
    p.accept(1, 5).unwrap(); // a query token: not rewindable
    assert!(matches!(p.rollback(1, 1), Err(Error::InvalidArgument(_))));
    for t in [1, 2, 3] {
        p.step(1, &mut flat(v), StepMode::Sample).unwrap();
        p.accept(1, t).unwrap();
    }
    assert!(matches!(p.rollback(1, 3), Err(Error::InvalidArgument(_))));
    let before = format!("{:?}", p.answer(1));
    p.push_pre(Box::new(Host {
        calls: Default::default(),
    }));
    let e = p.rollback(1, 1).unwrap_err();
    assert!(e.to_string().contains("cannot rewind"), "{e}");
    assert_eq!(format!("{:?}", p.answer(1)), before);
    assert!(
        Config::from_json(r#"{"escape":{"rollback":4,"guard_min_period":0}}"#).is_err(),
        "rollback without the guard"
    );
    assert!(Config::from_json(r#"{"escape":{"rollback":1025}}"#).is_err());
}
