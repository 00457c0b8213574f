#!/usr/bin/env bash
# The authority's side alone, step by step with the real commands: build
# tessera, create a national authority in DIR (default ./authority-quickstart),
# enrol three cities, a checkpoint, an operator and a gateway, publish and
# verify the signed trust list. `tessera demo` runs the whole federation.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./authority-quickstart}
if [ -e "$dir/authority" ]; then
  echo "error: $dir/authority already exists: pass another directory, or remove it" >&2
  exit 1
fi
cargo build --release --quiet -p tessera
t=./target/release/tessera
mkdir -p "$dir"
a="$dir/authority"
$t authority init --dir "$a"
$t authority enrol-city --dir "$a" --code 330100 --name Hangzhou --endpoint 127.0.0.1:7101
$t authority enrol-city --dir "$a" --code 420100 --name Wuhan --endpoint 127.0.0.1:7102
$t authority enrol-city --dir "$a" --code 440100 --name Guangzhou --endpoint 127.0.0.1:7103
$t authority enrol-verifier --dir "$a" --province 420000 --name "Wuhan railway station"
$t authority enrol-operator --dir "$a" --city 330100 --name "Hangzhou CDC"
$t authority enrol-gateway --dir "$a" --endpoint 127.0.0.1:7000
$t authority trust-list publish --dir "$a" --out "$dir/trust-list.tsl"
$t authority trust-list show "$dir/trust-list.tsl" --root "$a/root/root.crt"
