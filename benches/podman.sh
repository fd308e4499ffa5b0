#!/usr/bin/env bash
# layer's rootfs backend next to podman (rootful, runc) on the same three-image chain
# base -> app -> svc, from the same busybox origin, with the same roles (issue 4, "Speed").
#
#   benches/podman.sh            (`just bench` runs this; needs root)
#
# The project is benches/podman/ (layer.toml, images/, roles/); podman builds
# benches/podman/containerfiles/NAME.Containerfile with roles/NAME/ as its context, each FROM the
# previous image; base starts FROM scratch with ADD of a tarball of the very tree layer
# materializes for its busybox origin (so both start from the same files). Measured, each
# RUNS times, layer and podman interleaved (the machines are shared and noisy: compare the
# ratios, which come from the same run):
#
#   full build     empty cache / empty podman storage; the origin (busybox, rootfs.tar) on disk
#   no-op rebuild  nothing changed: layer builds nothing, podman takes every step from its cache
#   base changed   a line added to roles/base/provision.sh: both rebuild base, app and svc
#   disk           after a full build: layer's cache/artifacts + cache/origins, podman's --root
#
# Podman runs with its own --root/--runroot under the workspace (nothing touches the host's
# storage), `--runtime runc` (crun refuses these machines' hybrid cgroups; builds need no ulimit
# flags, but `podman run` here also needs `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`,
# as runc cannot apply podman's default RLIMIT_NOFILE and RLIMIT_NPROC), the kernel's overlay
# driver, `--network host` (layer's provisioners share the host network too) and `--pull=never`. Installs podman, runc and busybox-static with apt-get when missing.
# Environment: RUNS (7), WARMUP (1), KEEP=1 keeps the workspace, BENCH_TMP
# (parent of the workspace, default $TMPDIR or /var/tmp; must not be on overlayfs or tmpfs for
# the comparison to mean anything). Targets: full <= 1.00x podman, no-op <= 0.20x, disk <= 1.00x.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-7}
WARMUP=${WARMUP:-1}
FIXTURES=$ROOT/benches/podman
LAYER=$ROOT/target/release/layer

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: layer's rootfs builds and rootful podman both need it"
[ "$RUNS" -ge 1 ] 2>/dev/null || die "RUNS must be a positive number"

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
# Rootful podman on the kernel's overlayfs with the host network needs neither uidmap,
# fuse-overlayfs nor slirp4netns (those are for rootless podman); it needs runc, which Debian's
# podman does not pull in when crun is there.
need podman podman
need runc runc
need /usr/bin/busybox busybox-static
command -v cargo >/dev/null 2>&1 || die "cargo is missing; install Rust >= 1.85 with rustup (https://rustup.rs)"

say "building layer (release)"
cargo build --release --quiet --bin layer

# --- workspace -------------------------------------------------------------------------------
PARENT=${BENCH_TMP:-${TMPDIR:-/var/tmp}}
W=$(mktemp -d "$PARENT/layer-podman.XXXXXX")
chmod 700 "$W"
case $(stat -f -c %T "$W") in
overlayfs | tmpfs) say "warning: $W is on $(stat -f -c %T "$W"): layer falls back to copying and podman to fuse-overlayfs or vfs; set BENCH_TMP" ;;
esac
PROOT=$W/podman-root
PRUN=$W/podman-run
PODMAN=(podman --root "$PROOT" --runroot "$PRUN" --storage-driver overlay --runtime runc)

