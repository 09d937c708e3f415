//! The fixtures `scripts/setup-engine.sh` provides, shared by the engine's tests (`mod common;`).
//! Outside CI a missing fixture skips the test with the reason printed; under CI (`CI` set, as
//! `.ci/run` does) it fails: CI must provide it.

#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;

use infogravity_engine as engine;

/// `dir` if it holds a model and the ONNX Runtime library is set up, else None (or a failure
/// under CI).
fn fixture(dir: PathBuf, how: &str) -> Option<PathBuf> {
    let lib = engine::ort_library(None);
    if dir.join("model.onnx").exists() && lib.exists() {
        return Some(dir);
    }
    eprintln!(
        "SKIPPED: model ({}) or ORT library ({}) missing; run {how}",
        dir.display(),
        lib.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide the engine fixtures ({how})"
    );
    None
}

/// The tiny random test model (`$INFOGRAVITY_TINY_MODEL` or the cache).
pub fn tiny() -> Option<PathBuf> {
    let dir = std::env::var_os("INFOGRAVITY_TINY_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| engine::cache_dir().join("models/tiny"));
    fixture(dir, "scripts/setup-engine.sh")
}

/// SmolLM2-135M-Instruct converted from its GGUF.
pub fn real() -> Option<PathBuf> {
    fixture(
        engine::cache_dir().join("models/smollm2-135m-instruct"),
        "scripts/setup-engine.sh --real",
    )
}

/// The `KEY=VALUE` lines of an env file a setup script writes under the cache (`rel`, e.g.
/// `genai/env`), or None when it is missing: skipped with the reason outside CI, a failure under
/// CI (`how` names the script that writes it).
pub fn setup_env(rel: &str, how: &str) -> Option<std::collections::HashMap<String, String>> {
    let path = engine::cache_dir().join(rel);
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: {} missing; run {how}", path.display());
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide {} ({how})",
            path.display()
        );
        return None;
    };
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Run the `infogravity` binary: (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infogravity"))
        .args(args)
        .output()
        .expect("run the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
