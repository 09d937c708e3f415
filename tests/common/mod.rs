//! Helpers shared by the Rust-API tests (`mod common;` in each test file).

#![allow(dead_code)] // each test file uses its own subset

use infogravity::{Config, GravityProcessor, SeqParams};

/// A processor from a JSON configuration (panics on an invalid one: tests pass valid ones).
pub fn proc(json: &str, v: usize) -> GravityProcessor {
    GravityProcessor::new(Config::from_json(json).unwrap(), v).unwrap()
}

/// Begin `seq` with a seed and anchors.
pub fn begin_seeded(p: &mut GravityProcessor, seq: u64, seed: u64, anchors: &[u32]) {
    p.begin(
        seq,
        &SeqParams {
            seed,
            anchors,
            ..Default::default()
        },
    )
    .unwrap();
}

/// A flat row (high void score).
pub fn flat(v: usize) -> Vec<f32> {
    (0..v).map(|i| (i % 7) as f32 * 0.01).collect()
}

/// A row with one token far above the rest (low void score).
pub fn peaked(v: usize, at: usize) -> Vec<f32> {
    let mut r = vec![0.0; v];
    r[at] = 25.0;
    r
}
