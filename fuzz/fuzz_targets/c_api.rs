#![no_main]
//! Fuzz target: see `infogravity::fuzzing::c_api`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| infogravity::fuzzing::c_api(data));
