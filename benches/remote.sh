#!/usr/bin/env bash
# The remote cache (SPEC §8) against an S3 server on 127.0.0.1 (`moto`), next to the plain tools
# doing the same transfer (issue 11, "Speed"). Measured in one run, layer and the anchor
# interleaved (a round is layer then anchor; the machines are shared and noisy: compare the
# ratios, which come from the same run):
#
#   push    a Debian-sized layer (SIZE_MB, default 180 MB of real files under 3 MiB
#           each, from /usr/lib/x86_64-linux-gnu then /usr/bin, copied in by the `files/` of
#           one role on a busybox origin) by `layer push` to s3://bench/xN, against
#           `tar -C ARTIFACT -cf - . | zstd -3 -T0 | curl -T - http://127.0.0.1:PORT/bench/anchorN`
#           (moto takes unsigned PUTs). Target: layer/anchor <= 1.5.
#   pull    `layer pull` of that layer into a second copy of the project with its own empty
#           --cache, against `curl URL | zstd -d | tar -x` of anchorN into an empty folder.
#           moto refuses unsigned GETs (403: objects are private), so URL is a presigned GET
#           URL made with boto3 (installed with moto) before the clock starts: curl still does
#           the download itself. Target: layer/anchor <= 1.5.
#   memory  the peak resident set size of `layer push` and `layer pull` (GNU time's "Maximum
#           resident set size", the largest of the rounds). Target: < 100 MB each.
#   warm    machine A (its own local cache) builds an estate of 4 images (base <- app <- svc,
#           base <- tool) and pushes each build (LAYER_SIGNING_KEY set); machine B (a fresh
#           local cache) runs `layer build --pull` against the remote (every image fresh on the
#           remote, all 4 downloaded), against machine B' building the estate from scratch with
#           --no-remote. Each role stands for real provisioning: its files/ copies ROLE_MB
#           (default 20) MB of distinct files from /usr/bin and its provision.sh sleeps 2 s in
#           place of apt-get. `layer build` without --pull (nothing downloaded: the plan finds
#           every image fresh on the remote) is shown too. Target: scratch/warm >= 10.
#
#   benches/remote.sh            (`just bench` runs this; needs root for the rootfs backend)
#
# The S3 server is `moto_server -H 127.0.0.1 -p PORT` from a virtualenv made once under
# target/bench-venv (`python3 -m venv`, `pip install 'moto[server]'`), killed on exit. The AWS
# variables are set for layer (endpoint, region, test credentials: without credentials
# object_store would ask the instance metadata service, which is not wanted here): network goes
# only to 127.0.0.1 (and PyPI the first time). Installs zstd, curl, time and busybox-static with
# apt-get when missing. Everything the bench makes lives in one folder under BENCH_TMP (default
# $TMPDIR or /var/tmp), removed on exit unless KEEP=1.
# Environment: RUNS (3), SIZE_MB (180), ROLE_MB (20), KEEP, BENCH_TMP.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-180}
ROLE_MB=${ROLE_MB:-20}
LAYER=$ROOT/target/release/layer
VENV=$ROOT/target/bench-venv
BUCKET=bench

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: layer's rootfs builds need it"
[ "$RUNS" -ge 1 ] 2>/dev/null || die "RUNS must be a positive number"
[ "$SIZE_MB" -ge 1 ] 2>/dev/null || die "SIZE_MB must be a positive number"
[ "$ROLE_MB" -ge 1 ] 2>/dev/null || die "ROLE_MB must be a positive number"

# --- tools -----------------------------------------------------------------------------------
apt_updated=
need() { # need PATH-OR-COMMAND PACKAGE
    if [ "${1#/}" != "$1" ]; then [ -e "$1" ] && return; else command -v "$1" >/dev/null 2>&1 && return; fi
    command -v apt-get >/dev/null 2>&1 || die "$1 is missing; install the $2 package"
    say "installing $2"
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    if [ "${1#/}" != "$1" ]; then [ -e "$1" ]; else command -v "$1" >/dev/null 2>&1; fi ||
        die "$1 is still missing after installing $2"
}
need zstd zstd
need curl curl
need /usr/bin/time time
need /usr/bin/busybox busybox-static
command -v python3 >/dev/null 2>&1 || die "python3 is missing; apt-get install python3 python3-venv"
command -v cargo >/dev/null 2>&1 || die "cargo is missing; install Rust >= 1.85 with rustup (https://rustup.rs)"

