#!/usr/bin/env bash
# Per-token decode and prefill, side by side in one run: the reference engine (ONNX Runtime,
# `infogravity generate`, neutral preset, greedy) against llama.cpp (0.3.36, the e2e program of
# scripts/setup-llama.sh) on the same GGUF, the same chat-formatted prompt and the same number of
# threads, alternating rounds so that both see the same machine. Prints a Markdown table (the
# median of the rounds) for docs/MODELS.md.
#
#   scripts/bench-decode.sh [--rounds N] [--tokens N] [--threads N] [MODEL[:WEIGHTS]...]
#
# MODEL is qwen2.5-coder-1.5b or smollm2-135m, WEIGHTS q4 (default) or fp32; both models' q4
# builds without arguments. Needs the release CLI (cargo build --release) and setup-llama.sh's
# cache. The engine stops at the end of the turn when greedy decoding reaches it; its ms/token is
# the mean over the steps it ran, llama.cpp's over exactly N steps.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 tokens=128 threads=2 specs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) specs+=("$1"); shift ;;
  esac
done
[ ${#specs[@]} -gt 0 ] || specs=(qwen2.5-coder-1.5b:q4 smollm2-135m:q4)
cache="${INFOGRAVITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/infogravity}"
py="$cache/venv/bin/python"
cli=target/release/infogravity
[ -x "$cli" ] || { echo "build the CLI first: cargo build --release" >&2; exit 1; }
[ -f "$cache/llama/env" ] || { echo "run scripts/setup-llama.sh PREFIX first" >&2; exit 1; }
# shellcheck disable=SC1091
. "$cache/llama/env"
prompt="Write a short story about a lighthouse keeper."

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| model | weights | engine | prompt tokens | prefill tokens/s | decode ms/token | ours ÷ llama.cpp |"
echo "|---|---|---|---:|---:|---:|---:|"
for spec in "${specs[@]}"; do
  model=${spec%%:*} weights=q4
  [ "$spec" = "$model" ] || weights=${spec#*:}
  case "$model" in
    qwen2.5-coder-1.5b) gguf=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf dir=qwen2.5-coder-1.5b-instruct ;;
    smollm2-135m) gguf=SmolLM2-135M-Instruct.Q4_1.gguf dir=smollm2-135m-instruct ;;
    *) echo "unknown model $model" >&2; exit 2 ;;
  esac
  [ "$weights" = q4 ] && dir="$dir-q4"
  # Set up the model (once), then the prompt's token ids as the engine builds them.
  out=$("$cli" generate x --model "$model" --weights "$weights" --max-tokens 1 --diagnostics none 2>&1) \
    || { echo "$out" >&2; exit 1; }
  ids=$(PYTHONPATH=tools "$py" - "$cache/models/$dir" "$prompt" <<'PY'
import json, sys, validate_converter as v
from tokenizers import Tokenizer
d, prompt = sys.argv[1:]
tok = Tokenizer.from_file(f"{d}/tokenizer.json")
print(" ".join(map(str, tok.encode(v.chat(json.load(open(f"{d}/model.json")), prompt),
                                   add_special_tokens=False).ids)))
PY
)
  o_pre=() o_ms=() l_pre=() l_ms=()
  for _ in $(seq "$rounds"); do
    line=$("$cli" generate "$prompt" --model "$model" --weights "$weights" --preset neutral \
      --temperature 0 --max-tokens "$tokens" --threads "$threads" --diagnostics none 2>&1 \
      | grep -o 'prefill [0-9]* tokens at [0-9]* tokens/s; model [0-9.]* ms/step')
    o_n=$(echo "$line" | awk '{print $2}')
    o_pre+=("$(echo "$line" | awk '{print $5}')")
    o_ms+=("$(echo "$line" | awk '{print $8}')")
    json=$(echo "$ids" | E2E_THREADS=$threads "$LLAMA_E2E" decode "$cache/gguf/$gguf" "$tokens")
    read -r l_n pre ms < <("$py" -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["prompt_tokens"], j["prompt_tokens"]/j["prefill_ms"]*1e3, j["decode_ms_per_token"])' "$json")
    l_pre+=("$pre") l_ms+=("$ms")
  done
  om=$(printf '%s\n' "${o_ms[@]}" | median) lm=$(printf '%s\n' "${l_ms[@]}" | median)
  op=$(printf '%s\n' "${o_pre[@]}" | median) lp=$(printf '%s\n' "${l_pre[@]}" | median)
  printf '| %s | %s | reference engine (ONNX Runtime) | %s | %.0f | %.1f | %.2f× |\n' \
    "$model" "$weights" "$o_n" "$op" "$om" "$(echo "$om $lm" | awk '{print $1/$2}')"
  printf '| %s | GGUF | llama.cpp | %s | %.0f | %.1f | |\n' "$model" "$l_n" "$lp" "$lm"
  echo "  (rounds: ours ${o_ms[*]} ms, llama.cpp ${l_ms[*]} ms)" >&2
done
