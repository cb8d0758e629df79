#!/usr/bin/env bash
# Installs and starts every server the integration tests and benchmarks talk to, on free ports,
# and exports where they are:
#   CDC_TEST_MOTO_URL             moto_server (the ECR API)
#   CDC_TEST_MOTO_AUTH_URL        a second moto_server that checks credentials
#                                 (INITIAL_NO_AUTH_ACTION_COUNT=0): unknown ones get a 403
#   CDC_TEST_REGISTRY             Debian's docker-registry with htpasswd (user AWS, password =
#                                 moto's token)
#   CDC_TEST_REGISTRY_OTHER_PASSWORD  the same registry program, with another password
#   CDC_TEST_BASE_IMAGE           a busybox image made locally with `docker import`
#   CDC_TEST_RUNTIME_BASE         the Dockerfile's runtime base (Debian with its packages), made by
#                                 debootstrap, for the action image's end-to-end test; not made
#                                 when CDC_TEST_ACTION_IMAGE names a built action image to test
#
# Sourced by scripts/test.sh, scripts/bench.sh and scripts/check-recipe.sh. Run it directly to
# keep the servers up for development: it makes a demo workspace in its folder (servers_demo) and
# prints the commands to try `plan` and `deploy` against them (servers_recipe), then waits until
# interrupted. Each run keeps its servers' files in a folder of its own.

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
servers_root="${CDC_TEST_STATE:-$HOME/.cache/cdc-deploy/test-env}"
mkdir -p "$servers_root"
# Folders a killed run left behind, a day old or more.
find "$servers_root" -maxdepth 1 -name 'servers.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
servers_state="$(mktemp -d "$servers_root/servers.XXXXXX")"
server_pids=()

servers_die() { printf 'error: %s\n' "$*" >&2; exit 1; }
servers_need() { command -v "$1" >/dev/null 2>&1; }

servers_install() {
  local missing=()
  servers_need docker-registry || missing+=(docker-registry)
  servers_need htpasswd || missing+=(apache2-utils)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  # The self-test of the image's Terraform installer signs and serves a release of its own.
  servers_need gpg || missing+=(gpg)
  servers_need curl || missing+=(curl)
  servers_need unzip || missing+=(unzip)
  # The action image's end-to-end test makes its Debian base with debootstrap, unless it is
  # given a built image.
  [ -n "${CDC_TEST_ACTION_IMAGE:-}" ] || servers_need debootstrap || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    printf '\n== installing %s from Debian'"'"'s packages\n' "${missing[*]}"
    local as_root=()
    if [ "$(id -u)" != 0 ]; then
      sudo -n true 2>/dev/null || servers_die "${missing[*]} must be installed, which needs root: install them, or allow sudo without a password"
      as_root=(sudo -n)
    fi
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
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
  for p in "${server_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # A Debian root an interrupted debootstrap left is root's.
  if [ -d "$servers_state/runtime-root" ] && [ "$(id -u)" != 0 ]; then
    sudo -n rm -rf "$servers_state/runtime-root" 2>/dev/null || true
  fi
  rm -rf "$servers_state" || true
  # Images the tests pushed to this run's registry are left in the engine; remove them.
  if [ -n "${CDC_TEST_REGISTRY:-}" ]; then
    docker images --format '{{.Repository}}:{{.Tag}}' \
      | grep -F "$CDC_TEST_REGISTRY/" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  fi
}

