//! An ONNX Runtime older than the one the engine needs is refused with a message that says how
//! to get the right one (its own process: the ORT environment is created once per process).
//! `scripts/setup-engine.sh` provides the old library as a fixture; CI runs it.

#[test]
fn too_old_runtime_says_how_to_get_the_right_one() {
    let old = infogravity_engine::cache_dir().join("ort-old/libonnxruntime.so.1.22.0");
    if !old.exists() {
        eprintln!(
            "SKIPPED: {} missing; run scripts/setup-engine.sh",
            old.display()
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide the old-runtime fixture"
        );
        return;
    }
    let e = infogravity_engine::runtime(Some(&old))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("1.22.0") && e.contains("1.31"), "{e}");
    assert!(
        e.contains("setup-engine.sh") && e.contains("ORT_DYLIB_PATH"),
        "{e}"
    );
    // A failure is not remembered for the life of the process: the right library loads now.
    let good = infogravity_engine::ort_library(None);
    assert!(good.exists(), "{} missing", good.display());
    infogravity_engine::runtime(Some(&good)).expect("the right runtime loads after a failure");
}
