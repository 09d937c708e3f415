//! mistral.rs 0.8.1 running SmolLM2-135M-Instruct's Q4_1 GGUF (the file
//! `scripts/setup-engine.sh --real` fetches) from a local folder, fully offline, with the gravity
//! processor in its loop.

use std::path::PathBuf;
use std::sync::Arc;

use infogravity::{Config, StepMode};
use infogravity_mistralrs::GravityLogits;
use mistralrs::{GgufModelBuilder, Model, RequestBuilder, TextMessageRole};

const PROMPTS: [&str; 2] = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
];

fn gguf() -> Option<(PathBuf, String)> {
    let cache = std::env::var_os("INFOGRAVITY_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
                })
                .join("infogravity")
        });
    let dir = cache.join("gguf");
    let file = "SmolLM2-135M-Instruct.Q4_1.gguf";
    if dir.join(file).exists() {
        Some((dir, file.to_string()))
    } else if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing: scripts/check.sh runs scripts/setup-engine.sh --real first",
            dir.join(file).display()
        )
    } else {
        eprintln!(
            "skipped: {} is missing (scripts/setup-engine.sh --real fetches it)",
            dir.join(file).display()
        );
        None
    }
}

async fn model(dir: PathBuf, file: String) -> Model {
    GgufModelBuilder::new(dir.to_string_lossy(), vec![file])
        .with_force_cpu()
        .with_prefix_cache_n(None)
        .build()
        .await
        .expect("mistral.rs loads the local GGUF")
}

async fn answer(
    model: &Model,
    prompt: &str,
    g: Option<Arc<GravityLogits>>,
    temperature: f64,
) -> String {
    let mut req = RequestBuilder::new()
        .add_message(TextMessageRole::User, prompt)
        .set_sampler_temperature(temperature)
        .set_sampler_max_len(24);
    if let Some(g) = g {
        req = req.add_logits_processor(g);
    }
    let r = model.send_chat_request(req).await.expect("a response");
    r.choices[0].message.content.clone().unwrap_or_default()
}

fn neutral(mode: StepMode, t: f32) -> Arc<GravityLogits> {
    let cfg = Config::from_json(&format!(
        r#"{{"preset":"neutral","temperature":{{"base":{t}}}}}"#
    ))
    .unwrap();
    Arc::new(GravityLogits::new(cfg, mode, 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neutral_greedy_equals_mistralrs_greedy_and_reports_every_token() {
    let Some((dir, file)) = gguf() else { return };
    let m = model(dir, file).await;
    for prompt in PROMPTS {
        let plain = answer(&m, prompt, None, 0.0).await;
        assert!(!plain.is_empty());
        eprintln!("{prompt:?} -> {plain:?}");
        // The processor selects the argmax itself (T = 0) and forces it.
        let g = neutral(StepMode::Sample, 0.0);
        assert_eq!(
            answer(&m, prompt, Some(g.clone()), 0.0).await,
            plain,
            "{prompt}"
        );
        let reps = g.reports();
        assert!(
            !reps.is_empty()
                && reps
                    .iter()
                    .all(|r| r.token.is_some() && r.entropy.is_finite())
        );
        assert!(
            reps.iter()
                .enumerate()
                .all(|(i, r)| r.step as usize == i && r.seq == 0)
        );
        // Logits mode at T = 1 hands the row back unchanged; mistral.rs's argmax picks.
        let g = neutral(StepMode::Logits, 1.0);
        assert_eq!(
            answer(&m, prompt, Some(g.clone()), 0.0).await,
            plain,
            "{prompt}"
        );
        assert!(
            g.reports()
                .iter()
                .all(|r| r.token.is_none() && r.temperature == 1.0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_repeats_and_a_bad_row_is_an_error_not_a_crash() {
    let Some((dir, file)) = gguf() else { return };
    let m = model(dir, file).await;
    let run = |seed| {
        let g = Arc::new(GravityLogits::new(
            Config::preset("creative").unwrap(),
            StepMode::Sample,
            seed,
        ));
        let m = &m;
        async move {
            (
                answer(m, PROMPTS[1], Some(g.clone()), 1.0).await,
                g.reports(),
            )
        }
    };
    let (a, ra) = run(7).await;
    let (b, _) = run(7).await;
    assert_eq!(a, b);
    assert!(ra.iter().all(|r| r.temperature > 0.0));
    // A NaN row is the processor's error, handed to mistral.rs as the call's error.
    use mistralrs::CustomLogitsProcessor;
    let g = GravityLogits::new(Config::preset("balanced").unwrap(), StepMode::Sample, 0);
    let bad =
        candle_core::Tensor::new(&[1.0f32, f32::NAN, 0.5], &candle_core::Device::Cpu).unwrap();
    let e = g.apply(&bad, &[1, 2]).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
}
