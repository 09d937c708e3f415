//! candle's greedy and the gravity loop with `neutral` at T = 0 must give the same tokens, on
//! the real SmolLM2 GGUF, whichever of the two selects. Needs `scripts/setup-engine.sh --real`
//! (skipped with the reason outside CI; a failure under CI, which provides it).

use infogravity::{Config, GravityProcessor};
use infogravity_candle::{Model, Select, candle_greedy, default_files, diagnostics, generate};

fn model() -> Option<Model> {
    let (gguf, tok) = default_files();
    if !gguf.exists() || !tok.exists() {
        eprintln!(
            "SKIPPED: {} or {} missing; run scripts/setup-engine.sh --real",
            gguf.display(),
            tok.display()
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide the SmolLM2 GGUF"
        );
        return None;
    }
    Some(Model::load(&gguf, &tok).expect("load the GGUF"))
}

#[test]
fn neutral_greedy_is_candles_greedy() {
    let Some(mut m) = model() else { return };
    let v = m.vocab();
    assert_eq!(v, 49152, "SmolLM2's vocabulary");
    let neutral = move || {
        let c = Config::from_json(r#"{"preset":"neutral","temperature":{"base":0}}"#).unwrap();
        GravityProcessor::new(c, v).unwrap()
    };
    for prompt in [
        "What is the capital of France?",
        "Write a short poem about the sea.",
    ] {
        let ids = m.chat_prompt(prompt, None).unwrap();
        let want = candle_greedy(&mut m, &ids, 32).unwrap();
        assert!(want.len() >= 5, "{prompt}: {want:?}");
        for select in [Select::Processor, Select::Candle] {
            let mut p = neutral();
            let g = generate(&mut m, &mut p, &ids, 32, 7, select).unwrap();
            assert_eq!(g.tokens, want, "{prompt} ({select:?})");
            assert!(
                g.reports
                    .iter()
                    .all(|r| r.temperature == 0.0 && r.entropy >= 0.0)
            );
        }
    }
    let ids = m
        .chat_prompt("What is the capital of France?", None)
        .unwrap();
    let g = generate(&mut m, &mut neutral(), &ids, 12, 0, Select::Processor).unwrap();
    assert_eq!(g.reports.len(), 12);
    let table = diagnostics(&m, &g.reports).unwrap();
    assert_eq!(table.lines().count(), g.reports.len() + 1);
    assert!(
        table.starts_with("step") && table.contains("orbit"),
        "{table}"
    );
}

#[test]
fn gravity_sampling_runs_and_repeats_for_a_seed() {
    let Some(mut m) = model() else { return };
    let ids = m
        .chat_prompt("What is the capital of France?", None)
        .unwrap();
    let run = |m: &mut Model, select| {
        let mut p = GravityProcessor::new(Config::default(), m.vocab()).unwrap();
        generate(m, &mut p, &ids, 24, 3, select).unwrap().tokens
    };
    for select in [Select::Processor, Select::Candle] {
        let a = run(&mut m, select);
        assert!(!a.is_empty());
        assert_eq!(a, run(&mut m, select), "{select:?}: same seed, same tokens");
    }
}

#[test]
fn bad_files_are_errors() {
    let dir = std::env::temp_dir();
    let fake = dir.join(format!("ig-candle-{}.gguf", std::process::id()));
    std::fs::write(&fake, b"not a gguf").unwrap();
    let (_, tok) = default_files();
    let e = Model::load(&fake, &tok)
        .err()
        .expect("a bad GGUF is an error");
    assert!(e.to_string().contains("not a GGUF"), "{e}");
    let e = Model::load(&dir.join("no-such.gguf"), &tok).err().unwrap();
    assert!(e.to_string().contains("no-such.gguf"), "{e}");
    std::fs::remove_file(&fake).unwrap();
}
