#!/usr/bin/env bash
# A Debian estate built cold by layer next to the same packages installed by hand, measured in
# one run on the mirror the machine's apt uses (issue 15, item 4). Needs root and mmdebstrap.
#
#   benches/estate.sh
#
# The chain: three images on Debian bookworm (minbase), `base` <- `app` <- `svc`, about 50
# packages declared and about 400 installed. Measured, in this order:
#
#   layer deep     `layer build` of the chain with an empty cache (the origin made by
#                  mmdebstrap, then one layer per image)
#   by hand        mmdebstrap, then per image a copy of the tree below and `apt-get update &&
#                  apt-get install` in a chroot of it (stacked chroots)
#   one mmdebstrap mmdebstrap --include= of every package at once
#   layer shallow  `layer build --strategy shallow` on the deep build's cache after `layer
#                  cache gc --apt` (origin kept, apt downloads dropped): each image installs the
#                  whole chain's packages, so every package is wanted up to three times; the
#                  downloads are counted from apt's `Get:` lines in the build logs
#   README estate  `layer build` of the README's example estate (a copy, locked anew) with an
#                  empty cache
#
# Environment: BENCH_DIR (target/bench/estate), LAYER (target/release/layer), NO_BUILD=1.
# Target (issue 15): layer deep / by hand <= 1, and no package downloaded twice.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-target/bench/estate}
LAYER=${LAYER:-$REPO/target/release/layer}

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap --mode=root, chroots, the rootfs backend)"
command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is missing: apt-get install mmdebstrap"
if [ -z "${NO_BUILD:-}" ]; then
    say "building layer (release)"
    cargo build --release --quiet --bin layer
fi

BASE="ca-certificates curl wget openssh-server sudo less vim-tiny procps iproute2 iputils-ping netbase gnupg rsync cron logrotate rsyslog locales tzdata jq unzip"
APP="nginx python3 python3-venv python3-pip python3-yaml git make build-essential libssl-dev pkg-config xz-utils zstd"
SVC="postgresql-client redis-tools libpq-dev python3-psycopg2 python3-requests python3-jinja2 python3-cryptography sqlite3 gettext-base htop tmux file bzip2 patch"
declared=$(echo $BASE $APP $SVC | wc -w)

toml_list() { printf '"%s", ' $1 | sed 's/, $//'; }

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
B=$(cd "$BENCH_DIR" && pwd)
P=$B/project
mkdir -p "$P/images"
cat > "$P/layer.toml" <<EOF
[project]
strategy = "deep"
backend = "rootfs"

[origins.bookworm]
debian = { suite = "bookworm", variant = "minbase" }
EOF
printf 'origin = "bookworm"\npackages = [%s]\n' "$(toml_list "$BASE")" > "$P/images/base.toml"
printf 'from = "base"\npackages = [%s]\n' "$(toml_list "$APP")" > "$P/images/app.toml"
printf 'from = "app"\npackages = [%s]\n' "$(toml_list "$SVC")" > "$P/images/svc.toml"

say "locking the estate (not timed)"
"$LAYER" -C "$P" --cache "$B/lock-cache" lock >/dev/null
rm -rf "$B/lock-cache"

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
now() { date +%s%N; }

say "layer: cold deep build"
t0=$(now)
"$LAYER" -C "$P" --cache "$B/cache" build -q --no-progress
t1=$(now)
layer_deep=$(secs "$t0" "$t1")
say "layer cold deep build: ${layer_deep} s"
installed=$(grep -c '^Package:' "$(find "$B/cache/artifacts" -path '*svc*' -name status -path '*var/lib/dpkg/*' | head -1)" 2>/dev/null || echo "?")

# The origin's archives, as layer gives them to mmdebstrap.
lines=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)
mirror=$(awk '/^URIs:/ { print $2; exit } /^deb / { print $2; exit }' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
if [ -n "$mirror" ]; then
    lines[0]="deb $mirror bookworm main"
    lines[1]="deb $mirror bookworm-updates main"
fi

say "by hand: mmdebstrap, then apt-get install per layer in stacked chroots"
H=$B/by-hand
mkdir -p "$H"
t0=$(now)
mmdebstrap --quiet --variant=minbase --mode=root --format=directory bookworm "$H/0" "${lines[@]}"
prev=0
n=0
for pkgs in "$BASE" "$APP" "$SVC"; do
    n=$((n + 1))
    cp -a "$H/$prev" "$H/$n"
    unshare --mount --propagation private sh -c "
        mount -t proc proc '$H/$n/proc' &&
        chroot '$H/$n' sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $pkgs >/dev/null'"
    prev=$n
done
t1=$(now)
by_hand=$(secs "$t0" "$t1")
say "by hand: ${by_hand} s"
rm -rf "$H"

say "one mmdebstrap of every package"
t0=$(now)
mmdebstrap --quiet --variant=minbase --mode=root --format=directory \
    --include="$(echo $BASE $APP $SVC | tr ' ' ',')" bookworm "$B/one" "${lines[@]}"
t1=$(now)
one=$(secs "$t0" "$t1")
say "one mmdebstrap: ${one} s"
rm -rf "$B/one"

say "layer: shallow build on the deep build's cache, apt downloads dropped"
"$LAYER" -C "$P" --cache "$B/cache" cache gc --apt >/dev/null
t0=$(now)
"$LAYER" -C "$P" --cache "$B/cache" build -q --no-progress --strategy shallow
t1=$(now)
layer_shallow=$(secs "$t0" "$t1")
say "layer shallow build: ${layer_shallow} s"
# apt's `Get:` lines of packages (`Get:N URI SUITE/COMPONENT ARCH NAME ARCH VERSION [SIZE UNIT]`),
# per log; a package is its name and version.
logs=$(find "$B/cache/logs" -name '*.log' -newermt "@$((t0 / 1000000000))")
gets=$(cat $logs | grep -E '^Get:[0-9]+ .* \[[0-9.,]+ [kMG]?B\]$' | grep -vE 'InRelease|Packages|Release' | awk '{ print $(NF-4), $(NF-2) }' || true)
downloads=$(printf '%s\n' "$gets" | grep -c . || true)
distinct=$(printf '%s\n' "$gets" | grep . | sort -u | wc -l)

say "README example estate: cold build"
R=$B/readme
mkdir -p "$R"
cp -a "$REPO/layer.toml" "$REPO/layer.lock" "$REPO/images" "$REPO/roles" "$R/"
"$LAYER" -C "$R" --cache "$B/readme-lock-cache" lock --update >/dev/null
rm -rf "$B/readme-lock-cache"
t0=$(now)
"$LAYER" -C "$R" --cache "$B/readme-cache" build -q --no-progress
t1=$(now)
readme=$(secs "$t0" "$t1")
say "README estate cold build: ${readme} s"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "estate: 3 images, $declared packages declared, $installed installed (svc)"
printf '%-44s %8s s\n' "layer cold deep build" "$layer_deep"
printf '%-44s %8s s\n' "by hand (mmdebstrap + stacked chroots)" "$by_hand"
printf '%-44s %8s s\n' "one mmdebstrap of everything" "$one"
printf '%-44s %8s s   (%s package downloads, %s distinct)\n' "layer shallow build (origin cached)" "$layer_shallow" "$downloads" "$distinct"
printf '%-44s %8s s\n' "README example estate, cold build" "$readme"
echo "layer deep / by hand:        $(ratio "$layer_deep" "$by_hand")   (target <= 1)"
echo "layer deep / one mmdebstrap: $(ratio "$layer_deep" "$one")"
echo "shallow: downloads / distinct: $downloads / $distinct   (target: equal)"
