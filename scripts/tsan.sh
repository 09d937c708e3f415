#!/usr/bin/env bash
# The concurrency stress test (tests/stress.rs) under ThreadSanitizer: nightly rustc with
# -Zsanitizer=thread and an instrumented std (-Zbuild-std, needs the rust-src component), in
# its own target directory. Any race report fails the run.
#   rustup toolchain install nightly --profile minimal --component rust-src
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="-Zsanitizer=thread"
export TSAN_OPTIONS="halt_on_error=1 exitcode=66"
cargo +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu --quiet \
  -p infogravity --test stress --target-dir target/tsan
