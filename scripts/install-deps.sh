#!/usr/bin/env bash
# Installs the Debian 12 packages sumi needs to build, test and run its examples. Run as root.
set -euo pipefail
packages=(
  build-essential cmake g++ libeigen3-dev catch2 libstb-dev nlohmann-json3-dev zlib1g-dev libexpat1-dev
  libbenchmark-dev python3-numpy dataset-fashion-mnist clang libomp-dev
  fonts-ipafont-gothic fonts-ipafont-mincho fonts-klee fonts-aoyagi-kouzan-t fonts-aoyagi-soseki fonts-kouzan-mouhitsu
  fonts-kiloji fonts-seto fonts-yozvox-yozfont-new-kana
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