servers_wait_http() { # url name log pid
  for _ in $(seq 1 100); do
    # The server this run started must still be alive: the port may have been taken by another.
    kill -0 "$4" 2>/dev/null || break
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

# The base of the action image's end-to-end test: the Debian release the Dockerfile's runtime stage
# starts FROM, with the packages that stage installs, made by debootstrap (nothing can be pulled).
# The tag carries both, so a change to the Dockerfile makes a new base; about a minute, once.
servers_runtime_image() {
  local release packages tag root mirror
  # The end-to-end test runs a prebuilt action image instead (CI builds it from the Dockerfile).
  if [ -n "${CDC_TEST_ACTION_IMAGE:-}" ]; then
    docker image inspect "$CDC_TEST_ACTION_IMAGE" >/dev/null 2>&1 \
      || servers_die "CDC_TEST_ACTION_IMAGE names $CDC_TEST_ACTION_IMAGE, which the Docker engine does not have"
    return 0
  fi
  release="$(sed -n 's/^ARG DEBIAN_RELEASE=//p' "$root_dir/Dockerfile")"
  # The packages of the last `apt-get install` in the Dockerfile, its runtime stage's.
  packages="$(grep -o 'apt-get install [^&]*' "$root_dir/Dockerfile" | tail -n 1 \
    | tr ' ' '\n' | grep -v -e '^-' -e '^apt-get$' -e '^install$' -e '^$' -e '^\\$' | sort | paste -sd, -)"
  [ -n "$release" ] && [ -n "$packages" ] || servers_die "could not read the runtime stage's Debian release and packages from the Dockerfile"
  tag="cdc-test/debian-runtime:$release-$(printf '%s' "$packages" | sha256sum | cut -c1-12)"
  export CDC_TEST_RUNTIME_BASE="$tag"
  if docker image inspect "$tag" >/dev/null 2>&1; then return 0; fi
  printf '\n== making %s: debootstrap %s with %s\n' "$tag" "$release" "$packages"
  # This machine's Debian mirror when it is a Debian machine (CDC_TEST_DEBIAN_MIRROR to choose),
  # else Debian's own; checked against Debian's archive key where a non-Debian system keeps it.
  mirror="${CDC_TEST_DEBIAN_MIRROR:-}"
  if [ -z "$mirror" ] && grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)"
  fi
  local keyring=() as_root=()
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] && keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  # debootstrap, and reading and removing the root file system it makes, need root.
  if [ "$(id -u)" != 0 ]; then
    sudo -n true 2>/dev/null || servers_die "making $tag needs root (debootstrap): run as root, allow sudo without a password, or set CDC_TEST_ACTION_IMAGE to a built action image"
    as_root=(sudo -n)
  fi
  root="$servers_state/runtime-root"
  "${as_root[@]}" debootstrap "${keyring[@]}" --variant=minbase --include="$packages" "$release" "$root" "${mirror:-http://deb.debian.org/debian}" \
    >"$servers_state/debootstrap.log" 2>&1 \
    || { tail -n 20 "$servers_state/debootstrap.log" >&2; "${as_root[@]}" rm -rf "$root"; servers_die "debootstrap of $release failed"; }
  "${as_root[@]}" sh -c 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' - "$root"
  "${as_root[@]}" tar -C "$root" -c . | docker import - "$tag" >/dev/null
  "${as_root[@]}" rm -rf "$root"
}

servers_moto() { # name [VAR=value...]
  local name="$1" port
  shift
  port=$(servers_free_port)
  env "$@" moto_server -H 127.0.0.1 -p "$port" >"$servers_state/$name.log" 2>&1 &
  server_pids+=($!)
  servers_wait_http "http://127.0.0.1:$port/moto-api/" "$name" "$servers_state/$name.log" "$!"
  servers_url="http://127.0.0.1:$port"
}

servers_registry() { # name password
  local name="$1" password="$2" port dir
  port=$(servers_free_port)
  dir="$servers_state/$name"
  mkdir -p "$dir/data"
  htpasswd -Bbn AWS "$password" >"$dir/htpasswd"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
auth:
  htpasswd:
    realm: cdc-deploy-tests
    path: $dir/htpasswd
YAML
  docker-registry serve "$dir/config.yml" >"$servers_state/$name.log" 2>&1 &
  server_pids+=($!)
  servers_wait_http "http://127.0.0.1:$port/v2/" "$name" "$servers_state/$name.log" "$!"
  servers_url="127.0.0.1:$port"
}

servers_start() {
  trap servers_stop EXIT

  printf '\n== starting moto_server, and one that checks credentials\n'
  servers_moto moto
  export CDC_TEST_MOTO_URL="$servers_url"
  servers_moto moto-auth INITIAL_NO_AUTH_ACTION_COUNT=0
  export CDC_TEST_MOTO_AUTH_URL="$servers_url"

  printf '\n== starting docker-registry (htpasswd: user AWS, password = moto'"'"'s ECR token), and one with another password\n'
  servers_registry registry 123456789012-auth-token
  export CDC_TEST_REGISTRY="$servers_url"
  servers_registry registry-other not-the-ecr-token
  export CDC_TEST_REGISTRY_OTHER_PASSWORD="$servers_url"

  servers_base_image
  servers_runtime_image
}

# S3 in moto, as the test credentials: the AWS CLI where it is installed, else boto3, which moto
# depends on.
servers_s3() { # create-bucket BUCKET | get-object BUCKET KEY (the object to stdout)
  if servers_need aws; then
    case "$1" in
      create-bucket) set -- s3api create-bucket --bucket "$2" ;;
      get-object) set -- s3 cp "s3://$2/$3" - ;;
    esac
    env -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_DEFAULT_PROFILE AWS_ACCESS_KEY_ID=test \
      AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
      aws --endpoint-url "$CDC_TEST_MOTO_URL" "$@"
  else
    python3 - "$CDC_TEST_MOTO_URL" "$@" <<'PY'
import sys
try:
    import boto3
    import botocore.exceptions
except ImportError:
    sys.exit("error: neither the AWS CLI nor boto3 is installed: install one (pip install awscli)")
url, op, *args = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
try:
    if op == "create-bucket":
        s3.create_bucket(Bucket=args[0])
    else:
        sys.stdout.buffer.write(s3.get_object(Bucket=args[0], Key=args[1])["Body"].read())
