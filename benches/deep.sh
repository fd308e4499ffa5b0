#!/usr/bin/env bash
# Planning is linear in the size of the project (issue 16, failure 7): `layer plan` on projects
# shaped to find super-linear spots, each at two sizes so that the growth shows.
#
#   benches/deep.sh [chain|cycle|origins|vars|depends]...   (default: all)
#
#   chain    a `from` chain of N images, each with a role of its own   (N = 5,000 and 20,000)
#   cycle    N images built from each other in one cycle (exit 2)       (N = 2,500 and 10,000)
#   origins  N origins in layer.toml, an image on each                   (N = 25,000 and 100,000)
#   vars     one image with N [vars]                                     (N = 25,000 and 100,000)
#   depends  N roles, each depending on the one before                  (N = 2,500 and 10,000)
#
# Target: the 20,000-image chain plans in under 2 s (a release build, a warm page cache), and
# four times the size takes at most about five times as long for every shape. Projects are
# written under target/bench/deep/ (BENCH_DIR) and kept between runs. RUNS (3) runs each.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-target/bench}/deep
LAYER=$PWD/target/release/layer
TARGET_CHAIN_S=2

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo is missing; install Rust with rustup (https://rustup.rs)"
say "building layer (release)"
cargo build --release --quiet --bin layer

header() { # header DIR: a layer.toml with one id origin and a command backend
    mkdir -p "$1"
    printf '[project]\nbackend = "sh"\n\n[origins.o]\nid = "ami-1"\n\n[backends.sh]\nkind = "command"\ncommand = ["true"]\n' >"$1/layer.toml"
}

gen_chain() { # gen_chain N DIR
    header "$2"
    awk -v n="$1" -v d="$2" 'BEGIN {
        for (i = 0; i < n; i++) {
            f = d "/images/i" i ".toml"; r = d "/roles/r" i
            if (i == 0) print "origin = \"o\"" > f; else print "from = \"i" i-1 "\"" > f
            print "roles = [\"r" i "\"]\n[vars]\nN = \"" i "\"" > f; close(f)
            printf "packages = [\"p%d\"]\n", i > (r ".toml")
            close(r ".toml")
        }
    }'
    # awk cannot make folders: move each role.toml into its folder.
    (cd "$2/roles" && for f in r*.toml; do mkdir -p "${f%.toml}" && mv "$f" "${f%.toml}/role.toml"; done)
}

gen_cycle() {
    header "$2"
    awk -v n="$1" -v d="$2" 'BEGIN { for (i = 0; i < n; i++) { f = d "/images/i" i ".toml"; print "from = \"i" (i + 1) % n "\"" > f; close(f) } }'
}

gen_origins() {
    header "$2"
    awk -v n="$1" -v d="$2" 'BEGIN {
        t = d "/layer.toml"
        for (i = 0; i < n; i++) printf "\n[origins.o%d]\nid = \"ami-%d\"\n", i, i >> t
        for (i = 0; i < n; i += 1000) { f = d "/images/i" i ".toml"; print "origin = \"o" i "\"" > f; close(f) }
    }'
}

gen_vars() {
    header "$2"
    awk -v n="$1" -v d="$2" 'BEGIN { f = d "/images/one.toml"; print "origin = \"o\"\n[vars]" > f; for (i = 0; i < n; i++) printf "V%d = \"%d\"\n", i, i > f }'
}

gen_depends() {
    header "$2"
    awk -v n="$1" -v d="$2" 'BEGIN {
        for (i = 0; i < n; i++) { f = d "/roles/r" i ".toml"; if (i > 0) print "depends = [\"r" i-1 "\"]" > f; else printf "" > f; close(f) }
        f = d "/images/top.toml"; print "origin = \"o\"\nroles = [\"r" n-1 "\"]" > f
    }'
    (cd "$2/roles" && for f in r*.toml; do mkdir -p "${f%.toml}" && mv "$f" "${f%.toml}/role.toml"; done)
}

declare -A SIZES=([chain]="5000 20000" [cycle]="2500 10000" [origins]="25000 100000" [vars]="25000 100000" [depends]="2500 10000")
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(chain cycle origins vars depends)

fail=0
for shape in "${shapes[@]}"; do
    [ -n "${SIZES[$shape]:-}" ] || die "unknown shape \`$shape\` (chain, cycle, origins, vars, depends)"
    prev=
    for n in ${SIZES[$shape]}; do
        dir=$BENCH_DIR/$shape-$n
        if [ ! -e "$dir/.done" ]; then
            say "writing $shape of $n"
            rm -rf "$dir"
            mkdir -p "$dir/images" "$dir/roles"
            "gen_$shape" "$n" "$dir"
            touch "$dir/.done"
        fi
        (cd "$dir" && "$LAYER" plan >/dev/null 2>&1 || true) # warm the page and stat caches
        best=
        for _ in $(seq "$RUNS"); do
            start=$(date +%s.%N)
            (cd "$dir" && "$LAYER" plan >/dev/null 2>&1) || true
            t=$(echo "$(date +%s.%N) - $start" | bc)
            if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
        done
        printf '%-8s %7d  %6.2f s' "$shape" "$n" "$best"
        if [ -n "$prev" ]; then
            printf '   x%.1f for x4 the size' "$(echo "$best / $prev" | bc -l)"
        fi
        printf '\n'
        if [ "$shape" = chain ] && [ "$n" = 20000 ] && [ "$(echo "$best >= $TARGET_CHAIN_S" | bc)" = 1 ]; then
            echo "  over the target of ${TARGET_CHAIN_S} s" >&2
            fail=1
        fi
        prev=$best
    done
done
exit $fail
