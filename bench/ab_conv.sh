#!/bin/bash
# A/B of conv benchmark binaries on a noisy machine: runs each binary in turn, ROUNDS times, with
# --benchmark_repetitions=3, and prints each benchmark's fastest time (ms) per binary.
#   bench/ab_conv.sh FILTER ROUNDS BINARY...
#   bench/ab_conv.sh 'conv/ae\..*/avx2/1$' 3 /tmp/bench_before build/release/bench/sumi_bench
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 FILTER ROUNDS BINARY..." >&2
  exit 2
fi
filter=$1
rounds=$2
shift 2
for _ in $(seq "$rounds"); do
  for binary in "$@"; do
    "$binary" --benchmark_filter="$filter" --benchmark_repetitions=3 --benchmark_format=csv 2>/dev/null |
      grep -E '^"conv[^,]*/[0-9]+",' | awk -F, -v b="$binary" '{gsub(/"/, "", $1); print b, $1, $3 / 1e6}'
  done
done | awk '{k = $2 " " $1; if (!(k in best) || $3 < best[k]) best[k] = $3}
            END {for (k in best) print k, best[k]}' | sort
