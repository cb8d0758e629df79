#!/usr/bin/env bash
# Lint the bundled Terraform module and its examples, offline:
#
#   1. terraform fmt -check -recursive terraform examples
#   2. checkov on terraform/ and on examples/ (which evaluates the module as each example calls
#      it); any failed check fails the script. A check that does not fit is skipped in place,
#      `#checkov:skip=CKV_...:<reason>` inside the resource, never here.
#
# Usage: scripts/lint-terraform.sh        (from anywhere; it works from the repository root)
#
# checkov (pinned below) is installed when missing into its own venv, apart from the other
# linters' because of its many dependencies:
#   ${CDC_TEST_STATE:-$HOME/.cache/cdc-deploy/test-env}/venv-checkov
# Delete that folder to reinstall it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

state="${CDC_TEST_STATE:-$HOME/.cache/cdc-deploy/test-env}"
venv="$state/venv-checkov"
checkov_version="3.3.30"
terraform="${TERRAFORM_PATH:-terraform}"

say() { printf '== %s\n' "$*"; }

# ---- terraform fmt ------------------------------------------------------------------------------

# fmt reads no CLI configuration; pointing it at an empty one spares the warning about a missing
# ~/.terraformrc or an unreadable TF_CLI_CONFIG_FILE.
say "terraform fmt -check -recursive terraform examples"
if ! TF_CLI_CONFIG_FILE=/dev/null "$terraform" fmt -check -recursive -diff terraform examples; then
  printf 'error: the files above are not formatted; run: terraform fmt -recursive terraform examples\n' >&2
  exit 1
fi

# ---- checkov --------------------------------------------------------------------------------------

checkov_ready() {
  [ -x "$venv/bin/checkov" ] && [ "$(cat "$venv/.checkov-version" 2>/dev/null)" = "$checkov_version" ]
}

mkdir -p "$state"
if ! checkov_ready; then
  # Another run (a parallel test) may be installing it: one at a time.
  exec 9>"$state/.venv-checkov.lock"
  flock 9
  if ! checkov_ready; then
    say "installing checkov $checkov_version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$checkov_version"
    printf '%s\n' "$checkov_version" >"$venv/.checkov-version"
  fi
  flock -u 9
fi

# Offline and strict: no Prisma Cloud download, no update check, and a file checkov cannot parse
# fails the run instead of being skipped quietly.
export CKV_PARSE_ERROR_FAIL=true CKV_SKIP_PACKAGE_UPDATE_CHECK=true

# One checkov run per folder (one run given both folders reports the examples wrongly), both at
# once; each prints its findings when it is done.
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
pids=()
for dir in terraform examples; do
  "$venv/bin/checkov" -d "$dir" --framework terraform --quiet --compact --skip-download \
    >"$out/$dir.log" 2>&1 &
  pids+=("$!")
done

status=0
i=0
for dir in terraform examples; do
  say "checkov -d $dir"
  if wait "${pids[$i]}"; then
    grep -E '^(Passed|Failed) checks' "$out/$dir.log" || true
  else
    cat "$out/$dir.log"
    status=1
  fi
  i=$((i + 1))
done

if [ "$status" -ne 0 ]; then
  printf 'error: checkov found problems; fix them, or skip a check that does not fit in place with\n  #checkov:skip=CKV_...:<why it does not apply>\n' >&2
fi
exit "$status"
