#!/usr/bin/env bash
# The benchmarks, with the servers they need: fingerprinting 1 GiB, building and pushing
# 1 GiB through the Docker engine to a local registry, a no-op deploy of a fleet, and watching
# 20 rollouts against a scripted ECS. Prints figures; CDC_BENCH_MIB changes
# the size. Usage: scripts/bench.sh [cargo bench arguments, e.g. --bench build_push]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdc-deploy/target}"

# shellcheck source=scripts/servers.sh
. "$root/scripts/servers.sh"
servers_install
servers_start

cargo bench --locked "$@"