# Removes a folder the bench made, never through a mount point and staying on one filesystem.
# Podman's storage can leave mounts in its --root (its overlay home bound onto itself, an image
# mount after an interrupted run): those, and only those under the workspace, are unmounted first.
mounts_under() { awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
wipe() { # wipe DIR
    local d=$1 m
    [ -e "$d" ] || return 0
    case $d in "$W" | "$W"/*) ;; *) die "not removing $d: outside the workspace" ;; esac
    for m in $(mounts_under "$d"); do
        umount "$m" 2>/dev/null || umount -l "$m" || die "$m is still mounted; not removing $d"
    done
    [ -z "$(mounts_under "$d")" ] || die "something is still mounted under $d; not removing it"
    rm -rf --one-file-system "$d"
}
cleanup() {
    if [ "${KEEP:-}" = 1 ]; then
        say "workspace kept: $W"
    else
        wipe "$PROOT" && wipe "$PRUN" && wipe "$W"
    fi
}
trap cleanup EXIT

say "workspace $W"
cp -a "$FIXTURES" "$W/layer"
rm -rf "$W/layer/containerfiles" "$W/layer/cache"
for n in base app svc; do
    mkdir -p "$W/podman/$n"
    cp -a "$FIXTURES/roles/$n/." "$W/podman/$n/"
    cp "$FIXTURES/containerfiles/$n.Containerfile" "$W/podman/$n/Containerfile"
done
LOG=$W/build.log

# podman's origin: a tarball of the tree layer materializes for `busybox = "/usr/bin/busybox"`.
say "making rootfs.tar from layer's busybox origin"
"$LAYER" -C "$W/layer" --cache "$W/origin-cache" build --no-progress -q base >>"$LOG" 2>&1 ||
    { tail -n 30 "$LOG" >&2; die "layer could not build the fixture project"; }
origin_root=$(ls -d "$W"/origin-cache/origins/*/root 2>/dev/null | head -n 1)
[ -n "$origin_root" ] || die "no materialized origin under $W/origin-cache/origins/*/root (cache layout changed?)"
tar --numeric-owner --sort=name -C "$origin_root" -cf "$W/podman/base/rootfs.tar" .
wipe "$W/origin-cache"

# --- the two builders --------------------------------------------------------------------------
layer_build() { "$LAYER" -C "$W/layer" build --no-progress -q >>"$LOG" 2>&1; }
podman_build() {
    local n
    for n in base app svc; do
        "${PODMAN[@]}" build -q --pull=never --network host -t "localhost/$n" "$W/podman/$n" >>"$LOG" 2>&1 || return 1
    done
}
layer_reset() { wipe "$W/layer/cache"; }
podman_reset() { wipe "$PROOT"; wipe "$PRUN"; }
change=0
change_base() { # the same new line in both copies of the base role
    change=$((change + 1))
    local f
    for f in "$W/layer/roles/base/provision.sh" "$W/podman/base/provision.sh"; do
        printf 'echo "change %d" > /etc/base-change\n' "$change" >>"$f"
    done
}

# timed TOOL -> seconds on stdout; the build's output goes to $LOG
timed() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$1" || { tail -n 30 "$LOG" >&2; die "$1 failed (log: $LOG)"; }
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'; }

declare -A T
# measure CASE PREPARE: WARMUP+RUNS rounds, each PREPARE then layer then podman (interleaved)
measure() {
    local case=$1 prepare=$2 i l p
    local -a ls=() ps=()
    for ((i = 1; i <= WARMUP + RUNS; i++)); do
        $prepare layer
        l=$(timed layer_build)
        $prepare podman
        p=$(timed podman_build)
        if [ "$i" -gt "$WARMUP" ]; then
            ls+=("$l")
            ps+=("$p")
        fi
        printf '    %-13s run %d/%d: layer %.3fs  podman %.3fs%s\n' "$case" "$i" $((WARMUP + RUNS)) "$l" "$p" \
            "$([ "$i" -le "$WARMUP" ] && echo '  (warm-up)')" >&2
    done
    T[$case.layer]=$(median "${ls[@]}")
    T[$case.podman]=$(median "${ps[@]}")
    T[$case.layer.range]=$(range "${ls[@]}")
    T[$case.podman.range]=$(range "${ps[@]}")
}
prep_full() { if [ "$1" = layer ]; then layer_reset; else podman_reset; fi; }
prep_none() { :; }
prep_change() { [ "$1" = podman ] || change_base; }

# --- sanity: both build the same images, and rebuild what they should --------------------------
say "checking that both tools build the same trees"
layer_reset
podman_reset
layer_build || { tail -n 30 "$LOG" >&2; die "layer build failed"; }
podman_build || { tail -n 30 "$LOG" >&2; die "podman build failed"; }
# path, type, mode, owner, and the size of files and the target of links
listing() { find . \( -type d -printf '%p %y %m %U:%G\n' \) -o \( -type l -printf '%p %y %m %U:%G %l\n' \) -o -printf '%p %y %m %U:%G %s\n' | LC_ALL=C sort; }
lower=
for n in svc app base; do
    d=$(ls -d "$W/layer/cache/artifacts/$n"/*/ 2>/dev/null | head -n 1)
    lower+=${d%/}:
done
lower+=$(ls -d "$W"/layer/cache/origins/*/root | head -n 1)
mkdir -p "$W/mnt"
if unshare --mount sh -c 'mount -t overlay -o "ro,lowerdir=$1" none "$2" && cd "$2" && shift 2 && "$@"' \
    sh "$lower" "$W/mnt" bash -c "$(declare -f listing); listing" >"$W/layer.list" 2>>"$LOG"; then
    mnt=$("${PODMAN[@]}" image mount localhost/svc)
    (cd "$mnt" && listing) >"$W/podman.list"
    "${PODMAN[@]}" image unmount localhost/svc >/dev/null
    # podman leaves the empty mount points of its RUN bind mounts (layer leaves nothing), and
    # makes the root folder 555 where the origin's is 755
    grep -vE '^\./etc/(hosts|resolv\.conf) |^\. ' "$W/podman.list" >"$W/podman.filtered"
    sed -i '/^\. /d' "$W/layer.list"
    if diff -u "$W/layer.list" "$W/podman.filtered" >"$W/tree.diff"; then
        say "same tree for svc: $(wc -l <"$W/layer.list") entries (podman's also has empty /etc/hosts and /etc/resolv.conf, and a root folder 555)"
    else
        say "warning: the svc trees differ:"
        head -n 20 "$W/tree.diff" >&2
    fi
else
    say "warning: could not mount layer's svc layers to compare the trees (cache layout changed?)"
fi
ids() { "${PODMAN[@]}" image inspect --format '{{.Id}}' localhost/base localhost/app localhost/svc | tr '\n' ' '; }
before=$(ids)
"$LAYER" -C "$W/layer" build --no-progress --json >"$W/noop.json" 2>>"$LOG"
grep -q '"built"' "$W/noop.json" && die "layer rebuilt something on a no-op: $(cat "$W/noop.json")"
podman_build
[ "$(ids)" = "$before" ] || die "podman rebuilt something on a no-op"
change_base
"$LAYER" -C "$W/layer" build --no-progress --json >"$W/change.json" 2>>"$LOG"
[ "$(grep -o '"built"' "$W/change.json" | wc -l)" = 3 ] || die "layer did not rebuild exactly 3 images after the base change: $(cat "$W/change.json")"
podman_build
after=$(ids)
for id in $after; do
    case " $before " in *" $id "*) die "podman kept an image after the base change" ;; esac
