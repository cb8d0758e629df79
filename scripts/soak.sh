#!/usr/bin/env bash
# The soak run (not in CI): 50 consumers, 20 deploys in a row through the binary against the
# local stack (moto, the registry, the Docker engine, the real Terraform, the scripted ECS), with
# random small changes, random failures and one pair of deploys at once; after each run the
# report must agree with what the servers hold, and nothing may be left behind. Prints figures.
# Usage: scripts/soak.sh   (CDC_SOAK_RUNS, CDC_SOAK_CONSUMERS, CDC_SOAK_SEED change the size
# and the draw)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdc-deploy/target}"

# shellcheck source=scripts/servers.sh
. "$root/scripts/servers.sh"
servers_install
servers_start

cargo bench --locked --bench soak
