# Recipes are plain commands: each works without `just` too.

default: test

build:
    cargo build --release

# Tests that need root or a tool this machine lacks show as ignored with the reason; the
# README's test command installs the tools first.
test:
    cargo test

# Style, the lints Cargo.toml's [lints] turns on, and docs without broken links.
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

# Issue 15 and 16's figures, each beside an anchor measured in the same run: `layer plan`
# against `ninja -n` (warm, one file changed, cold) at 1,000 and 10,000 images, the same with a
# live `layer watch`, `build --force` against a full ninja build, `plan --since HEAD~1` against
# the no-op plan, `layer audit` against `sort` of the same records, the scheduler against its
# bound and the same commands run plainly, a 20,000-image chain, kill -9 of builds, a Debian estate against the same packages
# installed by hand, the rootfs backend against podman, and the remote cache against
# tar|zstd|curl on a local S3 server.
bench:
    bash benches/plan.sh
    bash benches/watch.sh
    bash benches/build.sh
    bash benches/since.sh
    bash benches/audit.sh
    cargo build --release
    cargo run --release --example schedule
    bash benches/deep.sh
    bash benches/kill.sh
    bash benches/estate.sh
    bash benches/podman.sh
    bash benches/remote.sh

# What CI runs: the README's two quick-start commands, the tests then the main job (as root;
# installs packages).
ci:
    bash .ci/run

# The main job on the example estate: build it for real and run its tests (as root).
demo:
    cargo run --release -- build
    cargo run --release -- test
