//! The real model, SmolLM2-135M-Instruct converted from its Q4_1 GGUF (`scripts/setup-engine.sh
//! --real`; CI runs it, so these tests do not skip there).

use std::path::PathBuf;

use infogravity::engine::{self, Engine, EngineOptions, GenerateOptions, Message};

fn real() -> Option<PathBuf> {
    let dir = engine::cache_dir().join("models/smollm2-135m-instruct");
    if !dir.join("model.onnx").exists() || !engine::ort_library(None).exists() {
        eprintln!(
            "SKIPPED: {} missing; run scripts/setup-engine.sh --real",
            dir.display()
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide the real model (scripts/setup-engine.sh --real)"
        );
        return None;
    }
    Some(dir)
}

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
