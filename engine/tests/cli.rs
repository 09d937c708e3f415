//! Smoke tests of the `infogravity` binary.

use std::process::Command;

mod common;
use common::{run, tiny};

#[test]
fn bench_json_lines_have_the_documented_keys() {
    let (ok, out, err) = run(&["bench", "--json", "--quick", "--vocab", "2000,5000"]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    // Per vocabulary: floor, measure, the C reference kernel ×3 (where the CPU has AVX2/FMA),
    // step, then read and batch on 1 and 2 threads.
    let cases: Vec<&str> = lines.iter().map(|l| l["case"].as_str().unwrap()).collect();
    let c_ref = cases.iter().filter(|c| c.starts_with("c-ref-exp")).count();
    assert!(c_ref == 0 || c_ref == 6, "{cases:?}");
    assert_eq!(lines.len(), 14 + c_ref, "{cases:?}");
    for l in &lines {
        for k in [
            "case",
            "vocab",
            "batch",
            "threads",
            "median_ns",
            "floor_median_ns",
        ] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
        assert!(l["median_ns"].as_f64().unwrap() > 0.0);
    }
    let first: Vec<&str> = cases[..7 + c_ref / 2]
        .iter()
        .copied()
        .filter(|c| !c.starts_with("c-ref"))
        .collect();
    assert_eq!(
        first,
        ["floor", "measure", "step", "read", "batch", "read", "batch"]
    );
    let last = &lines[6 + c_ref / 2];
    assert_eq!(
        (last["case"].as_str(), last["threads"].as_u64()),
        (Some("batch"), Some(2))
    );
}

#[test]
fn bench_table_is_readable() {
    let (ok, out, err) = run(&["bench", "--quick", "--vocab", "3000"]);
    assert!(ok, "{err}");
    assert!(out.contains("median µs") && out.contains("step") && out.contains("vs 1 thread"));
}

#[test]
fn demo_shows_all_three_regimes() {
    let (ok, out, err) = run(&["demo", "--json"]);
    assert!(ok, "{err}");
    let steps: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 48);
    for regime in ["orbit", "void", "black-hole"] {
        assert!(
            steps.iter().any(|s| s["regime"] == regime),
            "no {regime} step"
        );
    }
    // The escape fires once the loop is established.
    assert!(steps.iter().any(|s| {
        s["interventions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "cycle-penalty")
    }));
}

#[test]
fn bad_arguments_are_clear_errors() {
    let (ok, _, err) = run(&["demo", "--preset", "spicy"]);
    assert!(!ok && err.contains("spicy"), "{err}");
    let (ok, _, err) = run(&["bench", "--vocab", "0"]);
    assert!(!ok && err.contains("--vocab"), "{err}");
    let (ok, _, err) = run(&["frobnicate"]);
    assert!(!ok && err.contains("unrecognized subcommand"), "{err}");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_infogravity"))
        .args(["demo"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here, as `| head -1` would.
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with("infogravity demo"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// The JSON objects among the lines of `out`.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn generate_runs_on_the_tiny_model() {
    let Some(dir) = tiny() else { return };
    let d = dir.to_str().unwrap();
    let (ok, out, err) = run(&[
        "generate",
        "hello",
        "--model",
        d,
        "--max-tokens",
        "6",
        "--diagnostics",
        "jsonl",
    ]);
    assert!(ok, "{err}");
    let rows = json_lines(&out);
    assert!(!rows.is_empty() && rows.len() <= 6, "{out}");
    assert!(rows.iter().all(|r| r["entropy"].as_f64().unwrap() >= 0.0));
    // Two prompts × two samples in one batch, with T* in the diagnostics.
    let (ok, out, err) = run(&[
        "generate",
        "hello",
        "one two",
        "--samples",
        "2",
        "--model",
        d,
        "--max-tokens",
        "4",
        "--tstar",
        "--diagnostics",
        "jsonl",
    ]);
    assert!(ok, "{err}");
    let rows = json_lines(&out);
    for r in 0..4 {
        assert!(rows.iter().any(|j| j["row"] == r), "row {r} missing: {out}");
        assert!(
            out.contains(&format!("sample {} seed {r}]", r % 2 + 1)),
            "{out}"
        );
    }
    assert!(rows.iter().all(|j| j["t_star"].as_f64().unwrap() > 0.0));
    let (ok, _, err) = run(&["generate", "x", "--model", "no/such/dir"]);
    assert!(
        !ok && err
            .contains("neither a model name (qwen2.5-coder-1.5b, smollm2-135m) nor a directory"),
        "{err}"
    );
    // A directory without a model says what is missing.
    let empty = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-model");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, err) = run(&["generate", "x", "--model", empty.to_str().unwrap()]);
    assert!(!ok && err.contains("model.json"), "{err}");
}

#[test]
fn prior_build_and_show() {
    let Some(dir) = tiny() else { return };
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let text = tmp.join("corpus.txt");
    std::fs::write(
        &text,
        "The capital of France is Paris.\n\nOne two three 123.",
    )
    .unwrap();
    let out = tmp.join("tiny.prior");
    let (ok, so, err) = run(&[
        "prior",
        "build",
        "--tokenizer",
        dir.join("tokenizer.json").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        text.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(so.contains("tokens over a vocabulary of"), "{so}");
    let p = infogravity::Prior::load(&out).unwrap();
    assert!(p.total() > 10 && p.provenance().contains("corpus.txt"));
    let (ok, so, err) = run(&["prior", "show", out.to_str().unwrap()]);
    assert!(ok && so.contains("provenance"), "{err}");
    let (ok, _, err) = run(&["prior", "show", text.to_str().unwrap()]);
    assert!(!ok && err.contains("corrupt prior"), "{err}");
}

#[test]
fn the_shipped_prior_is_valid() {
    let p = infogravity::Prior::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../priors/smollm2-135m-kjv.prior"
    )))
    .unwrap();
    assert_eq!((p.vocab(), p.total()), (49_152, 991_888));
    assert!(p.provenance().contains("King James"));
}

#[test]
fn scan_and_sensitivity_run_on_the_tiny_model() {
    let Some(dir) = tiny() else { return };
    let d = dir.to_str().unwrap();
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (csv, svg) = (tmp.join("scan.csv"), tmp.join("scan.svg"));
    let (ok, out, err) = run(&[
        "scan",
        "hello",
        "--model",
        d,
        "--points",
        "12",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("T* ="), "{out}");
    let lines = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(lines.lines().count(), 12, "header + 11 intervals");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let (ok, _, err) = run(&["scan", "x", "--model", d, "--lo", "2", "--hi", "1"]);
    assert!(!ok && err.contains("--lo"), "{err}");

    let (ok, out, err) = run(&[
        "sensitivity",
        "hello there",
        "--paraphrase",
        "hi there",
        "--paraphrase",
        "hello",
        "--model",
        d,
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let s = v["stability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&s), "{s}");
    assert_eq!(v["paraphrases"].as_array().unwrap().len(), 2);

    let (ok, out, err) = run(&[
        "mass",
        "hello",
        "--context",
        "the capital",
        "--model",
        d,
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["d"].as_f64().unwrap() >= 0.0 && v["h"].as_f64().is_some());
}

#[test]
fn eval_qa_runs_resumes_and_rejects_a_bad_bank() {
    let Some(dir) = tiny() else { return };
    let d = dir.to_str().unwrap();
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-qa");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let bank = tmp.join("bank.jsonl");
    let mut lines = String::new();
    // Two relations; the report's tables take them from the bank.
    for (i, (rel, c)) in [
        ("capital", "France"),
        ("demonym", "Peru"),
        ("capital", "Chad"),
        ("demonym", "Laos"),
    ]
    .iter()
    .enumerate()
    {
        lines.push_str(&format!(
            "{{\"id\":{i},\"relation\":\"{rel}\",\"subject\":\"{c}\",\"question\":\"Q {c}?\",\"stem\":\"A {c} is\",\"answers\":[\"X\"]}}\n"
        ));
    }
    std::fs::write(&bank, lines).unwrap();
    let out = tmp.join("out");
    let args = |limit: &str| {
        vec![
            "eval".to_string(),
            "qa".into(),
            "--model".into(),
            d.into(),
            "--bank".into(),
            bank.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--resamples".into(),
            "50".into(),
            "--limit".into(),
            limit.into(),
        ]
    };
    let a2 = args("2");
    let (ok, stdout, err) = run(&a2.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(stdout.contains("| all | 2 |"), "{stdout}");
    // The second run resumes: two records kept, two added.
    let a4 = args("4");
    let (ok, stdout, err) = run(&a4.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(stdout.contains("| all | 4 |"), "{stdout}");
    let records = std::fs::read_to_string(out.join("qa.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 4);
    // The aggregates the processor streamed equal the ones the steps give.
    for line in records.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let steps = r["steps"].as_array().unwrap();
        let s = &r["streamed"];
        let n = steps.len() as f64;
        let h: Vec<f64> = steps
            .iter()
            .map(|x| x["entropy"].as_f64().unwrap())
            .collect();
        let phi: Vec<f64> = steps
            .iter()
            .map(|x| x["potential"].as_f64().unwrap())
            .collect();
        let close = |a: &serde_json::Value, b: f64| {
            (a.as_f64().unwrap() - b).abs() < 1e-4 * (1.0 + b.abs())
        };
        assert_eq!(s["tokens"].as_u64().unwrap() as usize, steps.len());
        assert!(close(&s["mean_entropy"], h.iter().sum::<f64>() / n), "{r}");
        assert!(close(
            &s["max_entropy"],
            h.iter().cloned().fold(0.0, f64::max)
        ));
        assert!(close(&s["mean_potential"], phi.iter().sum::<f64>() / n));
        assert!(close(&s["sum_potential"], phi.iter().sum::<f64>()));
        assert!(close(
            &s["max_potential"],
            phi.iter().cloned().fold(0.0, f64::max)
        ));
        let sv = steps
            .iter()
            .map(|x| x["varentropy"].as_f64().unwrap().max(0.0).sqrt())
            .sum::<f64>()
            / n;
        assert!(close(&s["mean_sqrt_varentropy"], sv));
    }
    for f in ["qa.md", "qa.json", "qa_risk_coverage.svg", "qa_audit.md"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // Every answer of the random tiny model is wrong: one class, no calibration, n/a AUROCs.
    assert!(stdout.contains("n/a"), "{stdout}");
    assert!(stdout.contains("| demonym | 2 |"), "{stdout}");
    assert!(
        stdout.contains("| score | capital | demonym | pooled |"),
        "{stdout}"
    );
    // One relation only; a relation the bank lacks is an error.
    let mut one = a4.clone();
    one.extend(["--relations".into(), "demonym".into()]);
    let (ok, stdout, err) = run(&one.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(
        stdout.contains("| all | 2 |") && !stdout.contains("| capital |"),
        "{stdout}"
    );
    let mut bad = a4.clone();
    bad.extend(["--relations".into(), "currency".into()]);
    let (ok, _, err) = run(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("no relation \"currency\""), "{err}");
    // A calibration fitted elsewhere is scored on every item, and nothing is fitted or written.
    let given =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/eval/calibration.json");
    let mut scored = a4.clone();
    scored.extend(["--calibration".into(), given.to_str().unwrap().into()]);
    let (ok, stdout, err) = run(&scored.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(
        stdout.contains("Scored with a given calibration (not fitted here): all 4 items"),
        "{stdout}"
    );
    assert!(stdout.contains("void score, given calibration"), "{stdout}");
    assert!(!out.join("calibration.json").exists());
    // Decoded under another configuration (the balanced interventions at T = 0), into its own
    // directory; a configuration that does not parse is refused before the model loads.
    let mut other = args("2");
    let n = other.len();
    other[n - 5] = tmp.join("out-balanced").to_str().unwrap().into();
    other.extend(["--config".into(), r#"{"temperature":{"base":0}}"#.into()]);
    let (ok, stdout, err) = run(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(stdout.contains("| all | 2 |"), "{stdout}");
    let mut bad = args("2");
    bad.extend([
        "--config".into(),
        r#"{"escape":{"guard_repeats":1}}"#.into(),
    ]);
    let (ok, _, err) = run(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("escape.guard_repeats"), "{err}");
    std::fs::write(&bank, "{\"id\": 1}\n").unwrap();
    let (ok, _, err) = run(&a2.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("bank.jsonl:1"), "{err}");
}

/// `eval loops --only` picks methods by their full names, which hold commas; an unknown name is
/// refused before the model loads.
#[test]
fn eval_loops_runs_only_the_named_methods() {
    let Some(dir) = tiny() else { return };
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-loops");
    let _ = std::fs::remove_dir_all(&tmp);
    let prompts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/open_prompts.txt");
    let args = |only: &[&str]| {
        let mut a = vec![
            "eval".to_string(),
            "loops".into(),
            "--model".into(),
            dir.to_str().unwrap().into(),
            "--prompts".into(),
            prompts.to_str().unwrap().into(),
            "--limit".into(),
            "2".into(),
            "--max-tokens".into(),
            "6".into(),
            "--out".into(),
            tmp.to_str().unwrap().into(),
        ];
        for o in only {
            a.extend(["--only".to_string(), o.to_string()]);
        }
        a
    };
    let a = args(&["greedy", "escape (balanced, T = 0)"]);
    let (ok, stdout, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(
        stdout.contains("| greedy | 2 |") && stdout.contains("| escape (balanced, T = 0) | 2 |"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("| DRY |") && !stdout.contains("guard only"),
        "{stdout}"
    );
    let a = args(&["escape (balanced"]);
    let (ok, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !ok && err.contains("--only: no method \"escape (balanced\""),
        "{err}"
    );
}

/// `generate --plugin`: the example plugin (plugins/examples/ban_phrases.c) runs in the loop; a
/// path that is not a plugin is an error naming it.
#[test]
fn generate_loads_a_plugin() {
    let Some(dir) = tiny() else { return };
    let d = dir.to_str().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("libban_phrases_cli.so");
    let st = Command::new("cc")
        .args(["-std=c11", "-O2", "-shared", "-fPIC", "-I"])
        .arg(root.join("include"))
        .arg(root.join("plugins/examples/ban_phrases.c"))
        .arg("-o")
        .arg(&lib)
        .status()
        .unwrap();
    assert!(st.success());
    let first = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "hello",
            "--model",
            d,
            "--temperature",
            "0",
            "--max-tokens",
            "1",
            "--diagnostics",
            "jsonl",
        ];
        args.extend_from_slice(extra);
        let (ok, out, err) = run(&args);
        assert!(ok, "{err}");
        json_lines(&out)[0]["token"].as_u64().unwrap()
    };
    let greedy = first(&[]);
    let config = format!(r#"{{"phrases":[[{greedy}]]}}"#);
    let banned = first(&[
        "--plugin",
        lib.to_str().unwrap(),
        "--plugin-config",
        &config,
    ]);
    assert_ne!(greedy, banned, "the plugin's ban did not reach the sampler");
    let (ok, _, err) = run(&["generate", "hello", "--model", d, "--plugin", d]);
    assert!(
        !ok && err.contains("plugin") && err.contains("cannot load"),
        "{err}"
    );
}
