#!/usr/bin/env bash
# Provision ONNX Runtime GenAI for the plugin's end-to-end tests (plugins/onnxruntime-genai), into
# the cache (~/.cache/infogravity or $INFOGRAVITY_HOME):
#   - the PyPI wheels onnxruntime-genai 0.18.0 (libonnxruntime-genai.so with the C API, and the
#     Python module), onnxruntime 1.31.1 (the runtime GenAI loads), numpy and tokenizers, kept in
#     genai/wheels and installed without dependencies into the venv genai/venv (for example.py);
#   - genai_config.json beside the converted SmolLM2, written from its model.json when missing
#     (no reconversion);
#   - plugins/onnxruntime-genai/tests/e2e.c with the adapter built against the C library in
#     PREFIX and the wheel's libonnxruntime-genai.so: genai/e2e;
#   - genai/env, which engine/tests/onnxruntime_genai.rs reads.
# Needs scripts/setup-engine.sh --real first (its venv and the converted model). Idempotent: a
# second run only rebuilds the test program. A fresh run downloads 53 MB (~25 s here).
#
#   scripts/setup-genai.sh PREFIX     (PREFIX: where scripts/install-c.sh put the C library)
set -euo pipefail
prefix="$(cd "${1:?usage: scripts/setup-genai.sh PREFIX}" && pwd)"
cd "$(dirname "$0")/.."
GENAI=0.18.0
ORT=1.31.1
NUMPY=2.4.6
TOKENIZERS=0.23.3
cache="${INFOGRAVITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/infogravity}"
py="$cache/venv/bin/python"
model="$cache/models/smollm2-135m-instruct"
if [ ! -x "$py" ] || [ ! -f "$model/model.onnx" ]; then
  echo "run scripts/setup-engine.sh --real first (it makes the venv and converts the model)" >&2
  exit 1
fi
[ -f "$prefix/include/infogravity.h" ] && [ -f "$prefix/lib/libinfogravity.so.1" ] || {
  echo "$prefix holds no installed C library: run scripts/install-c.sh $prefix first" >&2
  exit 1
}
[ -f "$model/genai_config.json" ] || "$py" tools/gguf2onnx.py --genai-config-only "$model" >/dev/null

# 1. The wheels (for the interpreter of the engine's venv), then a venv of their own.
dir="$cache/genai"
mkdir -p "$dir/wheels"
wheels=()
for spec in "onnxruntime_genai onnxruntime-genai $GENAI" "onnxruntime onnxruntime $ORT" \
            "numpy numpy $NUMPY" "tokenizers tokenizers $TOKENIZERS"; do
  read -r file name ver <<<"$spec"
  whl=$(ls "$dir/wheels/$file-$ver-"*.whl 2>/dev/null | head -1 || true)
  if [ -z "$whl" ]; then
    "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      "$name==$ver" -d "$dir/wheels"
    whl=$(ls "$dir/wheels/$file-$ver-"*.whl | head -1)
  fi
  wheels+=("$whl")
done
[ -x "$dir/venv/bin/python" ] || "$py" -m venv "$dir/venv"
"$dir/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps "${wheels[@]}"
site=$("$dir/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
genai_lib="$site/onnxruntime_genai"
ort_lib="$site/onnxruntime/capi/libonnxruntime.so.$ORT"
[ -f "$genai_lib/libonnxruntime-genai.so" ] && [ -f "$ort_lib" ] || {
  echo "the wheels lack libonnxruntime-genai.so or libonnxruntime.so.$ORT" >&2
  exit 1
}

# 2. The end-to-end test program: the adapter and the test, against PREFIX and GenAI.
cc -std=c11 -O2 -Wall -Wextra -o "$dir/e2e" \
  plugins/onnxruntime-genai/tests/e2e.c plugins/onnxruntime-genai/ig_genai.c \
  -I plugins/onnxruntime-genai -I "$prefix/include" \
  -L "$prefix/lib" -linfogravity -L "$genai_lib" -lonnxruntime-genai -lm \
  -Wl,-rpath,"$prefix/lib" -Wl,-rpath,"$genai_lib"
cat > "$dir/env" <<ENV
GENAI_E2E=$dir/e2e
GENAI_PYTHON=$dir/venv/bin/python
GENAI_MODEL=$model
ORT_LIB_PATH=$ort_lib
INFOGRAVITY_LIB=$prefix/lib/libinfogravity.so.1
ENV
echo "ONNX Runtime GenAI $GENAI: $dir (e2e: $dir/e2e; venv: $dir/venv; model: $model)"
