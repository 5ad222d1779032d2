#!/usr/bin/env bash
# Installs what is missing, builds sumi and runs the autoencoder study on FashionMNIST. Extra arguments go
# to the example (see build/release/examples/autoencoder --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release
cmake --build --preset release --target autoencoder
build/release/examples/autoencoder --out out/autoencoder "$@"
