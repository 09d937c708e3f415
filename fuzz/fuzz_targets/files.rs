#![no_main]
//! Fuzz target: see `infogravity::fuzzing::files`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| infogravity::fuzzing::files(data));
