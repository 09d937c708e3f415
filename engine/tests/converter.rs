//! tools/gguf2onnx.py against llama.cpp, on tiny random GGUFs of both supported architectures
//! (no model weights needed): `qwen2` with Q4_K and Q6_K blocks, q/k/v biases and an untied
//! Q6_K head, like Qwen2.5-Coder's Q4_K_M; `llama` with Q4_1 and Q4_0 blocks and a tied Q8_0
//! embedding, like SmolLM2's. Each is converted to fp32 and to q4 (MatMulNBits), validated by
//! tools/validate_converter.py against llama.cpp's own tokenizer, logits and greedy decoding
//! (the e2e program of scripts/setup-llama.sh), and run by the engine. The real models get the
//! same validation by hand (docs/MODELS.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use infogravity::{Config, GravityProcessor};
use infogravity_engine as engine;
use serde_json::Value;

mod common;

fn tmp() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("converter")
}

fn python() -> PathBuf {
    engine::cache_dir().join("venv/bin/python")
}

fn tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools")
        .join(name)
}

fn py(args: &[&str]) -> String {
    let out = Command::new(python())
        .args(args)
        .output()
        .expect("run the venv's python");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Validation figures of `dir` (converted from `gguf`) against llama.cpp.
fn validate(e2e: &str, gguf: &Path, dir: &Path, dequantise: bool) -> Value {
    let json = dir.with_extension("validation.json");
    let mut args = vec![
        tool("validate_converter.py").to_str().unwrap().to_string(),
        gguf.to_str().unwrap().into(),
        dir.to_str().unwrap().into(),
        "--e2e".into(),
        e2e.into(),
        "--greedy".into(),
        "16".into(),
        "--json".into(),
        json.to_str().unwrap().into(),
    ];
    if dequantise {
        args.push("--dequantise".into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("{}", py(&refs));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn check_arch(arch: &str) {
    // The venv and the ORT library (setup-engine.sh), llama.cpp's e2e (setup-llama.sh).
    if common::tiny().is_none() {
        return;
    }
    let Some(llama) = common::setup_env("llama/env", "scripts/setup-llama.sh") else {
        return;
    };
    let e2e = &llama["LLAMA_E2E"];
    let dir = tmp();
    std::fs::create_dir_all(&dir).unwrap();
    let gguf = dir.join(format!("tiny-{arch}.gguf"));
    let conv = tool("gguf2onnx.py");
    let conv = conv.to_str().unwrap();
    py(&[conv, "--tiny-gguf", arch, gguf.to_str().unwrap()]);
    for weights in ["fp32", "q4"] {
        let out = dir.join(format!("tiny-{arch}-{weights}"));
        let _ = std::fs::remove_dir_all(&out);
        py(&[
            conv,
            gguf.to_str().unwrap(),
            out.to_str().unwrap(),
            "--weights",
            weights,
        ]);
        // fp32 against llama.cpp on the dequantised copy (the same weights: only the arithmetic
        // differs); q4 against llama.cpp on the quantised blocks (each quantises activations to
        // 8 bits its own way).
        let v = validate(e2e, &gguf, &out, weights == "fp32");
        assert_eq!(v["weights"], weights);
        assert_eq!(v["tokenize"]["same"], v["tokenize"]["total"], "{arch}: {v}");
        let l = &v["logits"];
        let (top1, mean_kl) = (
            l["top1_agree"].as_f64().unwrap(),
            l["mean_kl"].as_f64().unwrap(),
        );
        let greedy = v["greedy"]["same"].as_u64().unwrap();
        if weights == "fp32" {
            assert!(
                top1 == 1.0 && mean_kl < 1e-6 && greedy == 6,
                "{arch} fp32: {v}"
            );
        } else {
            assert!(
                top1 >= 0.97 && mean_kl < 5e-3 && greedy >= 5,
                "{arch} q4: {v}"
            );
        }

        // The engine runs it: the interface check passes and a generation comes out.
        let mut eng = engine::Engine::load(&out, &Default::default()).unwrap();
        let mut p = GravityProcessor::new(Config::default(), eng.lm.info().vocab).unwrap();
        let g = eng
            .generate(
                &mut p,
                &[engine::Message::new(
                    "user",
                    "What is the capital of France?",
                )],
                &engine::GenerateOptions {
                    max_tokens: 8,
                    ..Default::default()
                },
                |_, _| {},
            )
            .unwrap();
        assert!(!g.reports.is_empty(), "{arch} {weights}: no token");
    }
}

#[test]
fn qwen2_gguf_converts_like_llama_cpp_runs_it() {
    check_arch("qwen2");
}

#[test]
fn llama_gguf_converts_like_llama_cpp_runs_it() {
    check_arch("llama");
}
