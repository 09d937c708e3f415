#!/usr/bin/env bash
# The project's test command (README, CI): format, lints, every test (C/C++ consumers included,
# under valgrind when installed), header drift, benches compiled, fuzz smoke.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "clippy (warnings denied), with the engine and without it (the core a C host links)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --no-default-features -- -D warnings

step "header drift: regenerate include/infogravity.h and compare"
cargo build --quiet --features generate-header
git diff --exit-code -- include/ || { echo "include/infogravity.h is stale: commit the regenerated header" >&2; exit 1; }

step "engine fixtures (ONNX Runtime library, tiny and real models): scripts/setup-engine.sh --real"
./scripts/setup-engine.sh --real

step "tests"
if ! command -v valgrind >/dev/null; then
  echo "note: valgrind not installed; the C/C++ consumers run without it (CI installs it)"
fi
cargo test --all-targets
cargo test --doc

step "evaluation smoke: every part on a few items/prompts of the real model (full runs: docs/EVALUATION.md)"
rm -rf target/eval-smoke
cargo run --quiet -- eval qa --limit 30 --resamples 200 --out target/eval-smoke >target/eval-smoke.log
head -6 target/eval-smoke.log && tail -1 target/eval-smoke.log
cargo run --quiet -- eval loops --limit 3 --max-tokens 32 --out target/eval-smoke >target/eval-smoke.log
cat target/eval-smoke.log
cargo run --quiet -- eval temperature --limit 6 --open-limit 2 --open-tokens 16 --resamples 200 \
    --out target/eval-smoke >target/eval-smoke.log
tail -1 target/eval-smoke.log
cargo run --quiet -- eval phase --limit 4 --samples 1 --grid 6 --few-samples 2 --resamples 200 \
    --out target/eval-smoke >target/eval-smoke.log
tail -1 target/eval-smoke.log
cargo run --quiet -- eval sensitivity --limit 8 --resamples 200 --out target/eval-smoke >target/eval-smoke.log
tail -1 target/eval-smoke.log
for f in qa.md loops.md temperature.md phase.md phase_indicator.svg sensitivity.md; do
    test -s "target/eval-smoke/$f" || { echo "evaluation smoke wrote no $f" >&2; exit 1; }
done

step "benches compile"
cargo bench --no-run --quiet

step "fuzz smoke (${IG_FUZZ_SECONDS:-10}s per target)"
if command -v cargo-fuzz >/dev/null; then
  ./fuzz/run.sh "${IG_FUZZ_SECONDS:-10}"
else
  echo "skipped: cargo-fuzz is not installed (cargo install cargo-fuzz); CI installs it."
  echo "The same harnesses ran above without coverage guidance in tests/fuzz_smoke.rs."
fi
echo
echo "all checks passed"
