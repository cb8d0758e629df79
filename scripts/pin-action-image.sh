#!/usr/bin/env bash
# Points action.yml at a prebuilt image instead of building the Dockerfile on every job: replaces
# the one `image: Dockerfile` line under `runs:` with `image: docker://IMAGE_REF`, and nothing else.
# The release workflow (.github/workflows/release.yml) runs it on the release commit only; main
# keeps `image: Dockerfile`, so a workflow using the action from a branch or commit builds it.
#
# Usage: scripts/pin-action-image.sh IMAGE_REF [ACTION_YML]
#
#   IMAGE_REF   registry/owner/name@sha256:<64 hex digits>, pinned by digest (a tag can be moved)
#   ACTION_YML  the file to rewrite in place; default: action.yml at the repository root
#
# Pinning a file already pinned to the same IMAGE_REF changes nothing and succeeds; a file pinned
# to another image, or without exactly one `image: Dockerfile` under `runs:`, is refused.
set -euo pipefail

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/pin-action-image.sh IMAGE_REF [ACTION_YML]"
ref="$1"
file="${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/action.yml}"

# A registry host (with a dot, or localhost, and an optional port), at least two lowercase path
# components (owner/name, as GHCR and ECR name images), and a digest: never a tag.
component='[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*'
host='([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+|localhost)(:[0-9]+)?'
if [[ "$ref" == docker://* ]]; then
  die "give the image reference without \`docker://\` (the script adds it): \`${ref#docker://}\`"
fi
if ! [[ "$ref" =~ ^${host}(/${component}){2,}@sha256:[0-9a-f]{64}$ ]]; then
  die "\`$ref\` is not an image pinned by digest: expected \`registry/owner/name@sha256:<64 hex digits>\` (lowercase, no tag), such as \`ghcr.io/org/cdc-deploy-action@sha256:…\`"
fi
[ -f "$file" ] || die "\`$file\` does not exist"

# Reads the file once and reports, separated by `|`: how many `image: Dockerfile` lines the top-level
# `runs:` block holds, their line numbers, and the `image: docker://…` values already there.
scan="$(awk '
  /^runs:[ \t]*(#.*)?$/ { in_runs = 1; next }
  in_runs && /^[^ \t#]/ { in_runs = 0 }
  in_runs && /^[ \t]+image:[ \t]*("Dockerfile"|'"'"'Dockerfile'"'"'|Dockerfile)[ \t]*(#.*)?$/ {
    n++; lines = lines (lines ? "," : "") NR
  }
  in_runs && /^[ \t]+image:[ \t]*["'"'"']?docker:\/\// {
    v = $0; sub(/^[ \t]+image:[ \t]*["'"'"']?docker:\/\//, "", v); sub(/["'"'"']?[ \t]*(#.*)?$/, "", v)
    pinned = pinned (pinned ? " " : "") v
  }
  END { printf "%d|%s|%s\n", n, lines, pinned }
' "$file")"
IFS="|" read -r count lines pinned <<< "$scan"

if [ "$count" -eq 0 ]; then
  if [ "$pinned" = "$ref" ]; then
    printf '%s already runs docker://%s; nothing to change\n' "$file" "$ref" >&2
    exit 0
  fi
  if [ -n "$pinned" ]; then
    die "\`$file\` already runs \`docker://$pinned\`, not \`image: Dockerfile\`: pin a fresh copy of action.yml, not a pinned one"
  fi
  die "\`$file\` has no \`image: Dockerfile\` line under \`runs:\` (block style, indented) to replace"
fi
[ -z "$pinned" ] || die "\`$file\` has both \`image: Dockerfile\` and \`image: docker://$pinned\` under \`runs:\`"
[ "$count" -eq 1 ] || die "\`$file\` has $count \`image: Dockerfile\` lines under \`runs:\` (lines $lines); expected exactly one"

# Rewrite through a temporary file in the same folder, then copy it over the original so the
# file keeps its mode; the indentation of the line is kept.
tmp="$(mktemp "$(dirname "$file")/.pin-action-image.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
awk -v target="$lines" -v ref="$ref" '
  NR == target { match($0, /^[ \t]+/); print substr($0, 1, RLENGTH) "image: docker://" ref; next }
  { print }
' "$file" > "$tmp"
cat "$tmp" > "$file"
printf '%s: line %s now runs docker://%s\n' "$file" "$lines" "$ref" >&2