done

# --- measurements ----------------------------------------------------------------------------
say "full build ($RUNS runs, $WARMUP warm-up)"
measure full prep_full
# sizes right after a full build: the three images and the origin, nothing else
kb() { du -s --block-size=1K "$@" | awk '{ s += $1 } END { print s }'; }
S_layer=$(kb "$W/layer/cache/artifacts" "$W/layer/cache/origins")
S_layer_all=$(kb "$W/layer/cache")
S_podman=$(kb "$PROOT" "$PRUN")
S_podman_layers=$(kb "$PROOT/overlay")
DF=$("${PODMAN[@]}" system df | awk '$1 == "Images" { print $4 }')
say "no-op rebuild"
measure noop prep_none
say "rebuild after changing the base role"
measure change prep_change

# --- report ----------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "ok" : "MISSED" }'; }
echo
echo "layer $("$LAYER" --version 2>/dev/null | awk '{ print $2 }') vs $(podman --version) (runc $(runc --version | awk 'NR == 1 { print $3 }')), median of $RUNS runs, interleaved"
printf '%-22s %16s %16s %14s %9s %8s\n' "" "layer" "podman" "layer/podman" "target" ""
for c in full noop change; do
    case $c in full) name="full build" t=1.00 ;; noop) name="no-op rebuild" t=0.20 ;; change) name="base role changed" t= ;; esac
    r=$(ratio "${T[$c.layer]}" "${T[$c.podman]}")
    printf '%-22s %15.3fs %15.3fs %14s %9s %8s\n' "$name" "${T[$c.layer]}" "${T[$c.podman]}" "$r" \
        "${t:+<= $t}" "$([ -z "$t" ] || verdict "$r" "$t")"
    printf '%-22s %16s %16s\n' "  (range)" "${T[$c.layer.range]}" "${T[$c.podman.range]}"
done
r=$(ratio "$S_layer" "$S_podman")
printf '%-22s %14s K %14s K %14s %9s %8s\n' "disk, 3 images" "$S_layer" "$S_podman" "$r" "<= 1.00" "$(verdict "$r" 1.00)"
echo
echo "disk: layer = du of cache/artifacts + cache/origins (whole cache: ${S_layer_all} K);"
echo "      podman = du of its --root and --runroot (layer diffs alone, overlay/: ${S_podman_layers} K;"
echo "      \`podman system df\` counts shared layers once per image: $DF)"
echo "no-op: podman/layer = $(ratio "${T[noop.podman]}" "${T[noop.layer]}")x"