if [ ! -e "$VENV/.bench-ready" ]; then
    say "making $VENV with moto[server] (once)"
    python3 -m venv "$VENV" || die "python3 -m venv failed; apt-get install python3-venv"
    "$VENV/bin/pip" install --quiet 'moto[server]'
    touch "$VENV/.bench-ready"
fi

say "building layer (release)"
cargo build --release --quiet --bin layer

# --- workspace and server --------------------------------------------------------------------
PARENT=${BENCH_TMP:-${TMPDIR:-/var/tmp}}
W=$(mktemp -d "$PARENT/layer-remote.XXXXXX")
chmod 700 "$W"
LOG=$W/bench.log
MOTO_PID=
cleanup() {
    if [ -n "$MOTO_PID" ]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-}" = 1 ]; then
        say "workspace kept: $W"
    else
        rm -rf --one-file-system "$W"
    fi
}
trap cleanup EXIT
say "workspace $W"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
EP=http://127.0.0.1:$PORT
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" </dev/null >"$W/moto.log" 2>&1 &
MOTO_PID=$!
say "moto_server on $EP (pid $MOTO_PID)"
# Only loopback, never a proxy.
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1
CURL=(curl -sS -f --noproxy '*')
# Creating the bucket is also the check that the server answers.
for ((i = 0; ; i++)); do
    "${CURL[@]}" -o /dev/null -X PUT "$EP/$BUCKET" 2>/dev/null && break
    kill -0 "$MOTO_PID" 2>/dev/null || { cat "$W/moto.log" >&2; die "moto_server exited"; }
    [ "$i" -lt 300 ] || die "moto_server did not answer on $EP in 30 s"
    sleep 0.1
done
export AWS_ENDPOINT_URL=$EP AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
unset AWS_PROFILE AWS_SESSION_TOKEN LAYER_REMOTE LAYER_SIGNING_KEY LAYER_CACHE

# A presigned GET URL for KEY of the bucket (computed locally; see the header).
presign() {
    "$VENV/bin/python" -c '
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
print(s3.generate_presigned_url("get_object", Params={"Bucket": sys.argv[2], "Key": sys.argv[3]}, ExpiresIn=3600))
' "$EP" "$BUCKET" "$1"
}

KEY=$W/signing.key
PUBLIC=$("$LAYER" keygen -o "$KEY" 2>>"$LOG")

# --- helpers ---------------------------------------------------------------------------------
# timed CMD... -> seconds on stdout; the command's output goes to $LOG
timed() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "$1 failed (log: $LOG)"; }
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'; }
# moved WHAT: the last line of the log says that WHAT moved the one image
moved() { tail -n 1 "$LOG" | grep -q '^1 of 1 images moved, 0 failed' || die "$1 did not move the layer: $(tail -n 3 "$LOG")"; }
maxrss_mb() { awk -F': *' '/Maximum resident set size/ { printf "%.1f\n", $2 / 1024 }' "$1"; }
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# project DIR: a layer.toml on a busybox origin, the remote trusting this run's key
project() {
    mkdir -p "$1/images" "$1/roles"
    cat >"$1/layer.toml" <<EOF
[project]
strategy = "deep"
backend = "rootfs"

[origins.bb]
busybox = "/usr/bin/busybox"

[remote]
url = "s3://$BUCKET/unused"
trusted_keys = ["$PUBLIC"]
EOF
}
image() { # image DIR NAME from|origin PARENT ROLE
    printf 'description = "%s"\n%s = "%s"\nroles = ["%s"]\nversion = "1.0"\n' "$2" "$3" "$4" "$5" >"$1/images/$2.toml"
}
# pick_files MB SKIP_MB DIR... -> paths (relative to /) of regular files under DIRs smaller
# than 3 MiB (no 100 MB libLLVM), in name order, skipping the first SKIP_MB MB, then MB MB
pick_files() {
    local mb=$1 skip=$2 d
    shift 2
    for d in "$@"; do find "$d" -type f -size -4M -printf '%s\t%p\n' | LC_ALL=C sort -t "$(printf '\t')" -k2; done |
        awk -F'\t' -v mb="$mb" -v skip="$skip" '
            { s += $1 }
            s <= skip * 1e6 || t >= mb * 1e6 { next }
            { print substr($2, 2); t += $1 }'
}
copy_files() { # copy_files LIST DEST: the files of LIST (relative to /) under DEST, modes kept
    mkdir -p "$2"
    tar -C / -cf - -T "$1" | tar -C "$2" -xf -
}

