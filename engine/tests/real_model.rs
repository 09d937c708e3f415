//! The real model, SmolLM2-135M-Instruct converted from its Q4_1 GGUF (`scripts/setup-engine.sh
//! --real`; CI runs it, so these tests do not skip there).

use infogravity_engine::{self as engine, Engine, EngineOptions, GenerateOptions, Message};

mod common;
use common::real;

#[test]
fn greedy_chat_answer_names_paris() {
    let Some(dir) = real() else { return };
    let mut eng = Engine::load(&dir, &EngineOptions::default()).unwrap();
    let mut p =
        engine::processor_for(&eng, r#"{"preset":"neutral","temperature":{"base":0}}"#).unwrap();
    let g = eng
        .generate(
            &mut p,
            &[Message::new("user", "What is the capital of France?")],
            &GenerateOptions {
                max_tokens: 24,
                ..Default::default()
            },
            |_, _| {},
        )
        .unwrap();
    assert!(g.text.contains("Paris"), "answer: {:?}", g.text);
    assert_eq!(g.reports.len(), g.tokens.len() + (g.stop == "eos") as usize);
}

#[test]
fn context_gain_is_positive_with_the_answer_and_near_zero_without() {
    let Some(dir) = real() else { return };
    let mut eng = Engine::load(&dir, &EngineOptions::default()).unwrap();
    let cfg = infogravity::Config::default().mass;
    // Measured at the answer position after a prefilled stem (see `engine::query_mass`).
    // Values seen when this test was written: Freedonia 2.09 vs 0.17 nats, France 0.65 vs 0.013.
    for (country, related, unrelated) in [
        (
            "Freedonia",
            "The capital of Freedonia is Zorbaville.",
            "Bananas are yellow fruits rich in potassium.",
        ),
        (
            "France",
            "Paris is the capital and largest city of France.",
            "My cat likes to sleep on the warm windowsill.",
        ),
    ] {
        let q = format!("What is the capital of {country}?");
        let stem = format!("The capital of {country} is");
        let d = |ctx: &str, eng: &mut Engine| {
            engine::query_mass(eng, &q, Some(ctx), &stem, None, &cfg, None)
                .unwrap()
                .d
                .unwrap()
        };
        let (dr, du) = (d(related, &mut eng), d(unrelated, &mut eng));
        assert!(dr > 0.5, "{country}: D with the answer = {dr}");
        assert!(du < 0.2, "{country}: D with an unrelated context = {du}");
        assert!(dr > 3.0 * du, "{country}: {dr} vs {du}");
        let none = engine::query_mass(&mut eng, &q, None, &stem, None, &cfg, None).unwrap();
        assert_eq!(none.d, Some(0.0));
        assert!(none.h.is_some() && none.n_surprisal.is_some() && none.m.is_some());
    }
}

#[test]
fn a_factual_answer_conducts_information_from_its_query() {
    let Some(dir) = real() else { return };
    let mut eng = Engine::load(&dir, &EngineOptions::default()).unwrap();
    // Seen when written: σ = 2.30 nats/token, ρ = 0.78, B = 0.18 for this query against "N/A".
    let c = engine::conductivity(&mut eng, "What is the capital of France?", "N/A", 24).unwrap();
    assert!(eng.decode(&c.answer).unwrap().contains("Paris"));
    assert!(c.sigma > 0.5, "σ = {}", c.sigma);
    assert!(c.rho > 0.0 && (0.0..=1.0).contains(&c.canned), "{c:?}");
}

/// The unembedding read from the ONNX file explains the model's own logits exactly: ĥ fitted on
/// 2·d tokens reproduces the logit of every one of the 49,152 (SCIENCE.md §5).
#[test]
fn the_unembedding_explains_the_logits() {
    let Some(dir) = real() else { return };
    let mut eng = Engine::load(&dir, &EngineOptions::default()).unwrap();
    let info = eng.lm.info().clone();
    let u = engine::unembed::Unembedding::load(&dir, info.vocab, info.hidden).unwrap();
    let ids = eng.encode("The capital of France is").unwrap();
    let (logits, _) = eng.prefill(&ids).unwrap();
    let z = &logits[logits.len() - info.vocab..];
    let r = engine::unembed::residual(&u, z, 2 * info.hidden).unwrap();
    assert!(r < 1e-4, "relative residual {r}");
    // Rows misaligned with the logits by one token are not mistaken for the right head.
    let mut wrong = z.to_vec();
    wrong.rotate_left(1);
    let shifted = engine::unembed::residual(&u, &wrong, 2 * info.hidden).unwrap();
    assert!(shifted > 0.1, "shifted residual {shifted}");
}

/// The hidden-state probe as the processor streams it: a direction θ in hidden space, turned
/// into weights on 2·d logits (`Recovery::functional`) and set on the decode's processor, reads
/// at every step what θ·ĥ reads on the state recovered from the whole row — the answer's first
/// value and its mean equal θ·ĥ₀ + c and θ·mean ĥ + c.
#[test]
fn the_streamed_probe_reads_the_hidden_state() {
    use engine::eval::qa;
    let Some(dir) = real() else { return };
    let mut eng = Engine::load(&dir, &EngineOptions::default()).unwrap();
    let info = eng.lm.info().clone();
    let u = engine::unembed::Unembedding::load(&dir, info.vocab, info.hidden).unwrap();
    let rc = engine::unembed::Recovery::new(&u, 2 * info.hidden).unwrap();
    let theta: Vec<f64> = (0..info.hidden).map(|k| (k as f64 * 0.7).sin()).collect();
    let c = 0.25;
    let (tokens, weights) = rc.functional(&theta).unwrap();
    let probe = infogravity::Probe::new(info.vocab, &tokens, &weights, c as f32).unwrap();
    let mut stream = qa::streaming_processor(&eng, qa::GREEDY).unwrap();
    stream.set_probe(Some(probe)).unwrap();
    let mass = infogravity::Config::default().mass;
    let bank = qa::load_bank(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../eval/qa_bank_wide.jsonl"
    )))
    .unwrap();
    for item in bank.iter().step_by(240) {
        let signals = qa::Signals {
            prior: None,
            mass: &mass,
            recovery: Some(&rc),
            probe: None,
        };
        let r = qa::run_item(&mut eng, &mut stream, item, signals, 8).unwrap();
        let h = r.hidden.as_ref().unwrap();
        let s = r.streamed.unwrap();
        let dot = |x: &[f32]| theta.iter().zip(x).map(|(t, &v)| t * v as f64).sum::<f64>() + c;
        // |θ·ĥ| runs to tens here; the two agreed to 1e-6 of it when this was written.
        let tol = 1e-4 * (1.0 + dot(&h.first).abs().max(dot(&h.mean).abs()));
        let (first, mean) = (s.probe_first.unwrap() as f64, s.probe_mean.unwrap() as f64);
        assert!(
            (first - dot(&h.first)).abs() < tol,
            "{}: first {first} vs {}",
            item.subject,
            dot(&h.first)
        );
        assert!(
            (mean - dot(&h.mean)).abs() < tol,
            "{}: mean {mean} vs {}",
            item.subject,
            dot(&h.mean)
        );
    }
    // Another vocabulary's probe is refused.
    let other = infogravity::Probe::new(info.vocab + 1, &[0], &[1.0], 0.0).unwrap();
    assert!(stream.set_probe(Some(other)).is_err());
}

