#!/usr/bin/env bash
# Speed of `layer audit`: 1,000 recorded builds of 400 packages each against 5,000 OSV
# advisories (one file each), read from disk and matched in dpkg's order.
#
#   benches/audit.sh        (`just bench` runs it)
#
# Records and advisories are written by `examples/audit_synth.rs` under target/bench/audit
# (kept between runs). Installs hyperfine with apt-get when it is missing. Environment: RUNS
# (10), WARMUP (2), BENCH_DIR (target/bench). Target: under 1 s.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
BENCH_DIR=${BENCH_DIR:-target/bench}
LAYER=target/release/layer
dir=$BENCH_DIR/audit

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

if ! command -v hyperfine >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "hyperfine is missing; install it"
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    say "installing hyperfine"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq hyperfine >/dev/null
fi

say "building layer and the generator (release)"
cargo build --release --quiet --bin layer --example audit_synth

if [ "$(cat "$dir/.audit-synth" 2>/dev/null)" != "1000 400 5000" ]; then
    say "writing 1,000 records of 400 packages and 5,000 advisories in $dir"
    target/release/examples/audit_synth "$dir" 1000 400 5000
fi

$LAYER -C "$dir" audit --osv "$dir/osv" >/dev/null
$LAYER -C "$dir" audit --osv "$dir/osv" | tail -n 1 >&2

hyperfine --runs "$RUNS" --warmup "$WARMUP" --export-json "$BENCH_DIR/audit.json" \
    -n "layer audit" "$LAYER -C $dir audit --osv $dir/osv"
mean=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$BENCH_DIR/audit.json")
say "layer audit: ${mean}s (target: under 1 s)"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 else 1)' "$mean" || die "slower than 1 s"
