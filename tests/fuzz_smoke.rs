//! A stable-toolchain smoke run of the fuzz harnesses (`src/fuzzing.rs`, `testing` feature): deterministic random
//! and mutated inputs, no coverage guidance. The real fuzzing is `fuzz/run.sh` (cargo-fuzz).

use infogravity::fuzzing;
use infogravity::sampler::Rng;

fn inputs(seed: u64, n: usize, max_len: usize, seeds: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let mut v: Vec<u8> = if !seeds.is_empty() && i % 2 == 0 {
                seeds[i / 2 % seeds.len()].to_vec()
            } else {
                let len = (rng.next_u64() % max_len as u64) as usize;
                (0..len).map(|_| rng.next_u64() as u8).collect()
            };
            // Mutate: flip, insert, truncate.
            for _ in 0..(rng.next_u64() % 4) {
                if v.is_empty() {
                    break;
                }
                let at = (rng.next_u64() % v.len() as u64) as usize;
                match rng.next_u64() % 3 {
                    0 => v[at] ^= 1 << (rng.next_u64() % 8),
                    1 => v.insert(at, rng.next_u64() as u8),
                    _ => v.truncate(at),
                }
            }
            v
        })
        .collect()
}

#[test]
fn config_harness() {
    let seeds: [&[u8]; 4] = [
        br#"{"preset":"factual","temperature":{"base":0.3}}"#,
        br#"{"void":{"weights":{"bias":-1}},"black_hole":{"attractors":[[1,2]]}}"#,
        br#"{"sampler":{"min_p":0.1,"top_k":5}}"#,
        br#"{"limits":{"threads":2}}"#,
    ];
    for input in inputs(1, 4000, 200, &seeds) {
        fuzzing::config(&input);
    }
}

#[test]
fn files_harness() {
    let prior = infogravity::Prior::from_counts(vec![3, 1, 4, 1, 5], "pi")
        .unwrap()
        .to_bytes();
    let cal = br#"{"format":"infogravity-calibration","version":1,"mass":{"h":{"mean":0,"std":1},"d":{"mean":0,"std":1},"n":{"mean":0,"std":1}}}"#;
    for input in inputs(2, 4000, 120, &[&prior, cal]) {
        fuzzing::files(&input);
    }
}

#[test]
fn c_api_harness() {
    for input in inputs(3, 1500, 3000, &[]) {
        fuzzing::c_api(&input);
    }
}

#[test]
fn pipeline_harness() {
    for input in inputs(4, 3000, 300, &[]) {
        fuzzing::pipeline_bytes(&input);
    }
}
