//! The gravity processor inside the real ONNX Runtime GenAI (plugins/onnxruntime-genai): the C
//! adapter and the Python example against the PyPI wheel onnxruntime-genai 0.18.0 and the real
//! SmolLM2-135M-Instruct converted by tools/gguf2onnx.py, as `scripts/setup-genai.sh` provides
//! them (its `genai/env` file in the cache). Outside CI a missing fixture skips the tests; under
//! CI it fails them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

mod common;

/// Each test runs GenAI on the whole model in a child process; one at a time keeps the memory
/// and the 2-core machine's timings sane.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The chat prompts of the greedy checks.
const QUESTIONS: [&str; 6] = [
    "What is the capital of France?",
    "Name three primary colors.",
    "What is 2 + 2?",
    "Who wrote Romeo and Juliet?",
    "Translate 'thank you' into Spanish.",
    "What is the boiling point of water in Celsius?",
];

/// SmolLM2's `<|im_end|>`: its EOS (and GenAI's pad).
const EOS: i64 = 2;

struct Genai {
    env: HashMap<String, String>,
}

impl Genai {
    fn get(&self, k: &str) -> &str {
        self.env
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing from the genai/env file"))
    }

    fn model(&self) -> PathBuf {
        PathBuf::from(self.get("GENAI_MODEL"))
    }

    /// The prompts file for `n` of the questions (chat template and tokenizer of the model, as
    /// the reference engine renders them), one line of token ids per prompt.
    fn prompts(&self, n: usize, name: &str) -> PathBuf {
        let items: Vec<(String, String)> = QUESTIONS[..n]
            .iter()
            .map(|q| (q.to_string(), String::new()))
            .collect();
        self.stem_prompts(&items, name)
    }

