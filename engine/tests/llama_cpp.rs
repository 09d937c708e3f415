//! The gravity sampler inside the real llama.cpp (plugins/llama.cpp): libllama, llama-server
//! and llama-cli of the pinned release built with the plugin by `scripts/setup-llama.sh` (CI
//! runs it first, so these tests do not skip there), on the real SmolLM2 GGUF.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// What `scripts/setup-llama.sh` built: the `env` file it writes.
struct Llama {
    bin: PathBuf,
    e2e: PathBuf,
    q4: PathBuf,
    f32: PathBuf,
}

fn llama() -> Option<Llama> {
    let env = common::setup_env("llama/env", "scripts/setup-llama.sh")?;
    let get = |k: &str| {
        env.get(k)
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{k} missing from the llama/env file"))
    };
    Some(Llama {
        bin: get("LLAMA_BIN"),
        e2e: get("LLAMA_E2E"),
        q4: get("GGUF_Q4"),
        f32: get("GGUF_F32"),
    })
}

fn e2e(l: &Llama, args: &[&str]) -> (bool, String) {
    let out = Command::new(&l.e2e).args(args).output().expect("run e2e");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// (a) `neutral` greedy through the gravity sampler is llama.cpp's own greedy, token for token,
/// on 6 chat prompts × 32 tokens.
#[test]
fn neutral_greedy_equals_llama_cpp_greedy() {
    let Some(l) = llama() else { return };
    let (ok, out) = e2e(&l, &["greedy", l.q4.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|x| x.contains(" same ")).count(),
        6,
        "{out}"
    );
}

/// (d) A sampler cloned mid-sequence (`llama_sampler_clone`) continues exactly as the original.
#[test]
fn a_clone_continues_identically() {
    let Some(l) = llama() else { return };
    let (ok, out) = e2e(&l, &["clone", l.q4.to_str().unwrap()]);
    assert!(ok && out.contains("clone same"), "{out}");
}

/// (e) Rollback through llama.cpp's memory (`llama_sampler_infogravity_rollback_advice`,
/// `llama_memory_seq_rm`): four greedy poems SmolLM2 loops on are rewound where the guard fires,
/// and every kept token's entropy, as the sampler saw it after the rewinds, is the kept prefix's
/// in one fresh decode of the final text — within llama.cpp's own gap between decoding a prompt
/// at once and token by token (0.011 nats at most on these poems without any rewind, `rollback
/// off`; 0.014 with them).
#[test]
fn rollback_rewinds_llama_cpp_memory() {
    let Some(l) = llama() else { return };
    let (ok, out) = e2e(&l, &["rollback", l.f32.to_str().unwrap()]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|x| x.starts_with("rollback rewinds "))
        .unwrap_or_else(|| panic!("{out}"));
    let f: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (rewinds, max_dh) = (f[0], f[2]);
    assert!(rewinds > 0.0, "no poem was rewound: {line}");
    assert!(
        max_dh < 0.05,
        "a rewound position's field is not the kept prefix's: {line}"
    );
}

/// (f) The null-query contrast inside llama.cpp (`llama_sampler_infogravity_set_null_prompt`:
/// the sampler runs the "N/A" prompt in a second context): on a bank item where greedy answers
/// " the Nordic region", the gated contrast reorders the first step (" the" is also the null
/// query's top) and the answer names Europe, as the reference engine's `eval pmi` does; with no
/// null prompt nothing is contrasted; fed every token, the null rows are the null prompt's own.
/// Bad calls return their status.
#[test]
fn the_null_query_contrast_runs_in_a_second_context() {
    let Some(l) = llama() else { return };
    let (ok, out) = e2e(&l, &["contrast", l.f32.to_str().unwrap()]);
    assert!(ok, "{out}");
    let line = |k: &str| {
        out.lines()
            .find(|x| x.starts_with(k))
            .unwrap_or_else(|| panic!("no {k:?} in {out}"))
    };
    let plain = line("contrast plain ");
    assert!(plain.contains("text=\" the Nordic"), "{plain}");
    assert!(
        !plain.split("flags=").nth(1).unwrap().contains('1'),
        "{plain}"
    );
    let null = line("contrast null ");
    assert!(
        null.contains("Europe") && !null.contains("text=\" the"),
        "{null}"
    );
    let flags = null.split("flags=").nth(1).unwrap();
    assert!(
        flags.starts_with('1') && !flags[1..].contains('1'),
        "only the first step is contrasted: {null}"
    );
    // Fed every token (`until_content` off): each step's null row is the null prompt plus the
    // tokens so far decoded at once, within llama.cpp's own token-by-token gap (~0.01 nats).
    let feed = line("contrast feed ");
    let w: Vec<&str> = feed.split_whitespace().collect();
    assert_eq!(w[3], "6", "a null row at each of 6 steps: {feed}");
    let dh: f64 = w[5].parse().unwrap();
    assert!(dh < 0.05, "a fed null row is not the prefix's: {feed}");
    assert!(
        w[6].starts_with("flags=1") && w[6][7..].contains('1'),
        "{feed}"
    );
    // NULL_POINTER (empty prompt, not a gravity sampler), TOKEN_OUT_OF_RANGE, INVALID_ARGUMENT
    // (the contrast is off), OK (cleared).
    assert!(
        line("contrast errors ").ends_with("empty=1 out_of_range=14 not_gravity=1 off=2 cleared=0"),
        "{out}"
    );
}

/// (b) The field the sampler reports inside llama.cpp equals the ONNX reference engine's on the
/// same weights (llama.cpp runs the GGUF dequantised to F32; the ONNX model is the same
/// dequantised weights): entropy within 0.01 nats + 1 %, p_max within 0.01, at every step.
#[test]
fn the_reported_field_equals_the_onnx_engine() {
    let Some(l) = llama() else { return };
    let Some(dir) = common::real() else { return };
    let (ok, out) = e2e(&l, &["report", l.f32.to_str().unwrap(), "16"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let prompt: Vec<u32> = serde_json::from_value(v["prompt"].clone()).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.len() >= 8, "{out}");
    let tokens: Vec<u32> = steps
        .iter()
        .map(|s| s["token"].as_u64().unwrap() as u32)
        .collect();
    let mut eng = infogravity_engine::Engine::load(&dir, &Default::default()).unwrap();
    let mut all = prompt.clone();
    all.extend_from_slice(&tokens[..tokens.len() - 1]);
    let (logits, _) = eng.prefill(&all).unwrap();
    let vocab = eng.lm.info().vocab;
    let mut worst = (0.0f64, 0.0f64);
    for (i, s) in steps.iter().enumerate() {
        let pos = prompt.len() - 1 + i;
        let f = infogravity::field::measure(&logits[pos * vocab..(pos + 1) * vocab]).unwrap();
        let (h, p) = (s["entropy"].as_f64().unwrap(), s["p_max"].as_f64().unwrap());
        let (dh, dp) = ((h - f.entropy).abs(), (p - f.p_max()).abs());
        worst = (worst.0.max(dh), worst.1.max(dp));
        assert!(
            dh <= 0.01 + 0.01 * f.entropy && dp <= 0.01,
            "step {i}: llama.cpp H {h} p_max {p}, ONNX H {} p_max {}",
            f.entropy,
            f.p_max()
        );
    }
    eprintln!(
        "max |ΔH| {:.2e} nats, max |Δp_max| {:.2e}",
        worst.0, worst.1
    );
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; the status code and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// (c) A real HTTP request to the patched llama-server: the server-wide `--infogravity` flag
/// and a per-request `infogravity` configuration both sample with the gravity sampler, answer
/// with text, and every token's report reaches the JSONL log (`INFOGRAVITY_LOG`).
#[test]
fn llama_server_samples_with_the_gravity_sampler() {
    let Some(l) = llama() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("llama-server-ig.jsonl");
    let _ = std::fs::remove_file(&log);
    let child = Command::new(l.bin.join("llama-server"))
        .args(["-m", l.q4.to_str().unwrap(), "--port", &port.to_string()])
        .args(["-t", "2", "-c", "1024", "-np", "1", "--no-webui"])
        .args(["--infogravity", r#"{"preset":"balanced"}"#])
        .env("INFOGRAVITY_LOG", &log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama-server");
    let _server = Server(child);
    let t0 = Instant::now();
    while !matches!(http(port, "GET", "/health", ""), Some((200, _))) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "llama-server did not come up"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let ask = |extra: &str| {
        let body = format!(
            r#"{{"prompt":"<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n","n_predict":16{extra}}}"#
        );
        let (code, body) = http(port, "POST", "/completion", &body).expect("a response");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["content"].as_str().unwrap().to_string()
    };
    let balanced = ask("");
    assert!(!balanced.trim().is_empty());
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let n1 = lines.lines().filter(|l| l.contains("\"entropy\"")).count();
    assert!(n1 >= 1, "no report in the log:\n{lines}");
    // Per request: neutral greedy twice gives the same text, and more reports.
    let greedy = r#","infogravity":{"preset":"neutral","temperature":{"base":0}}"#;
    let (a, b) = (ask(greedy), ask(greedy));
    assert_eq!(a, b);
    assert!(a.contains("Paris"), "{a}");
    let n2 = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(n2 > n1, "per-request sampler wrote no reports");
}

/// llama-cli takes the flag too (one single-turn chat, non-interactive).
#[test]
fn llama_cli_samples_with_the_gravity_sampler() {
    let Some(l) = llama() else { return };
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("llama-cli-ig.jsonl");
    let _ = std::fs::remove_file(&log);
    let out = Command::new(l.bin.join("llama-cli"))
        .args([
            "-m",
            l.q4.to_str().unwrap(),
            "-t",
            "2",
            "-c",
            "512",
            "-n",
            "12",
        ])
        .args(["-p", "What is the capital of France?", "-st", "--simple-io"])
        .args([
            "--infogravity",
            r#"{"preset":"neutral","temperature":{"base":0}}"#,
        ])
        .env("INFOGRAVITY_LOG", &log)
        .stdin(Stdio::null())
        .output()
        .expect("run llama-cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        lines.lines().filter(|l| l.contains("\"entropy\"")).count() >= 1,
        "{text}"
    );
}
