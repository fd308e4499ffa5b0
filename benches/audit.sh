#!/usr/bin/env bash
# Speed of `layer audit`: 1,000 recorded builds of 400 packages each against 5,000 OSV
# advisories (one file each), read from disk and matched in dpkg's order.
#
#   benches/audit.sh                               (`just bench` runs it)
#   BASELINE=path/to/older/layer benches/audit.sh  (and against an older build of layer)
#
# Records and advisories are written by `examples/audit_synth.rs` under target/bench/audit
# (kept between runs). The commands are timed interleaved (one run of each in turn, RUNS
# rounds), so a machine that gets busier slows all of them alike; each is reported as its
# median and as a ratio to a fixed anchor measured in the same rounds: `sort` of the same
# records (a CPU-bound pass over the same bytes). With BASELINE, its outputs (text, json,
# markdown) must be byte-identical to this build's, and the speed-up is printed.
# Environment: RUNS (10), WARMUP (2), BENCH_DIR (target/bench), BASELINE (none).
# Target: under 1 s (the median of `layer audit`).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
BENCH_DIR=${BENCH_DIR:-target/bench}
BASELINE=${BASELINE:-}
LAYER=target/release/layer
dir=$BENCH_DIR/audit

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

say "building layer and the generator (release)"
cargo build --release --quiet --bin layer --example audit_synth

if [ "$(cat "$dir/.audit-synth" 2>/dev/null)" != "1000 400 5000" ]; then
    say "writing 1,000 records of 400 packages and 5,000 advisories in $dir"
    target/release/examples/audit_synth "$dir" 1000 400 5000
fi

$LAYER -C "$dir" audit --osv "$dir/osv" | tail -n 1 >&2
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || die "BASELINE=$BASELINE is not an executable"
    for format in text json markdown; do
        cmp -s <($LAYER -C "$dir" audit --osv "$dir/osv" --format $format) \
            <("$BASELINE" -C "$dir" audit --osv "$dir/osv" --format $format) ||
            die "the $format output differs from $BASELINE's"
    done
    say "text, json and markdown outputs are byte-identical to $BASELINE's"
fi

python3 - "$RUNS" "$WARMUP" "$dir" "$LAYER" "$BASELINE" <<'EOF' || die "slower than 1 s"
import statistics, subprocess, sys, time
runs, warmup, dir, layer, baseline = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
audit = f"audit --osv {dir}/osv"
cmds = {"layer audit": f"{layer} -C {dir} {audit}"}
if baseline:
    cmds["baseline"] = f"{baseline} -C {dir} {audit}"
cmds["anchor (sort of the records)"] = f"find {dir}/cache/records -name '*.json' -exec cat {{}} + | LC_ALL=C sort >/dev/null"
times = {n: [] for n in cmds}
for i in range(warmup + runs):
    for n, c in cmds.items():
        t = time.perf_counter()
        subprocess.run(c, shell=True, check=True, stdout=subprocess.DEVNULL)
        if i >= warmup:
            times[n].append(time.perf_counter() - t)
med = {n: statistics.median(t) for n, t in times.items()}
anchor = med["anchor (sort of the records)"]
for n, m in med.items():
    print(f"{n:30} median {m:.3f}s  min {min(times[n]):.3f}s  {m / anchor:.2f}x the anchor", file=sys.stderr)
if baseline:
    print(f"layer audit is {med['baseline'] / med['layer audit']:.2f}x as fast as the baseline", file=sys.stderr)
print(f"layer audit: {med['layer audit']:.3f}s (target: under 1 s)", file=sys.stderr)
sys.exit(0 if med["layer audit"] < 1.0 else 1)
EOF
