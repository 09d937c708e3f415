//! A missing ONNX Runtime library is an error that says how to get it (its own process: the
//! ORT environment is created once per process).

#[test]
fn missing_runtime_says_how_to_get_it() {
    let e = infogravity_engine::runtime(Some(std::path::Path::new("no/such/libonnxruntime.so")))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("not found") && e.contains("setup-engine.sh"),
        "{e}"
    );
    assert!(e.contains("ORT_DYLIB_PATH"), "{e}");
}
