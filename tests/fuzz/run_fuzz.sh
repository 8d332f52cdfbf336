#!/usr/bin/env bash
# Builds the libFuzzer parser target with clang (ASan + UBSan) in build/fuzz and fuzzes it for
# $1 seconds (default 120), seeded from every .hbir file under tests/ir/. Exits non-zero on a
# finding; crash inputs are left in build/fuzz/artifacts/.
set -euo pipefail

seconds="${1:-120}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$root/build/fuzz"
corpus="$root/tests/fuzz/corpus-run"

if ! command -v clang++ >/dev/null 2>&1; then
  echo "clang++ not found; installing clang" >&2
  apt-get update
  apt-get install -y clang
fi

# The whole core is instrumented (fuzzer-no-link) so coverage guides the mutator through the
# parser, verifier and op table. Warnings stay on; -Werror is GCC-tuned, so it is off here.
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHBDK_BUILD_FUZZERS=ON -DHBDK_BUILD_PYTHON=OFF -DHBDK_BUILD_TESTS=OFF -DHBDK_WERROR=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake --build "$build" --target fuzz_parser

mkdir -p "$corpus" "$build/artifacts"
find "$root/tests/ir" -name '*.hbir' -exec cp {} "$corpus/" \;
if [ -d "$root/tests/fuzz/seeds" ]; then cp "$root"/tests/fuzz/seeds/* "$corpus/" 2>/dev/null || true; fi

# Tokens of the grammar help the mutator build well-formed modules quickly.
dict="$build/hbir.dict"
{
  for kw in module func return resources tensor dense_resource loc scale axis true false inf nan \
            f32 si8 si16 si32 ui8 bool '->' '%' '@' '0x' '"0x' '{' '}' '(' ')' '[' ']' '<' '>' ',' '=' ':'; do
    printf '"%s"\n' "$(printf '%s' "$kw" | sed 's/\\/\\\\/g; s/"/\\"/g')"
  done
} >"$dict"

exec "$build/fuzz_parser" "$corpus" -dict="$dict" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -artifact_prefix="$build/artifacts/" -print_final_stats=1