    /// A prompts file of chat prompts, each followed by its answer's stem (`(question, stem)`;
    /// an empty stem: the prompt alone).
    fn stem_prompts(&self, items: &[(String, String)], name: &str) -> PathBuf {
        let dir = self.model();
        let info = infogravity_engine::ModelInfo::load(&dir.join("model.json")).unwrap();
        let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        let mut text = String::new();
        for (q, stem) in items {
            let chat = infogravity_engine::render_chat(
                &info.chat_template,
                &[infogravity_engine::Message::new("user", q)],
            );
            let ids = tok.encode(chat + stem, false).unwrap().get_ids().to_vec();
            let line: Vec<String> = ids.iter().map(u32::to_string).collect();
            text += &(line.join(" ") + "\n");
        }
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("genai-{name}.txt"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The model's content table as one '0'/'1' per token (each token decoded as the reference
    /// engine decodes it, then `is_content_piece`).
    fn content(&self) -> PathBuf {
        let tok = tokenizers::Tokenizer::from_file(self.model().join("tokenizer.json")).unwrap();
        let flags: String = (0..tok.get_vocab_size(true) as u32)
            .map(|t| {
                let piece = tok.decode(&[t], true).unwrap();
                if infogravity::processor::is_content_piece(&piece) {
                    '1'
                } else {
                    '0'
                }
            })
            .collect();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("genai-content.txt");
        std::fs::write(&path, flags).unwrap();
        path
    }

    /// Run the e2e program; its JSON lines (it must succeed).
    fn e2e(&self, args: &[&str]) -> Vec<Value> {
        let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let out = Command::new(self.get("GENAI_E2E"))
            .args(args)
            .env("ORT_LIB_PATH", self.get("ORT_LIB_PATH"))
            .output()
            .expect("run the GenAI e2e program");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "e2e {args:?} failed:\n{stdout}");
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

fn genai() -> Option<Genai> {
    let env = common::setup_env("genai/env", "scripts/setup-genai.sh PREFIX")?;
    Some(Genai { env })
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

/// A row's tokens in SAMPLE and in LOGITS mode are GenAI's own (and there are some).
fn assert_both_modes_equal_genai(l: &Value) {
    let genai = ids(&l["genai"]);
    assert!(!genai.is_empty(), "{l}");
    assert_eq!(ids(&l["sample"]), genai, "SAMPLE mode: {l}");
    assert_eq!(ids(&l["logits"]), genai, "LOGITS mode: {l}");
}

/// (a) `neutral` with temperature 0 through the adapter emits exactly GenAI's own greedy tokens,
/// in SAMPLE mode (one-hot row, GenAI greedy) and in LOGITS mode (our row, GenAI sampling with
/// top_k 0 / top_p 1 / temperature 1), on 6 chat prompts × up to 32 tokens.
#[test]
fn neutral_greedy_equals_genai_greedy() {
    let Some(g) = genai() else { return };
    let prompts = g.prompts(6, "greedy");
    let model = g.model();
    let lines = g.e2e(&[
        "greedy",
        model.to_str().unwrap(),
        prompts.to_str().unwrap(),
        "32",
    ]);
    let greedy = of_kind(&lines, "greedy");
    assert_eq!(greedy.len(), 6, "{lines:?}");
    for l in &greedy {
        assert_both_modes_equal_genai(l);
        assert_eq!(l["again"], 1, "stepping after DONE: {l}");
    }
    assert_eq!(
        ids(&greedy[0]["genai"]),
        [504, 3575, 282, 4649, 314, 7042, 30, 2],
        "\"The capital of France is Paris.\""
    );
    eprintln!("{}", of_kind(&lines, "timing")[0]);
}

/// The adapter steps every row of a generator's batch: the 6 prompts right-padded in one
/// generator give GenAI's own batched greedy tokens in both modes, and rows that end early are
/// no longer stepped.
#[test]
fn a_batch_equals_genai_batched_greedy() {
    let Some(g) = genai() else { return };
    let prompts = g.prompts(6, "batch");
    let model = g.model();
    let lines = g.e2e(&[
        "batch",
        model.to_str().unwrap(),
        prompts.to_str().unwrap(),
        "24",
    ]);
    let rows = of_kind(&lines, "batch");
    assert_eq!(rows.len(), 6, "{lines:?}");
    for l in &rows {
        assert_both_modes_equal_genai(l);
    }
    // Rows of different lengths: some end (EOS) before the others.
    assert!(rows.iter().any(|l| ids(&l["genai"]).last() == Some(&EOS)));
}

/// (b) `balanced` in both modes runs to EOS or the token limit with one report per token (finite
/// entropy and p_max, a finite positive temperature), and repeats itself with the same seeds.
#[test]
fn balanced_reports_every_token() {
    let Some(g) = genai() else { return };
    let prompts = g.prompts(3, "balanced");
    let model = g.model();
    let max = 48;
    let lines = g.e2e(&[
        "sample",
        model.to_str().unwrap(),
        prompts.to_str().unwrap(),
        &max.to_string(),
    ]);
    let ends = of_kind(&lines, "end");
    assert_eq!(ends.len(), 6, "3 prompts × 2 modes: {lines:?}");
    for e in &ends {
        let (mode, prompt) = (e["mode"].as_str().unwrap(), e["prompt"].as_u64().unwrap());
        let tokens = ids(&e["tokens"]);
        let steps = e["steps"].as_u64().unwrap() as usize;
        assert_eq!(steps, tokens.len(), "{e}");
        assert!(
            (e["eos"] == 1 && tokens.last() == Some(&EOS)) || steps == max,
            "neither EOS nor the limit: {e}"
        );
        assert_eq!(e["repeatable"], 1, "same seeds, same tokens: {e}");
        let reports: Vec<_> = of_kind(&lines, "step")
            .into_iter()
            .filter(|s| s["mode"] == mode && s["prompt"] == prompt)
            .collect();
        assert_eq!(reports.len(), steps, "a report per token: {e}");
        for (i, s) in reports.iter().enumerate() {
            assert_eq!(s["step"].as_u64().unwrap() as usize, i, "{s}");
            assert_eq!(s["token"].as_i64().unwrap(), tokens[i], "{s}");
            let h = s["entropy"].as_f64().unwrap();
            let t = s["temperature"].as_f64().unwrap();
            let p = s["p_max"].as_f64().unwrap();
            assert!(h.is_finite() && h >= 0.0, "entropy: {s}");
            assert!(t.is_finite() && t > 0.0, "temperature: {s}");
            assert!(p > 0.0 && p <= 1.0, "p_max: {s}");
            if mode == "sample" {
                assert_eq!(s["chosen"], s["token"], "GenAI emitted our token: {s}");
            }
        }
    }
}

/// (c) The loop ends on GenAI's is_done after EOS, and stepping again is a clean DONE (a raw
/// GetLogits there fails inside ONNX Runtime: the pitfall the adapter avoids).
#[test]
fn is_done_ends_the_loop_cleanly() {
    let Some(g) = genai() else { return };
    let prompts = g.prompts(1, "isdone");
    let model = g.model();
    let lines = g.e2e(&[
        "isdone",
        model.to_str().unwrap(),
        prompts.to_str().unwrap(),
        "48",
    ]);
    let d = of_kind(&lines, "isdone")[0];
    assert_eq!(ids(&d["tokens"]), [504, 3575, 282, 4649, 314, 7042, 30, 2]);
    assert_eq!(d["eos"], 1, "{d}");
    assert_eq!(d["again"], 1, "ig_genai_step after DONE: {d}");
    eprintln!(
        "raw GetLogits after done: {}",
        d["raw_getlogits_after_done"]
    );
}

/// What makes LOGITS mode exact: with ig_genai_configure's options GenAI samples a given row
/// unchanged (p = 0.5/0.3/0.2 on three tokens, 2048 draws, χ² < 13.8, p = 0.001 for 2 degrees of
/// freedom); GenAI's built-in top_p 0 would make it greedy and an engine temperature of 0.5
/// would sharpen our logits a second time.
#[test]
fn genai_samples_the_logits_row_unchanged() {
    let Some(g) = genai() else { return };
    let model = g.model();
    let lines = g.e2e(&["sampler", model.to_str().unwrap()]);
    let case = |c: &str| {
        *of_kind(&lines, "sampler")
            .iter()
            .find(|l| l["case"] == c)
            .unwrap_or_else(|| panic!("no case {c}: {lines:?}"))
    };
    let ours = case("logits");
    assert_eq!(ours["other"], 0, "{ours}");
    assert!(ours["chi2"].as_f64().unwrap() < 13.8, "{ours}");
    assert_eq!(ids(&case("top_p_0")["counts"]), [2048, 0, 0]);
    assert!(case("temperature_0.5")["chi2"].as_f64().unwrap() > 50.0);
}

/// The Python example (GenAI's own Python API, infogravity through ctypes) answers, in both
/// modes, with a report per token.
#[test]
fn the_python_example_runs() {
    let Some(g) = genai() else { return };
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/onnxruntime-genai/example.py");
    let run = |args: &[&str]| {
        let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let out = Command::new(g.get("GENAI_PYTHON"))
            .arg(&example)
            .args([
                "--model",
                g.get("GENAI_MODEL"),
                "--lib",
                g.get("INFOGRAVITY_LIB"),
            ])
            .args(args)
            .output()
            .expect("run example.py");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "example.py {args:?} failed");
        text
    };
    let greedy = run(&[
        "--config",
        r#"{"preset":"neutral","temperature":{"base":0}}"#,
        "--max-tokens",
        "24",
    ]);
    assert!(
        greedy.contains("A: The capital of France is Paris."),
        "{greedy}"
    );
    assert!(greedy.contains("(8 tokens, mode sample, EOS)"), "{greedy}");
    let balanced = run(&["--mode", "logits", "--max-tokens", "16"]);
    let rows = balanced
        .lines()
        .skip_while(|l| !l.contains("H (nats)"))
        .count();
    assert!(rows >= 2, "no per-token report: {balanced}");
}

/// (f) The null-query contrast through GenAI (`ig_genai_step_contrast`: a second generator on
/// the "N/A" prompts): on a bank item where greedy answers " the Nordic region", the gated
/// contrast reorders the first step (" the" is also the null query's top) and the answer names
/// Europe, as the reference engine's `eval pmi` does; the null generator runs only until the
/// first content token; a batch of two rows (the other one a capital, not reordered) gives
/// each row what it gives alone, also with the null generator fed every step.
#[test]
fn the_null_query_contrast_runs_in_a_second_generator() {
    let Some(g) = genai() else { return };
    let item = |q: &str, stem: &str| (q.to_string(), stem.to_string());
    let prompts = g.stem_prompts(
        &[
            item("Which continent is Norway in?", "Norway is in"),
            item("What is the capital of Chad?", "The capital of Chad is"),
            item("Which continent is N/A in?", "N/A is in"),
            item("What is the capital of N/A?", "The capital of N/A is"),
        ],
        "contrast",
    );
    let content = g.content();
    let model = g.model();
    let lines = g.e2e(&[
        "contrast",
        model.to_str().unwrap(),
        prompts.to_str().unwrap(),
        "6",
        content.to_str().unwrap(),
    ]);
    let tok = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    let text = |l: &Value| {
        let t: Vec<u32> = ids(&l["tokens"]).iter().map(|&x| x as u32).collect();
        tok.decode(&t, true).unwrap()
    };
    let runs = of_kind(&lines, "contrast");
    assert_eq!(runs.len(), 4, "{lines:?}");
    let (plain, null) = (runs[0], runs[2]);
    assert!(text(plain).starts_with(" the Nordic"), "{plain}");
    assert!(!plain["flags"].as_str().unwrap().contains('1'), "{plain}");
    let t = text(null);
    assert!(
        t.contains("Europe") && !t.starts_with(" the"),
        "{t:?}: {null}"
    );
    let flags = null["flags"].as_str().unwrap();
    assert!(
        flags.starts_with('1') && !flags[1..].contains('1'),
        "{null}"
    );
    assert_eq!(null["null_steps"], 1, "the first token is content: {null}");
    // The capital is answered at once with content: same answer with and without.
    assert_eq!(ids(&runs[1]["tokens"]), ids(&runs[3]["tokens"]));
    let batch = of_kind(&lines, "contrast_batch");
    assert_eq!(batch.len(), 2, "{lines:?}");
    for (r, alone) in batch.iter().zip([runs[2], runs[3]]) {
        assert_eq!(ids(&r["tokens"]), ids(&alone["tokens"]), "{r} vs {alone}");
        assert_eq!(r["flags"], alone["flags"], "{r} vs {alone}");
    }
    // Fed every step (no token counts as content): the batched null generator is advanced
    // token by token, and each row still gives what it gives alone, contrasted beyond step 0.
    let feed = of_kind(&lines, "contrast_feed");
    let feed_batch = of_kind(&lines, "contrast_feed_batch");
    assert_eq!((feed.len(), feed_batch.len()), (2, 2), "{lines:?}");
    for (r, alone) in feed_batch.iter().zip(&feed) {
        assert_eq!(ids(&r["tokens"]), ids(&alone["tokens"]), "{r} vs {alone}");
        assert_eq!(r["flags"], alone["flags"], "{r} vs {alone}");
        let steps = ids(&alone["tokens"]).len() as u64;
        assert!(steps > 1, "{alone}");
        assert_eq!(alone["null_steps"].as_u64(), Some(steps), "{alone}");
    }
    let e = of_kind(&lines, "contrast_error");
    assert_eq!(
        (&e[0]["rc"], &e[0]["has_message"]),
        (&(-1).into(), &1.into())
    );
}
