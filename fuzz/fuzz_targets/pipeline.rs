#![no_main]
//! Fuzz target: see `infogravity::fuzzing::pipeline` (configuration × calibration × query ×
//! dtype × mode × rows, checked against the pipeline's invariants).
libfuzzer_sys::fuzz_target!(|data: &[u8]| infogravity::fuzzing::pipeline_bytes(data));