/// Rollback on the real model: poems that SmolLM2 loops on greedily are rewound where the guard
/// fires, every kept token's report was measured on the logits of exactly the kept prefix (one
/// fresh prefill of the final text per poem: the masked cache slots leave no trace), and the
/// recompute stays within the budget.
#[test]
fn rollback_rewinds_the_real_model_exactly() {
    let Some(dir) = real() else { return };
    let mut eng = Engine::load(&dir, &EngineOptions::default()).unwrap();
    let prompts: Vec<Vec<u32>> = [
        "Write a long poem about friendship.",
        "Write a long poem about coffee.",
        "Write a long poem about a robot.",
        "Write a long poem about the moon.",
    ]
    .iter()
    .map(|t| eng.chat_prompt(&[Message::new("user", t)], "").unwrap())
    .collect();
    let cfg = r#"{"preset":"balanced","temperature":{"base":0},"escape":{"repeat_penalty":0,"rollback":32}}"#;
    let mut p = engine::processor_for(&eng, cfg).unwrap();
    let opts = GenerateOptions {
        max_tokens: 160,
        rollback: true,
        ..Default::default()
    };
    let gens = eng
        .generate_batch(&mut p, &prompts, &opts, |_, _, _| {})
        .unwrap();
    let v = eng.lm.info().vocab;
    let (mut rewinds, mut worst) = (0, 0f32);
    for (r, g) in gens.iter().enumerate() {
        rewinds += g.rollbacks;
        assert!(g.rewound <= 32, "poem {r}: the budget is 32 tokens");
        let all: Vec<u32> = prompts[r].iter().chain(&g.tokens).copied().collect();
        let (logits, _) = eng.prefill(&all).unwrap();
        for (i, rep) in g.reports.iter().enumerate() {
            assert_eq!(rep.step as usize, i, "poem {r}");
            let at = prompts[r].len() - 1 + i;
            let f = infogravity::field::measure(&logits[at * v..(at + 1) * v]).unwrap();
            worst = worst.max((rep.entropy - f.entropy as f32).abs());
        }
    }
    eprintln!("{rewinds} rewinds; max |ΔH| against a fresh prefill {worst:e}");
    assert!(rewinds > 0, "none of the four poems was rewound");
    assert!(
        worst < 1e-3,
        "a rewound cache's logits differ from a fresh prefill's"
    );
}
