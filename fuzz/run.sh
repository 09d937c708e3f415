#!/usr/bin/env bash
# Run every fuzz target for N seconds each (default 60): ./fuzz/run.sh [N]
#
# cargo-fuzz needs nightly-only compiler flags (sanitizers, -Z options). With only a stable
# toolchain, RUSTC_BOOTSTRAP=1 lets stable rustc accept them; set IG_FUZZ_STABLE=0 to use a
# nightly toolchain instead. Install the tool with `cargo install cargo-fuzz`.
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz not installed: cargo install cargo-fuzz" >&2; exit 2; }
if [ "${IG_FUZZ_STABLE:-1}" = 1 ]; then export RUSTC_BOOTSTRAP=1; fi
for t in config files c_api pipeline; do
  echo "== fuzz target $t for ${secs}s"
  # -s none: no sanitizer instrumentation (the crate's unsafe is in the FFI layer, which the
  # harness drives; libFuzzer still finds panics, aborts and timeouts). Pass IG_FUZZ_SAN=address
  # to run under AddressSanitizer where the toolchain supports it.
  cargo fuzz run -s "${IG_FUZZ_SAN:-none}" "$t" -- -max_total_time="$secs" -rss_limit_mb=4096
done
