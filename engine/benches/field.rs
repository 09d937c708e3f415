//! Criterion benches at real vocabulary sizes: the floor kernel, the field measurement, and the
//! full step (balanced preset, Sample mode). `infogravity bench` prints the same cases as a
//! table / JSON with batch scaling; this is the statistically careful version.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use infogravity::{Config, GravityProcessor, SeqParams, StepMode, field};
use infogravity_engine::bench;

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("field");
    for v in bench::VOCABS {
        let rows = bench::rows(v, 8, v as u64);
        g.throughput(Throughput::Elements(v as u64));
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("floor", v), &rows, |b, rows| {
            b.iter(|| {
                i += 1;
                field::floor_kernel(&rows[i % 8])
            })
        });
        g.bench_with_input(BenchmarkId::new("measure", v), &rows, |b, rows| {
            b.iter(|| {
                i += 1;
                field::measure(&rows[i % 8]).ok()
            })
        });
        let mut p = GravityProcessor::new(Config::default(), v).unwrap();
        p.begin(
            1,
            &SeqParams {
                seed: 1,
                anchors: &[11, 12, 13, 14],
                ..Default::default()
            },
        )
        .unwrap();
        let mut work = rows.clone();
        let mut saved = Vec::new();
        let mut k = 0u64;
        g.bench_function(BenchmarkId::new("step", v), |b| {
            b.iter_batched_ref(
                || {
                    // Fresh peaks every step (not timed), as a model's distribution moves.
                    k += 1;
                    let mut row = work[(k % 8) as usize].clone();
                    bench::plant(&mut row, k, &mut saved);
                    row
                },
                |row| {
                    let r = p.step(1, row, StepMode::Sample).unwrap();
                    p.accept(1, r.token.unwrap()).unwrap();
                },
                criterion::BatchSize::LargeInput,
            )
        });
        work.clear();
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = kernels
}
criterion_main!(benches);
