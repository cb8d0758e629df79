#!/bin/sh
# Installs Terraform from HashiCorp's releases, refusing anything that does not check out:
#   1. HashiCorp's signing key, which must have the pinned fingerprint;
#   2. the release's SHA256SUMS, which must carry a good signature by that key;
#   3. the archive's SHA256, which must be both the signed one and the one pinned here.
# A pinned SHA256 that HashiCorp did not sign fails the build, as does any download that differs.
#
# Usage: install-terraform.sh VERSION ARCH SHA256 DEST
#   ARCH is Terraform's (amd64, arm64); the binary goes to DEST/terraform.
# Where it downloads from (a test serves its own release with its own key):
#   TERRAFORM_RELEASES         https://releases.hashicorp.com/terraform
#   HASHICORP_KEY_URL          https://www.hashicorp.com/.well-known/pgp-key.txt
#   HASHICORP_KEY_FINGERPRINT  C874011F0AB405110D02105534365D9472D7468F (https://www.hashicorp.com/trust/security)
set -eu

if [ "$#" -ne 4 ]; then
  echo "usage: $0 VERSION ARCH SHA256 DEST" >&2
  exit 2
fi
version="$1" arch="$2" pinned="$3" dest="$4"
releases="${TERRAFORM_RELEASES:-https://releases.hashicorp.com/terraform}"
key_url="${HASHICORP_KEY_URL:-https://www.hashicorp.com/.well-known/pgp-key.txt}"
fingerprint="${HASHICORP_KEY_FINGERPRINT:-C874011F0AB405110D02105534365D9472D7468F}"

die() { echo "install-terraform: $*" >&2; exit 1; }
fetch() { curl -fsSL --retry 3 -o "$2" "$1" || die "could not download $1"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
GNUPGHOME="$work/gnupg"
export GNUPGHOME
mkdir -m 700 "$GNUPGHOME"

# 1. The key, by its fingerprint.
fetch "$key_url" "$work/key.asc"
got="$(gpg --batch --with-colons --import-options show-only --import "$work/key.asc" 2>/dev/null \
  | awk -F: '$1 == "fpr" { print $10; exit }')"
[ "$got" = "$fingerprint" ] || die "the signing key from $key_url has the fingerprint '$got', not $fingerprint"
gpg --batch --quiet --import "$work/key.asc" 2>/dev/null

# 2. The signed sums. The keyring holds that key alone; VALIDSIG names the signing key's primary.
sums="terraform_${version}_SHA256SUMS"
fetch "$releases/$version/$sums" "$work/$sums"
fetch "$releases/$version/$sums.sig" "$work/$sums.sig"
gpg --batch --status-fd 1 --verify "$work/$sums.sig" "$work/$sums" >"$work/status" 2>/dev/null \
  || die "$sums does not carry a good signature by $fingerprint"
awk -v fpr="$fingerprint" '$2 == "VALIDSIG" && $NF == fpr { found = 1 } END { exit !found }' "$work/status" \
  || die "$sums is not signed by $fingerprint"

# 3. The archive: HashiCorp's signed SHA256, the pinned one, and the bytes downloaded agree.
zip="terraform_${version}_linux_${arch}.zip"
signed="$(awk -v f="$zip" '$2 == f { print $1 }' "$work/$sums")"
[ -n "$signed" ] || die "$sums lists no $zip"
[ "$signed" = "$pinned" ] || die "the pinned SHA256 of $zip is $pinned, but HashiCorp signed $signed"
fetch "$releases/$version/$zip" "$work/$zip"
echo "$pinned  $work/$zip" | sha256sum --check --strict --quiet - \
  || die "$zip does not have the SHA256 HashiCorp signed"

mkdir -p "$dest"
unzip -q -o "$work/$zip" terraform -d "$dest"
"$dest/terraform" version
