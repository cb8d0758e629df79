#!/usr/bin/env bash
# The deploy a team writes without the action, as the `fleet_builds` benchmark measures it: every
# consumer, one after another, logs in to ECR, makes its repository if it is missing, builds its
# image and pushes it. Nothing is skipped when nothing changed.
# Usage: PROJECT=… REGISTRY=host:port COMMIT=… benches/shell_loop.sh consumer_scripts
set -euo pipefail

consumers_dir="$1"
DOCKER_CONFIG="$(mktemp -d)"
export DOCKER_CONFIG
trap 'rm -rf "$DOCKER_CONFIG"' EXIT

for dir in "$consumers_dir"/*/; do
  name="$(basename "$dir")"
  repo="$PROJECT-$name"
  aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY" >/dev/null 2>&1
  aws ecr describe-repositories --repository-names "$repo" >/dev/null 2>&1 \
    || aws ecr create-repository --repository-name "$repo" --image-tag-mutability IMMUTABLE \
         --image-scanning-configuration scanOnPush=true >/dev/null
  docker build --quiet --tag "$REGISTRY/$repo:$COMMIT" "$dir" >/dev/null
  docker push --quiet "$REGISTRY/$repo:$COMMIT" >/dev/null
done
