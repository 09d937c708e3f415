#!/usr/bin/env bash
# Provision llama.cpp with the infogravity sampler for the plugin's end-to-end tests, into the
# cache (~/.cache/infogravity or $INFOGRAVITY_HOME):
#   - llama.cpp from the PyPI sdist of llama-cpp-python 0.3.36 (its vendored tree), with
#     plugins/llama.cpp/llama.cpp-infogravity.patch applied, built with cmake and ninja from PyPI
#     (-DLLAMA_INFOGRAVITY=ON, the C library from PREFIX): libllama, llama-server, llama-cli;
#   - an F32 copy of the SmolLM2-135M-Instruct GGUF (which scripts/setup-engine.sh --real
#     fetches) with every tensor dequantised (the same weights as the fp32 ONNX model);
#   - plugins/llama.cpp/tests/e2e.cpp built against that libllama.
# Idempotent: a second run rebuilds only what changed. A fresh machine takes ~20 min (2 cores).
#
#   scripts/setup-llama.sh PREFIX     (PREFIX: where scripts/install-c.sh put the C library)
set -euo pipefail
prefix="$(cd "${1:?usage: scripts/setup-llama.sh PREFIX}" && pwd)"
cd "$(dirname "$0")/.."
repo="$PWD"
LCP=0.3.36
cache="${INFOGRAVITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/infogravity}"
py="$cache/venv/bin/python"
[ -x "$py" ] || { echo "run scripts/setup-engine.sh first (it makes the venv)" >&2; exit 1; }
"$py" -m pip install -q --disable-pip-version-check cmake==4.4.5 ninja==1.13.2
export PATH="$cache/venv/bin:$PATH"
dir="$cache/llama"
mkdir -p "$dir" "$cache/gguf"

# 1. The models.
q4="$cache/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
f32="$cache/gguf/SmolLM2-135M-Instruct.F32.gguf"
[ -f "$q4" ] || ./scripts/setup-engine.sh --real >/dev/null
if [ ! -f "$f32" ]; then
  PYTHONPATH=tools "$py" -c "import sys, validate_converter as v; v.dequantised_copy(sys.argv[1], sys.argv[2])" "$q4" "$f32.tmp"
  mv "$f32.tmp" "$f32"
fi

# 2. The source: the sdist's vendored llama.cpp with the patch; re-extracted when the patch
#    changes.
sdist="$dir/llama_cpp_python-$LCP.tar.gz"
[ -f "$sdist" ] || "$py" -m pip download -q --disable-pip-version-check --no-deps \
  --no-binary llama-cpp-python "llama-cpp-python==$LCP" -d "$dir"
src="$dir/llama_cpp_python-$LCP/vendor/llama.cpp"
want=$(sha256sum plugins/llama.cpp/llama.cpp-infogravity.patch | cut -d' ' -f1)
if [ "$(cat "$src/.infogravity-patch" 2>/dev/null)" != "$want" ]; then
  rm -rf "$dir/llama_cpp_python-$LCP"
  tar -xzf "$sdist" -C "$dir"
  (cd "$src" && patch -p1 -s < "$repo/plugins/llama.cpp/llama.cpp-infogravity.patch")
  echo "$want" > "$src/.infogravity-patch"
fi

# 3. Build (incremental): the sampler glue compiles into llama-common from PREFIX.
build="$dir/build"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_INFOGRAVITY=ON -DINFOGRAVITY_DIR="$prefix" >/dev/null
if ! cmake --build "$build" --target llama-server llama-cli -j "$(nproc)" >"$dir/build.log" 2>&1; then
  tail -40 "$dir/build.log" >&2
  echo "the llama.cpp build failed (whole log: $dir/build.log)" >&2
  exit 1
fi

# 4. The end-to-end test program, against that libllama and the installed C library.
c++ -std=c++17 -O2 -Wall -Wextra -o "$dir/e2e" plugins/llama.cpp/tests/e2e.cpp \
  "$prefix/share/infogravity/llama.cpp/infogravity-sampler.cpp" \
  -I "$src/include" -I "$src/ggml/include" -I "$prefix/include" \
  -I "$prefix/share/infogravity/llama.cpp" \
  -L "$build/bin" -lllama -lggml -lggml-base -L "$prefix/lib" -linfogravity \
  -Wl,-rpath,"$build/bin" -Wl,-rpath,"$prefix/lib"
cat > "$dir/env" <<ENV
LLAMA_BIN=$build/bin
LLAMA_E2E=$dir/e2e
GGUF_Q4=$q4
GGUF_F32=$f32
ENV
echo "llama.cpp with the gravity sampler: $build/bin (e2e: $dir/e2e; models: $cache/gguf)"
