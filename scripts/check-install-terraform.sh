#!/usr/bin/env bash
# Self-test of docker/install-terraform.sh, which the Dockerfile runs to install Terraform: a
# release of a stand-in `terraform` served on loopback, signed with a key made here, installs;
# a pinned SHA256 the signed sums do not carry, sums signed by another key, a key with another
# fingerprint and an archive that differs from its signed SHA256 are each refused, with a
# message that says which. Needs gpg, python3 and curl; nothing is fetched from outside.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
install="$root/docker/install-terraform.sh"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

version=9.8.7
release="$work/www/$version"
mkdir -p "$release"

# Two signing keys: the release's, and another.
keygen() { # home uid
  mkdir -m 700 "$1"
  GNUPGHOME="$1" gpg --batch --quiet --passphrase '' --quick-gen-key "$2" ed25519 sign never 2>/dev/null
  GNUPGHOME="$1" gpg --batch --with-colons --list-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }'
}
fpr="$(keygen "$work/key" 'Release <release@example.com>')"
other_fpr="$(keygen "$work/other" 'Other <other@example.com>')"
GNUPGHOME="$work/key" gpg --batch --armor --export > "$work/www/key.asc"

# The release: a stand-in terraform, zipped, its sums, their detached signature.
zip="terraform_${version}_linux_amd64.zip"
python3 - "$release/$zip" "$version" <<'PY'
import sys, zipfile
info = zipfile.ZipInfo("terraform")
info.external_attr = 0o755 << 16
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr(info, "#!/bin/sh\necho 'Terraform v%s'\n" % sys.argv[2])
PY
sum="$(sha256sum "$release/$zip" | cut -d' ' -f1)"
sums="terraform_${version}_SHA256SUMS"
sign() { # home
  rm -f "$release/$sums.sig"
  GNUPGHOME="$1" gpg --batch --quiet --detach-sign --output "$release/$sums.sig" "$release/$sums"
}
printf '%s  %s\n%s  %s\n' "$(printf 'a%.0s' {1..64})" "terraform_${version}_linux_arm64.zip" "$sum" "$zip" > "$release/$sums"
sign "$work/key"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$port" > "$work/http.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do
  curl -fs "http://127.0.0.1:$port/key.asc" > /dev/null && break
  sleep 0.1
done

run() { # pinned-sum fingerprint -> output in $work/out, status returned
  TERRAFORM_RELEASES="http://127.0.0.1:$port" HASHICORP_KEY_URL="http://127.0.0.1:$port/key.asc" \
    HASHICORP_KEY_FINGERPRINT="$2" sh "$install" "$version" amd64 "$1" "$work/bin" > "$work/out" 2>&1
}
refused() { # what message -- args
  local what="$1" message="$2"
  shift 2
  if run "$@"; then cat "$work/out" >&2; fail "installed despite $what"; fi
  grep -qF "$message" "$work/out" || { cat "$work/out" >&2; fail "refused $what without saying: $message"; }
  printf 'refused: %s\n' "$what"
}

run "$sum" "$fpr" || { cat "$work/out" >&2; fail "a good release was not installed"; }
grep -qx "Terraform v$version" "$work/out" || { cat "$work/out" >&2; fail "the installed terraform did not run"; }
[ -x "$work/bin/terraform" ] || fail "no $work/bin/terraform"
echo "installed: a release signed by the pinned key, with the pinned SHA256"

refused "a pinned SHA256 HashiCorp did not sign" "but HashiCorp signed $sum" "$(printf 'b%.0s' {1..64})" "$fpr"
refused "a key with another fingerprint" "not $other_fpr" "$sum" "$other_fpr"
sign "$work/other"
refused "sums signed by another key" "does not carry a good signature" "$sum" "$fpr"
sign "$work/key"
printf 'tampered' >> "$release/$zip"
refused "an archive that is not the signed one" "does not have the SHA256 HashiCorp signed" "$sum" "$fpr"
