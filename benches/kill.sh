#!/usr/bin/env bash
# kill -9 of `layer build` at random points, across the command and rootfs backends (issue 16):
# after each kill, no process of the build may survive, no record may be half written or
# corrupt (`layer cache verify`), the next build must succeed, and it must leave no temporary
# behind. Prints the counts; exits 1 when any check failed.
#
#   benches/kill.sh [KILLS]        (default 200; half per backend; the rootfs half needs root
#                                   and a static busybox, and is skipped without them)
#
# LAYER names the binary (default: target/debug/layer, built first).
set -euo pipefail

kills=${1:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
layer=${LAYER:-$here/target/debug/layer}
[ -n "${LAYER:-}" ] || (cd "$here" && cargo build -q)
work=$(mktemp -d)
# The background sleeps of this run's builds: a number no other process sleeps.
marker=$((86400 + RANDOM))
# Survivors are killed by pid (found by their exact command line `sleep MARKER`).
kill_survivors() { local pids; pids=$(pgrep -x -f "sleep $marker" || true); [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true; }
trap 'kill_survivors; rm -rf "$work"' EXIT

busybox=""
for b in /bin/busybox /usr/bin/busybox; do
  if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done

# A chain base -> app -> svc; every build script or provisioner leaves a `sleep MARKER` running
# in the background, which the end of its build (or layer's death) must take along.
project() { # DIR BACKEND
  local d=$1
  mkdir -p "$d/images" "$d/roles/base/files/etc" "$d/roles/app" "$d/roles/svc"
  if [ "$2" = command ]; then
    cat > "$d/layer.toml" <<'EOF'
[project]
strategy = "deep"
backend = "sh"

[origins.cloud]
id = "ami-0abc"

[backends.sh]
kind = "command"
command = ["./build.sh"]
EOF
    cat > "$d/build.sh" <<EOF
#!/bin/sh
sleep $marker &
(sleep $marker &)
i=0; while [ \$i -lt 20 ]; do i=\$((i+1)); echo "step \$i"; sleep 0.005; done
echo "art-\$LAYER_IMAGE-\$LAYER_VERSION" > "\$LAYER_OUTPUT"
EOF
    chmod +x "$d/build.sh"
    echo 'version = "1.0"
origin = "cloud"
roles = ["base"]' > "$d/images/base.toml"
  else
    printf '[project]\nstrategy = "deep"\n\n[origins.bb]\nbusybox = "%s"\n' "$busybox" > "$d/layer.toml"
    echo 'version = "1.0"
origin = "bb"
roles = ["base"]' > "$d/images/base.toml"
  fi
  for r in base app svc; do
    printf '#!/bin/sh\nsleep %s &\necho %s >> /etc/roles\n' "$marker" "$r" > "$d/roles/$r/provision.sh"
    chmod +x "$d/roles/$r/provision.sh"
  done
  printf 'version = "2.0"\nfrom = "base"\nroles = ["app"]\n' > "$d/images/app.toml"
  printf 'version = "0.1"\nfrom = "app"\nroles = ["svc"]\n' > "$d/images/svc.toml"
  echo 0 > "$d/roles/base/files/etc/motd"
}

survivors=0 corrupt=0 failed_next=0 temps=0 done_kills=0 killed_mid=0

one_backend() { # BACKEND KILLS
  local backend=$1 n=$2 d="$work/$1"
  project "$d" "$backend"
  # How long a whole build takes: the kills fall uniformly within it.
  local t0 t1 span
  t0=$(date +%s%N)
  "$layer" -C "$d" build --no-progress -q >/dev/null 2>&1
  t1=$(date +%s%N)
  span=$(( (t1 - t0) / 1000000 ))
  echo "$backend: a build of 3 images takes ${span} ms; $n kills within it"
  for i in $(seq 1 "$n"); do
    echo "$backend $i" > "$d/roles/base/files/etc/motd"
    "$layer" -C "$d" build --no-progress -q >/dev/null 2>&1 &
    local pid=$!
    local delay=$(( RANDOM * span / 32768 ))
    sleep "$(printf '0.%03d' "$delay")" 2>/dev/null || sleep "$((delay / 1000))"
    if kill -KILL "$pid" 2>/dev/null; then killed_mid=$((killed_mid + 1)); fi
    wait "$pid" 2>/dev/null || true
    done_kills=$((done_kills + 1))
    # Give the kernel and the reapers a moment, then look for survivors.
    local left=1
    for _ in $(seq 1 100); do
      if ! pgrep -x -f "sleep $marker" >/dev/null; then left=0; break; fi
      sleep 0.02
    done
    if [ $left = 1 ]; then
      survivors=$((survivors + 1))
      kill_survivors
    fi
    if ! "$layer" -C "$d" cache verify >/dev/null 2>&1; then corrupt=$((corrupt + 1)); fi
    if ! "$layer" -C "$d" build --no-progress -q >"$work/next.log" 2>&1; then
      failed_next=$((failed_next + 1))
      echo "$backend kill $i: the next build failed:"; sed 's/^/  /' "$work/next.log" | tail -5
    fi
    local t
    t=$(find "$d/cache" \( -name '.*.tmp[0-9]*' -o -name '*.tmp-[0-9]*' \) | wc -l)
    temps=$((temps + t))
  done
}

one_backend command $((kills / 2))
if [ "$(id -u)" = 0 ] && [ -n "$busybox" ]; then
  one_backend rootfs $((kills - kills / 2))
else
  echo "rootfs: skipped (needs root and a static busybox)"
fi

echo "kills: $done_kills ($killed_mid while layer ran)"
echo "runs that left a process of the build alive: $survivors"
echo "kills after which cache verify failed: $corrupt"
echo "next builds that failed: $failed_next"
echo "temporaries left after the next build: $temps"
[ $survivors = 0 ] && [ $corrupt = 0 ] && [ $failed_next = 0 ] && [ $temps = 0 ]