except botocore.exceptions.ClientError as e:
    sys.exit(f"error: {e}")
PY
  fi
}

# A workspace to try `plan` and `deploy` by hand, and scripts/check-recipe.sh to run the recipe:
# one consumer FROM the base image made here, since the examples in consumer_scripts/ build FROM
# Docker Hub images that cannot be pulled without internet; the tests' Terraform root of
# `terraform_data`, since no provider can be downloaded; a bucket in moto for its state.
servers_demo() {
  demo_dir="$servers_state/demo"
  demo_bucket="demo-tfstate"
  demo_key="demo/terraform.tfstate"
  local app="$demo_dir/consumer_scripts/hello"
  mkdir -p "$app" "$demo_dir/infra"
  cat >"$app/Dockerfile" <<DOCKERFILE
FROM $CDC_TEST_BASE_IMAGE
COPY hello.sh /app/hello.sh
USER 10001
CMD ["/bin/sh", "/app/hello.sh"]
DOCKERFILE
  cat >"$app/hello.sh" <<'SH'
#!/bin/sh
# The demo consumer: greets once a minute until ECS stops it (SIGTERM ends the wait at once).
trap 'exit 0' TERM
while :; do
  echo "${GREETING:-hello}"
  sleep 60 &
  wait $!
done
SH
  cat >"$app/consumer.toml" <<'TOML'
# Every key is optional; see the README's `consumer.toml` section.
cpu = 256
memory = 512
desired_count = 1

[environment]
GREETING = "hello from the cdc-deploy demo"
TOML
  # A settings change is then a new task definition, not a new image.
  printf 'consumer.toml\n' >"$app/.dockerignore"
  cp "$root_dir/tests/fixtures/terraform/root/main.tf" "$demo_dir/infra/main.tf"
  servers_s3 create-bucket "$demo_bucket" >/dev/null \
    || servers_die "could not create the bucket $demo_bucket in moto at $CDC_TEST_MOTO_URL"
}

# The commands to try `plan` and `deploy` against the servers and the demo workspace, from the
# repository's root: a script as printed, which scripts/check-recipe.sh runs to keep it working.
servers_recipe() {
  local workspace common backend
  workspace="$(printf '%q' "$demo_dir")"
  common="--workspace $workspace \\
  --registry-host http://$CDC_TEST_REGISTRY --project-name demo"
  backend="--terraform-dir infra \\
  --terraform-backend-config bucket=$demo_bucket \\
  --terraform-backend-config key=$demo_key \\
  --terraform-backend-config region=us-east-1 \\
  --terraform-backend-config use_path_style=true \\
  --terraform-backend-config use_lockfile=true"
  cat <<TEXT
# moto plays ECR and S3 (the Terraform state, in the bucket $demo_bucket), the registry takes the
# pushes. The demo workspace holds one consumer, hello, FROM $CDC_TEST_BASE_IMAGE (the examples in
# consumer_scripts/ build FROM Docker Hub images, which cannot be pulled without internet), and in
# infra/ a root module of terraform_data, which needs no provider download.
export AWS_ENDPOINT_URL=$CDC_TEST_MOTO_URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
# The first cargo run builds the dev profile: several minutes on a cold machine.
cargo run -- plan $common \\
  $backend
# --wait=false: no ECS answers here (the demo root makes no ECS service, and moto's deployments
# never progress), so there is no rollout to watch.
cargo run -- deploy $common \\
  $backend \\
  --wait=false
# Or without Terraform (--terraform=false): build and push the images only, no state.
cargo run -- deploy $common \\
  --terraform=false
# To see a change planned and deployed, edit $workspace/consumer_scripts/hello/hello.sh.
TEXT
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  servers_install
  servers_start
  servers_demo
  cat <<TEXT

The servers are up; Ctrl-C stops them. To run the tests against them:

  export CDC_TEST_MOTO_URL=$CDC_TEST_MOTO_URL CDC_TEST_MOTO_AUTH_URL=$CDC_TEST_MOTO_AUTH_URL
  export CDC_TEST_REGISTRY=$CDC_TEST_REGISTRY CDC_TEST_REGISTRY_OTHER_PASSWORD=$CDC_TEST_REGISTRY_OTHER_PASSWORD
  export CDC_TEST_BASE_IMAGE=$CDC_TEST_BASE_IMAGE CDC_TEST_RUNTIME_BASE=${CDC_TEST_RUNTIME_BASE:-}
  export CDC_TEST_ACTION_IMAGE=${CDC_TEST_ACTION_IMAGE:-}
  cargo test

To try cdc-deploy itself against them, run this from the repository's root (the demo workspace
is in this run's folder; scripts/check-recipe.sh runs these very lines):

$(servers_recipe)

TEXT
  wait
fi