# --- 1. push and pull of a big layer --------------------------------------------------------------
say "a ${SIZE_MB} MB layer: copying real files into a role"
BIG=$W/big
project "$BIG"
image "$BIG" debian origin bb libs
pick_files "$SIZE_MB" 0 /usr/lib/x86_64-linux-gnu /usr/bin >"$W/big.list"
copy_files "$W/big.list" "$BIG/roles/libs/files"
printf 'set -eu\necho "libs 1.0" > /etc/libs-release\n' >"$BIG/roles/libs/provision.sh"
cp -a "$BIG" "$W/big-pull"

say "building it"
"$LAYER" -C "$BIG" --cache "$W/big-cache" --no-remote --no-progress -q build >>"$LOG" 2>&1 ||
    { tail -n 30 "$LOG" >&2; die "layer could not build the big layer"; }
ART=$(ls -d "$W"/big-cache/artifacts/debian/*/ 2>/dev/null | head -n 1)
ART=${ART%/}
[ -d "$ART" ] || die "no artifact under $W/big-cache/artifacts/debian/ (cache layout changed?)"
LAYER_BYTES=$(du -sb "$ART" | awk '{ print $1 }')
LAYER_FILES=$(find "$ART" | wc -l)
[ "$LAYER_BYTES" -ge $((SIZE_MB * 1000000)) ] || die "the artifact is only $LAYER_BYTES bytes"
say "artifact: $((LAYER_BYTES / 1000000)) MB, $LAYER_FILES entries"

layer_push() { # layer_push ROUND
    LAYER_SIGNING_KEY=$KEY /usr/bin/time -v -o "$W/push$1.time" \
        "$LAYER" -C "$BIG" --cache "$W/big-cache" --remote "s3://$BUCKET/x$1" --remote-required --no-progress push
}
# what every command of layer does before it moves a byte: open the project, hash its inputs
# (the stat cache spares unchanged role files), read the local cache
layer_plan() { "$LAYER" -C "$BIG" --cache "$W/big-cache" --no-remote plan; }
anchor_push() { # anchor_push ROUND
    tar -C "$ART" -cf - . | zstd -3 -T0 -q | "${CURL[@]}" -o /dev/null -T - "$EP/$BUCKET/anchor$1"
}
layer_pull() { # layer_pull ROUND
    /usr/bin/time -v -o "$W/pull$1.time" \
        "$LAYER" -C "$W/big-pull" --cache "$W/pull-cache" --remote "s3://$BUCKET/x$1" --remote-required --no-progress pull
}
anchor_pull() { # anchor_pull URL
    mkdir "$W/anchor-out"
    "${CURL[@]}" "$1" | zstd -d -q | tar -C "$W/anchor-out" -xf -
}

declare -a push_l=() push_a=() pull_l=() pull_a=() rss_push=() rss_pull=() plans=()
say "push and pull, $RUNS rounds (each: layer push, anchor push, layer pull, anchor pull)"
for ((i = 1; i <= RUNS; i++)); do
    lp=$(timed layer_push "$i")
    moved 'layer push'
    ap=$(timed anchor_push "$i")
    rm -rf "$W/pull-cache"
    ll=$(timed layer_pull "$i")
    moved 'layer pull'
    url=$(presign "anchor$i")
    rm -rf "$W/anchor-out"
    al=$(timed anchor_pull "$url")
    if [ "$i" = 1 ]; then
        pulled=$(ls -d "$W"/pull-cache/artifacts/debian/*/ 2>/dev/null | head -n 1)
        [ -n "$pulled" ] || die "layer pull left no artifact under $W/pull-cache/artifacts/debian/ (log: $LOG)"
        diff -r --no-dereference "$ART" "${pulled%/}" >/dev/null ||
            die "the pulled artifact differs from the pushed one"
        diff -r --no-dereference "$ART" "$W/anchor-out" >/dev/null ||
            die "the anchor's extracted tree differs from the artifact"
        ANCHOR_BYTES=$(curl -sS -I --noproxy '*' "$url" | awk -F': *' 'tolower($1) == "content-length" { print $2 + 0 }')
    fi
    pl=$(timed layer_plan)
    push_l+=("$lp") push_a+=("$ap") pull_l+=("$ll") pull_a+=("$al") plans+=("$pl")
    rss_push+=("$(maxrss_mb "$W/push$i.time")") rss_pull+=("$(maxrss_mb "$W/pull$i.time")")
    printf '    round %d/%d: push layer %.3fs anchor %.3fs   pull layer %.3fs anchor %.3fs   plan %.3fs   peak %s / %s MB\n' \
        "$i" "$RUNS" "$lp" "$ap" "$ll" "$al" "$pl" "${rss_push[-1]}" "${rss_pull[-1]}" >&2
