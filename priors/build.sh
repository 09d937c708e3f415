#!/usr/bin/env bash
# Rebuild priors/smollm2-135m-kjv.prior from its public-domain corpus (see priors/README.md).
# Needs: apt-get install bible-kjv (pulls bible-kjv-text), and the SmolLM2 tokenizer from
# scripts/setup-engine.sh --real.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${INFOGRAVITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/infogravity}"
tok="$cache/models/smollm2-135m-instruct/tokenizer.json"
txt=$(mktemp)
# One verse per paragraph, the "Ge1:1 " style references removed.
bible -f gen1:1-rev22:21 | sed -E 's/^[0-9A-Za-z]+[0-9]+:[0-9]+ //' | awk 'BEGIN{ORS=""} {print $0 "\n\n"}' > "$txt"
cargo run --release -q -- prior build --tokenizer "$tok" --out priors/smollm2-135m-kjv.prior \
  --provenance "$(cat priors/PROVENANCE)" "$txt"
rm -f "$txt"
