#!/usr/bin/env bash
# Build the C library (the `infogravity` crate alone: no ONNX Runtime, no tokenizers) and install
# it under PREFIX the way a C host expects:
#   PREFIX/lib/libinfogravity.so.<ABI>     the library, SONAME libinfogravity.so.<ABI>
#   PREFIX/lib/libinfogravity.so           -> libinfogravity.so.<ABI> (for -linfogravity)
#   PREFIX/lib/libinfogravity.a            the static library
#   PREFIX/include/infogravity.h
#   PREFIX/lib/pkgconfig/infogravity.pc    (pkg-config --cflags --libs infogravity)
#   PREFIX/share/infogravity/llama.cpp/    the llama.cpp sampler glue and its CMake snippet
#
#   scripts/install-c.sh PREFIX
set -euo pipefail
prefix="${1:?usage: scripts/install-c.sh PREFIX}"
cd "$(dirname "$0")/.."
cargo build --release --quiet -p infogravity --lib
abi=$(sed -n 's/^#define IG_ABI_VERSION \([0-9]*\)$/\1/p' include/infogravity.h)
version=$(sed -n 's/^#define IG_VERSION_STRING "\(.*\)"$/\1/p' include/infogravity.h)
target="${CARGO_TARGET_DIR:-target}/release"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/libinfogravity.so" "$prefix/lib/libinfogravity.so.$abi"
ln -sf "libinfogravity.so.$abi" "$prefix/lib/libinfogravity.so"
install -m 0644 "$target/libinfogravity.a" "$prefix/lib/libinfogravity.a"
install -m 0644 include/infogravity.h "$prefix/include/infogravity.h"
mkdir -p "$prefix/share/infogravity/llama.cpp"
install -m 0644 plugins/llama.cpp/infogravity-sampler.h plugins/llama.cpp/infogravity-sampler.cpp \
  plugins/llama.cpp/infogravity.cmake "$prefix/share/infogravity/llama.cpp/"
cat > "$prefix/lib/pkgconfig/infogravity.pc" <<PC
prefix=$(cd "$prefix" && pwd)
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: infogravity
Description: Gravity-aware sampling middleware for LLM inference engines (C API, ABI $abi)
Version: $version
Libs: -L\${libdir} -linfogravity
Libs.private: -lpthread -ldl -lm
Cflags: -I\${includedir}
PC
echo "installed infogravity $version (ABI $abi) under $prefix"
