#!/usr/bin/env bash
# Offline schema check of the Terraform module and its examples against hashicorp/aws 6.25.0.
#
#   scripts/terraform-schema/run.sh                 check terraform examples/dev examples/prod
#                                                   (relative to the repo root; those without
#                                                   *.tf files yet are skipped)
#   scripts/terraform-schema/run.sh DIR [DIR ...]   check these module directories
#   scripts/terraform-schema/run.sh --self-test     run the checker's own tests (test_check.py)
#
# Sets up what it needs when missing, under ${CDC_TEST_STATE:-$HOME/.cache/cdc-deploy/test-env}:
#   venv-tfschema/                      a venv with requirements.txt (python-hcl2), from PyPI
#   terraform-schema/wheel/             the pinned cdktf-cdktf-provider-aws wheel, from PyPI
#   terraform-schema/aws-6.25.0.schema.json.gz   the compact schema extracted from it once
# See README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
state="${CDC_TEST_STATE:-$HOME/.cache/cdc-deploy/test-env}"
venv="$state/venv-tfschema"
mkdir -p "$state"

venv_ready() {
  [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$venv/.requirements.txt" \
    && "$venv/bin/python" -c 'import hcl2' 2>/dev/null
}

if ! venv_ready; then
  # Another run (a parallel test) may be creating it: one at a time.
  exec 9>"$state/.venv-tfschema.lock"
  flock 9
  if ! venv_ready; then
    printf '== setting up %s\n' "$venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/.requirements.txt"
  fi
  flock -u 9
fi

py="$venv/bin/python"

if [ "${1:-}" = "--self-test" ]; then
  shift
  cd "$here"
  exec "$py" test_check.py "$@"
fi

if [ $# -eq 0 ]; then
  dirs=()
  for d in terraform examples/dev examples/prod; do
    if compgen -G "$root/$d/*.tf" >/dev/null; then
      dirs+=("$d")
    else
      printf 'terraform-schema: %s has no *.tf files yet; skipped\n' "$d"
    fi
  done
  if [ ${#dirs[@]} -eq 0 ]; then
    printf 'terraform-schema: nothing to check\n'
    exit 0
  fi
  cd "$root"
  set -- "${dirs[@]}"
fi

exec "$py" "$here/check.py" "$@"
