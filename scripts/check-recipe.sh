#!/usr/bin/env bash
# Runs the commands scripts/servers.sh prints to try `plan` and `deploy` by hand, exactly as
# printed, against servers of its own, and checks what they did: every command exits 0, the
# registry holds the demo consumer's image under its content tag and moto's S3 the Terraform state
# naming it. A recipe that fails here would fail whoever copies it.
# Usage: scripts/check-recipe.sh (scripts/test.sh runs it)
set -euo pipefail

# The recipe's `cargo run` builds here, like the rest of the suite.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdc-deploy/target}"

# shellcheck source=scripts/servers.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/servers.sh"

die() { printf 'error: check-recipe: %s\n' "$*" >&2; exit 1; }
# The log goes with the servers' folder when they stop: show its end before saying what failed.
die_log() { printf '\n--- the end of the recipe'"'"'s output\n' >&2; tail -n 40 "$log" >&2; die "$@"; }

servers_install
servers_start
servers_demo

recipe="$servers_state/recipe.sh"
log="$servers_state/recipe.log"
servers_recipe >"$recipe"
# What the check asserts on below must be in the recipe at all.
grep -q '^cargo run -- plan ' "$recipe" || die "the recipe has no \`cargo run -- plan\` line:"$'\n'"$(cat "$recipe")"
[ "$(grep -c '^cargo run -- deploy ' "$recipe")" = 2 ] \
  || die "the recipe should have two \`cargo run -- deploy\` lines (with Terraform, and --terraform=false):"$'\n'"$(cat "$recipe")"

# Run as from a developer's shell: without the variables of a GitHub runner (on CI, the deploy
# would otherwise write to the job's outputs and summary and read the job's event) or AWS settings
# of the caller's own (a profile, a session token, another endpoint) that the recipe does not set.
unset_vars=(-u CI)
while IFS= read -r name; do
  unset_vars+=(-u "$name")
done < <(compgen -e | grep -E '^(GITHUB_|RUNNER_|ACTIONS_|INPUT_|AWS_)' || true)
printf '\n== running the recipe scripts/servers.sh prints, as printed\n'
status=0
(cd "$root_dir" && env "${unset_vars[@]}" bash -euo pipefail -x "$recipe") >"$log" 2>&1 || status=$?
if [ "$status" != 0 ]; then
  # The trace (-x) names each command as it starts: the last one is the one that failed.
  failed="$(grep '^+ ' "$log" | tail -n 1 || true)"
  die_log "the recipe scripts/servers.sh prints failed (exit $status) at: ${failed#+ }"
fi
# Under -e each command ran and exited 0 if the recipe did; check that the trace saw all three.
grep -q '^+ cargo run -- plan ' "$log" || die_log "the recipe's plan did not run"
grep -Eq '^\+ cargo run -- deploy .*--wait=false' "$log" || die_log "the recipe's deploy with Terraform did not run"
grep -Eq '^\+ cargo run -- deploy .*--terraform=false' "$log" || die_log "the recipe's deploy with --terraform=false did not run"

tags="$(curl -fsS -u AWS:123456789012-auth-token "http://$CDC_TEST_REGISTRY/v2/demo-hello/tags/list" 2>&1)" \
  || die_log "the registry at $CDC_TEST_REGISTRY has no demo-hello repository after the recipe's deploy: $tags"
grep -Eq '"ctx-[0-9a-f]{64}"' <<<"$tags" || die_log "demo-hello in the registry has no ctx- tag after the recipe's deploy: $tags"

state="$(servers_s3 get-object "$demo_bucket" "$demo_key" 2>&1)" \
  || die_log "no Terraform state at s3://$demo_bucket/$demo_key in moto after the recipe's deploy: $state"
grep -q "$CDC_TEST_REGISTRY/demo-hello@sha256:" <<<"$state" \
  || die_log "the Terraform state at s3://$demo_bucket/$demo_key does not name the pushed demo-hello image by digest"

printf 'ok: the recipe planned, deployed with Terraform (state in s3://%s/%s) and without, and pushed demo-hello\n' \
  "$demo_bucket" "$demo_key"
