#!/bin/bash
# A/B of two Google Benchmark binaries that run at the same time, one per core, then with the cores swapped:
# both see the same machine state, which on a shared VM drifts by more than the changes being measured (and
# two single-threaded processes side by side are how the grid search's two jobs run). Prints each round's
# times (ms) and B/A, then the geometric mean of B/A per benchmark.
#   bench/ab_pair.sh FILTER ROUNDS BINARY_A BINARY_B
#   bench/ab_pair.sh 'autoencoder_train_step' 3 /tmp/bench_before build/release/bench/sumi_bench
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: $0 FILTER ROUNDS BINARY_A BINARY_B" >&2
  exit 2
fi
filter=$1
rounds=$2
a=$3
b=$4
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {  # core binary file
  taskset -c "$1" "$2" --benchmark_filter="$filter" --benchmark_format=csv 2>/dev/null |
    grep -E '^"' | awk -F, '{gsub(/"/, "", $1); gsub(/"/, "", $5)
                             f = $5 == "ns" ? 1e-6 : $5 == "us" ? 1e-3 : $5 == "s" ? 1e3 : 1
                             print $1, $3 * f}' >"$3"
}
for _ in $(seq "$rounds"); do
  for cores in "0 1" "1 0"; do
    set -- $cores
    run "$1" "$a" "$out/a" &
    run "$2" "$b" "$out/b"
    wait
    join "$out/a" "$out/b" | awk '{printf "%s %.3f %.3f %.4f\n", $1, $2, $3, $3 / $2}'
  done
done | awk '{print; s[$1] += log($4); n[$1]++}
            END {for (k in s) printf "geomean B/A %s %.4f\n", k, exp(s[k] / n[k])}'
