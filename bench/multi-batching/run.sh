#!/usr/bin/env bash
# Side-by-side multi + publish runs of several servers, alternating within each round.
#   bench/multi-batching/run.sh OUTDIR ROUNDS 'name=CMD {conf}' ...
# Env: MULTI_VARIANTS (space-separated list of M values for --ids), default "1000 50".
set -uo pipefail
L=${L:-/work/target-bench/release/realplexor-loadtest}
out=$1; rounds=$2; shift 2
mkdir -p "$out"
variants=${MULTI_VARIANTS:-"1000 50"}
for r in $(seq 1 "$rounds"); do
  for m in $variants; do
    for s in "$@"; do
      name=${s%%=*}; cmd=${s#*=}
      timeout 400 "$L" multi --server-cmd "$cmd" --name "$name" -n 1000 --ids "$m" \
        --per-client 10 --per-push 3 --pushes 2000 --timeout 240 --quiet \
        --out "$out/multi-m$m-$name-r$r.json" > /dev/null || echo "fail multi $m $name $r" >&2
    done
  done
  for s in "$@"; do
    name=${s%%=*}; cmd=${s#*=}
    timeout 400 "$L" publish --server-cmd "$cmd" --name "$name" -n 1000 --pushes 10000 \
      --quiet --out "$out/publish-$name-r$r.json" > /dev/null || echo "fail publish $name $r" >&2
  done
done
