#!/usr/bin/env bash
# Provision the Python package's test environment in the cache (~/.cache/infogravity or
# $INFOGRAVITY_HOME): a venv `pyvenv` with
#   - the pinned packages of plugins/python/requirements-test.lock (torch 2.14.0 — PyPI's CUDA
#     build, which runs on the CPU —, transformers 5.20.2, accelerate, gguf, pytest, hypothesis,
#     maturin, and what importing vllm's interface modules needs), installed without resolution;
#   - vllm 0.33.0 without its dependencies (the tests import its real interface classes and
#     loaders; vLLM cannot serve on a CPU machine);
#   - llama-cpp-python 0.3.36's Python package from its PyPI sdist with LLAMA_BUILD=OFF: its
#     libllama is the one scripts/setup-llama.sh builds from the same sdist (LLAMA_CPP_LIB_PATH);
#   - the infogravity package itself, built by maturin from plugins/python (incremental, Rust
#     target dir target/python).
# Idempotent: the downloads happen once (~4.5 GB, mostly torch's CUDA libraries; about 2 min
# here), later runs only rebuild the package when its sources changed.
#
#   scripts/setup-python.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${INFOGRAVITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/infogravity}"
venv="$cache/pyvenv"
LCP=0.3.36
VLLM=0.33.0
lock=plugins/python/requirements-test.lock
want="$(cat "$lock" | sha256sum | cut -d' ' -f1)-vllm$VLLM-lcp$LCP"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)
if [ "$(cat "$venv/.infogravity-stamp" 2>/dev/null)" != "$want" ]; then
  "${pip[@]}" install --no-deps -r "$lock"
  "${pip[@]}" install --no-deps "vllm==$VLLM"
  sdist="$cache/llama/llama_cpp_python-$LCP.tar.gz"
  [ -f "$sdist" ] || "${pip[@]}" download --no-deps --no-binary llama-cpp-python "llama-cpp-python==$LCP" -d "$cache/llama"
  CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" "${pip[@]}" install --no-deps "$sdist"
  echo "$want" > "$venv/.infogravity-stamp"
fi
# The package, as `pip install plugins/python` builds it (maturin is in the venv already).
PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$PWD/target/python" "${pip[@]}" install --no-deps --no-build-isolation --force-reinstall ./plugins/python
echo "python test venv: $venv"
