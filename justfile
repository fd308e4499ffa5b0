# Recipes are plain commands: each works without `just` too.

default: test

build:
    cargo build --release

test:
    cargo test

lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# `layer plan` against `ninja -n` on synthetic estates of 1,000 and 10,000 images,
# `layer plan --since HEAD~1` against the no-op plan, and the scheduling overhead of
# `layer build` against its bound.
bench:
    bash benches/plan.sh
    bash benches/since.sh
    cargo build --release
    cargo run --release --example schedule
    bash benches/podman.sh

# The main job on the example estate.
demo:
    cargo run --release -- plan