done
rm -rf "$W/pull-cache" "$W/anchor-out" "$W/big-pull/roles" "$BIG/roles"

# --- 2. warm remote against scratch -------------------------------------------------------------
say "a 4-image estate, roles of ${ROLE_MB} MB of files and a 2 s provision.sh each"
EST=$W/estate
project "$EST"
image "$EST" base origin bb base
image "$EST" app from base app
image "$EST" svc from app svc
image "$EST" tool from base tool
k=0
for r in base app svc tool; do
    pick_files "$ROLE_MB" $((k * ROLE_MB)) /usr/bin /usr/lib/x86_64-linux-gnu >"$W/$r.list"
    copy_files "$W/$r.list" "$EST/roles/$r/files/opt/$r"
    # stands for `apt-get install` of the role's packages
    printf 'set -eu\nsleep 2\necho "%s 1.0" > /etc/%s-release\n' "$r" "$r" >"$EST/roles/$r/provision.sh"
    k=$((k + 1))
done
cp -a "$EST" "$W/estate-b"
EST_BYTES=$(du -sb "$EST/roles" | awk '{ print $1 }')

say "machine A builds and pushes"
A_T=$(timed env LAYER_SIGNING_KEY="$KEY" "$LAYER" -C "$EST" --cache "$W/a-cache" --remote "s3://$BUCKET/estate" \
    --remote-required --no-progress build)
cached=$("$LAYER" -C "$W/estate-b" --cache "$W/b-check" --remote "s3://$BUCKET/estate" --remote-required plan --format json |
    python3 -c 'import json, sys; print(sum(i.get("cached") == "remote" for i in json.load(sys.stdin)["images"]))')
[ "$cached" = 4 ] || die "machine B sees $cached of 4 images fresh on the remote, not 4 (log: $LOG)"
rm -rf "$W/b-check"

warm_pull() { "$LAYER" -C "$W/estate-b" --cache "$W/b-cache" --remote "s3://$BUCKET/estate" --remote-required --no-progress build --pull; }
warm_plan() { "$LAYER" -C "$W/estate-b" --cache "$W/b-cache" --remote "s3://$BUCKET/estate" --remote-required --no-progress build; }
scratch() { "$LAYER" -C "$W/estate-b" --cache "$W/s-cache" --no-remote --no-progress build; }
declare -a warm=() warm0=() cold=()
say "warm and scratch, $RUNS rounds (each: B build --pull, B build, B' build from scratch)"
for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$W/b-cache"
    w=$(timed warm_pull)
    n=$(ls -d "$W"/b-cache/artifacts/*/*/ 2>/dev/null | wc -l)
    [ "$n" = 4 ] || die "machine B has $n artifacts after \`build --pull\`, not 4 (log: $LOG)"
    rm -rf "$W/b-cache"
    w0=$(timed warm_plan)
    rm -rf "$W/s-cache"
    c=$(timed scratch)
    warm+=("$w") warm0+=("$w0") cold+=("$c")
    printf '    round %d/%d: warm --pull %.3fs   warm %.3fs   scratch %.3fs\n' "$i" "$RUNS" "$w" "$w0" "$c" >&2
