#!/usr/bin/env bash
# The benchmarks, with the servers they need (figures and what they mean: BENCHMARKS.md):
# fingerprinting 1 GiB, building and pushing 1 GiB through the Docker engine to a local
# registry, a no-op deploy of a fleet, what a no-op costs at 10, 100 and 500 consumers
# (Terraform commands, GitHub requests), builds on cold engines (the registry's cache, shards,
# a first deploy against a shell loop), watching 20 rollouts against a scripted ECS, and the
# action image's size and start-up. Prints figures;
# CDC_BENCH_MIB changes the size. Usage: scripts/bench.sh [cargo bench arguments, e.g.
# --bench build_push]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdc-deploy/target}"

# shellcheck source=scripts/servers.sh
. "$root/scripts/servers.sh"
servers_install
servers_start

# The action image's benchmark measures the binary the Dockerfile ships: the dist profile's.
cargo build --locked --profile dist --bin cdc-deploy
export CDC_IMAGE_BIN="$CARGO_TARGET_DIR/dist/cdc-deploy"

cargo bench --locked "$@"
