#!/usr/bin/env bash
# Installs and starts every server the integration tests and benchmarks talk to, on free ports,
# and exports where they are:
#   CDC_TEST_MOTO_URL    moto_server (the ECR API)
#   CDC_TEST_REGISTRY    Debian's docker-registry with htpasswd (user AWS, password = moto's token)
#   CDC_TEST_BASE_IMAGE  a busybox image made locally with `docker import` (nothing can be pulled)
#
# Sourced by scripts/test.sh and scripts/bench.sh. Run it directly to keep the servers up for
# development: it prints the exports, then waits until interrupted.

servers_state="${CDC_TEST_STATE:-$HOME/.cache/cdc-deploy/test-env}"
mkdir -p "$servers_state"
server_pids=()

servers_die() { printf 'error: %s\n' "$*" >&2; exit 1; }
servers_need() { command -v "$1" >/dev/null 2>&1; }

servers_install() {
  local missing=()
  servers_need docker-registry || missing+=(docker-registry)
  servers_need htpasswd || missing+=(apache2-utils)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  if [ ${#missing[@]} -gt 0 ]; then
    printf '\n== installing %s from Debian'"'"'s packages\n' "${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! servers_need moto_server; then
    printf '\n== installing moto\n'
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
  fi
  servers_need docker || servers_die "the docker CLI is missing; the tests build images with the machine's Docker engine"
  docker info >/dev/null 2>&1 || servers_die "the Docker engine does not answer at ${DOCKER_HOST:-/var/run/docker.sock}"
}

servers_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

servers_stop() {
  for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # Images the tests pushed to this run's registry are left in the engine; remove them.
  if [ -n "${CDC_TEST_REGISTRY:-}" ]; then
    docker images --format '{{.Repository}}:{{.Tag}}' \
      | grep -F "$CDC_TEST_REGISTRY/" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  fi
}

servers_wait_http() { # url name log
  for _ in $(seq 1 100); do
    # Any HTTP answer (the registry says 401) means the server is up.
    if python3 -c 'import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError: pass
except Exception: sys.exit(1)' "$1"; then return 0; fi
    sleep 0.2
  done
  cat "$3" >&2
  servers_die "$2 did not start at $1"
}

# The base image test consumers build FROM: busybox-static in an empty root, imported.
servers_base_image() {
  export CDC_TEST_BASE_IMAGE="cdc-test/busybox:1"
  if docker image inspect "$CDC_TEST_BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  printf '\n== making %s from busybox-static\n' "$CDC_TEST_BASE_IMAGE"
  local root="$servers_state/busybox-root"
  rm -rf "$root" && mkdir -p "$root/bin" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  tar -C "$root" -c . | docker import - "$CDC_TEST_BASE_IMAGE" >/dev/null
}

servers_start() {
  trap servers_stop EXIT

  printf '\n== starting moto_server\n'
  local moto_port
  moto_port=$(servers_free_port)
  moto_server -H 127.0.0.1 -p "$moto_port" >"$servers_state/moto.log" 2>&1 &
  server_pids+=($!)
  servers_wait_http "http://127.0.0.1:$moto_port/moto-api/" moto_server "$servers_state/moto.log"
  export CDC_TEST_MOTO_URL="http://127.0.0.1:$moto_port"

  printf '\n== starting docker-registry (htpasswd: user AWS, password = moto'"'"'s ECR token)\n'
  local reg_port reg_dir
  reg_port=$(servers_free_port)
  reg_dir="$servers_state/registry"
  rm -rf "$reg_dir" && mkdir -p "$reg_dir/data"
  htpasswd -Bbn AWS 123456789012-auth-token >"$reg_dir/htpasswd"
  cat >"$reg_dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $reg_dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$reg_port
auth:
  htpasswd:
    realm: cdc-deploy-tests
    path: $reg_dir/htpasswd
YAML
  docker-registry serve "$reg_dir/config.yml" >"$servers_state/registry.log" 2>&1 &
  server_pids+=($!)
  servers_wait_http "http://127.0.0.1:$reg_port/v2/" docker-registry "$servers_state/registry.log"
  export CDC_TEST_REGISTRY="127.0.0.1:$reg_port"

  servers_base_image
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  servers_install
  servers_start
  printf 'export CDC_TEST_MOTO_URL=%s CDC_TEST_REGISTRY=%s CDC_TEST_BASE_IMAGE=%s\n' \
    "$CDC_TEST_MOTO_URL" "$CDC_TEST_REGISTRY" "$CDC_TEST_BASE_IMAGE"
  printf 'servers are up; Ctrl-C stops them\n'
  wait
fi