done

# --- report ----------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == "<=") ? r <= t : (op == "<") ? r < t : r >= t; print ok ? "ok" : "MISSED" }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1e6 }'; }
PL=$(median "${push_l[@]}") PA=$(median "${push_a[@]}") GL=$(median "${pull_l[@]}") GA=$(median "${pull_a[@]}")
PP=$(median "${plans[@]}")
RP=$(max "${rss_push[@]}") RG=$(max "${rss_pull[@]}")
WM=$(median "${warm[@]}") W0=$(median "${warm0[@]}") CM=$(median "${cold[@]}")
echo
echo "layer $("$LAYER" --version 2>/dev/null | awk '{ print $2 }'), moto_server $("$VENV/bin/python" -c 'import moto; print(moto.__version__)') on 127.0.0.1, $(nproc) cores; median of $RUNS rounds, interleaved"
echo "layer: $(mb "$LAYER_BYTES") MB in $LAYER_FILES entries ($(mb "${ANCHOR_BYTES:-0}") MB as tar.zst -3)"
printf '%-30s %12s %12s %8s %9s %7s\n' "" "layer" "anchor" "ratio" "target" ""
r=$(ratio "$PL" "$PA")
printf '%-30s %11.3fs %11.3fs %8s %9s %7s\n' "push $(mb "$LAYER_BYTES") MB layer" "$PL" "$PA" "$r" "<= 1.5" "$(verdict "$r" 1.5 "<=")"
printf '%-30s %12s %12s\n' "  (range)" "$(range "${push_l[@]}")" "$(range "${push_a[@]}")"
printf '%-30s %11.3fs\n' "  of it, opening the project" "$PP"
r=$(ratio "$GL" "$GA")
printf '%-30s %11.3fs %11.3fs %8s %9s %7s\n' "pull $(mb "$LAYER_BYTES") MB layer" "$GL" "$GA" "$r" "<= 1.5" "$(verdict "$r" 1.5 "<=")"
printf '%-30s %12s %12s\n' "  (range)" "$(range "${pull_l[@]}")" "$(range "${pull_a[@]}")"
printf '%-30s %10s MB %12s %8s %9s %7s\n' "peak RSS, layer push" "$RP" "" "" "< 100 MB" "$(verdict "$RP" 100 "<")"
printf '%-30s %10s MB %12s %8s %9s %7s\n' "peak RSS, layer pull" "$RG" "" "" "< 100 MB" "$(verdict "$RG" 100 "<")"
printf '%-30s %12s %12s %8s %9s %7s\n' "" "warm (B)" "scratch" "ratio" "target" ""
r=$(ratio "$CM" "$WM")
printf '%-30s %11.3fs %11.3fs %8s %9s %7s\n' "4 images, build --pull" "$WM" "$CM" "$r" ">= 10" "$(verdict "$r" 10 ">=")"
printf '%-30s %12s %12s\n' "  (range)" "$(range "${warm[@]}")" "$(range "${cold[@]}")"
printf '%-30s %11.3fs %11.3fs %8s\n' "4 images, build (no download)" "$W0" "$CM" "$(ratio "$CM" "$W0")"
echo
echo "opening the project: \`layer plan\` of the pushing project (keys, stat cache, local records), which"
echo "        every layer command does before it moves a byte"
echo "anchor: push = tar | zstd -3 -T0 | curl -T (unsigned PUT); pull = curl (presigned GET) | zstd -d | tar -x"
echo "estate: base <- app <- svc, base <- tool; each role $(mb $((EST_BYTES / 4))) MB of files + sleep 2 (for apt-get);"
echo "        machine A built and pushed it in $(printf '%.1f' "$A_T") s; B's warm builds start from an empty local cache"
