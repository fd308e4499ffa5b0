#!/usr/bin/env bash
# Speed of a no-op `layer plan` with a live `layer watch`, next to the same plan without one and
# `ninja -n` on the equivalent build graph, all measured in one run (machines are shared and
# noisy: compare the ratios, not the ms). The projects are those of `benches/plan.sh`.
#
#   benches/watch.sh [small|large]...     (default: both)
#
#   small: 1,000 images, 500 roles x 40 files      large: 10,000 images, 2,000 roles x 50 files
#
# Installs ninja and hyperfine with apt-get when they are missing. Environment: RUNS (10),
# WARMUP (3), BENCH_DIR (target/bench). Target (issue 15): layer with watcher / ninja <= 0.8.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-3}
BENCH_DIR=${BENCH_DIR:-target/bench}
SEED=1
LAYER=target/release/layer

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    command -v apt-get >/dev/null 2>&1 || die "$1 is missing; install the $2 package"
    local sudo=
    [ "$(id -u)" = 0 ] || sudo=sudo
    say "installing $2"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}
need ninja ninja-build
need hyperfine hyperfine

declare -A IMAGES=([small]=1000 [large]=10000)
declare -A ROLES=([small]=500 [large]=2000)
declare -A FILES=([small]=40 [large]=50)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(small large)
for s in "${sizes[@]}"; do
    [ -n "${IMAGES[$s]:-}" ] || die "unknown size \`$s\` (small, large)"
done

say "building layer and the generator (release)"
cargo build --release --quiet --bin layer --example synth
SYNTH=target/release/examples/synth

watcher=
stop_watcher() { [ -z "$watcher" ] || { kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null || true; watcher=; }; }
trap stop_watcher EXIT

mean_ms() { awk -F, -v n="$2" '$1 == n { printf "%.1f", $2 * 1000 }' "$1"; }
stddev_ms() { awk -F, -v n="$2" '$1 == n { printf "%.1f", $3 * 1000 }' "$1"; }

results=()
row='%-6s %6s %14s %14s %14s %12s %12s'
for s in "${sizes[@]}"; do
    dir=$BENCH_DIR/$s
    want="format=2 images=${IMAGES[$s]} roles=${ROLES[$s]} files=${FILES[$s]} seed=$SEED record=true"
    if [ "$(cat "$dir/.synth-params" 2>/dev/null)" != "$want" ]; then
        say "$s: generating"
        "$SYNTH" --images "${IMAGES[$s]}" --roles "${ROLES[$s]}" --files "${FILES[$s]}" \
            --seed "$SEED" --out "$dir" --record
        sleep 3 # past the stat cache's racy window
    fi
    ninja -C "$dir" >/dev/null
    "$LAYER" -C "$dir" plan --format json >/dev/null

    say "$s: starting layer watch"
    "$LAYER" -C "$dir" watch 2>"$BENCH_DIR/$s.watch.log" &
    watcher=$!
    for _ in $(seq 600); do grep -q '^watching ' "$BENCH_DIR/$s.watch.log" && break; sleep 0.1; done
    grep -q '^watching ' "$BENCH_DIR/$s.watch.log" || die "$s: layer watch did not start"
    # The first plan under a new watcher checks every file and marks the stat cache.
    "$LAYER" -C "$dir" plan -v --format json 2>&1 >/dev/null | grep '^watch:' >&2
    "$LAYER" -C "$dir" plan -v --format json 2>&1 >/dev/null | grep -q '^watch: .*vouched' ||
        die "$s: the watcher does not vouch for the stat cache"

    say "$s: measuring ($WARMUP warm-up runs, $RUNS runs each)"
    csv=$BENCH_DIR/$s.watch.csv
    hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" --export-csv "$csv" \
        -n watched "$LAYER -C $dir plan --format json" \
        -n ninja "ninja -C $dir -n" >&2
    stop_watcher
    hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" --export-csv "$csv.plain" \
        -n plain "$LAYER -C $dir plan --format json" >&2
    w=$(mean_ms "$csv" watched)
    n=$(mean_ms "$csv" ninja)
    p=$(mean_ms "$csv.plain" plain)
    results+=("$(printf "$row" "$s" "${IMAGES[$s]}" "$w±$(stddev_ms "$csv" watched)" \
        "$p±$(stddev_ms "$csv.plain" plain)" "$n±$(stddev_ms "$csv" ninja)" \
        "$(awk -v a="$w" -v b="$n" 'BEGIN { printf "%.2f", a / b }')" \
        "$(awk -v a="$p" -v b="$n" 'BEGIN { printf "%.2f", a / b }')")")
done

echo
echo "no-op layer plan with and without layer watch vs ninja -n, ms, mean±stddev of $RUNS runs"
echo "target: watched/ninja <= 0.8"
printf "$row\n" size images watched plain ninja watched/ninja plain/ninja
printf '%s\n' "${results[@]}"
