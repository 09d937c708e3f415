#![no_main]
//! Fuzz target: see `infogravity::fuzzing::config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| infogravity::fuzzing::config(data));
