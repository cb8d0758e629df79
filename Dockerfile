# The cdc-deploy action's image: the `cdc-deploy` binary (which embeds the bundled Terraform
# module), a pinned Terraform checked against HashiCorp's signed SHA256 sums, git and CA
# certificates.
#
# GitHub builds this file when a workflow uses the action from a branch or commit; release tags
# point `action.yml` at the prebuilt multi-arch image on GHCR instead (.github/workflows/release.yml).
#
#   docker build -t cdc-deploy-action .
#   docker run --rm cdc-deploy-action --version

ARG DEBIAN_RELEASE=bookworm

# --- build: a release binary without debug information or symbols (profile `dist`) ----------------
FROM rust:1.95-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The dependencies first, in a layer of their own, over placeholder sources: a change to the
# sources alone does not compile them again. (The benches only need to exist for the manifest.)
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --locked --profile dist --bin cdc-deploy \
    && rm -rf src
COPY src src
COPY terraform terraform
# The sources are older than the placeholders' build: touched, so cargo builds them.
RUN touch src/main.rs src/lib.rs \
    && cargo build --locked --profile dist --bin cdc-deploy \
    && install -D -m 0755 target/dist/cdc-deploy /out/cdc-deploy

# --- terraform: HashiCorp's release, installed only if it checks out --------------------------------
# docker/install-terraform.sh checks HashiCorp's signing key by its fingerprint, the signature on
# the release's SHA256SUMS, and that the archive's SHA256 is both the signed one and the one
# pinned here (scripts/check-install-terraform.sh tests it). A new version updates all three
# lines, with the sums from terraform_<version>_SHA256SUMS.
FROM debian:${DEBIAN_RELEASE}-slim AS terraform
ARG TERRAFORM_VERSION=1.11.4
ARG TERRAFORM_SHA256_AMD64=1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc
ARG TERRAFORM_SHA256_ARM64=a43d1d0da9b9bab214a8305a39db0e40869572594ccf50c416a7756499143633
# Set by BuildKit for each platform of a multi-arch build; the classic builder leaves it empty,
# and the build's own Debian architecture is the target then.
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The tools only fetch, check and unpack; the stage is thrown away, so their versions do not matter.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg unzip \
    && rm -rf /var/lib/apt/lists/*
COPY docker/install-terraform.sh /usr/local/sbin/install-terraform
RUN arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
      amd64) sum="$TERRAFORM_SHA256_AMD64" ;; \
      arm64) sum="$TERRAFORM_SHA256_ARM64" ;; \
      *) echo "no pinned Terraform checksum for architecture $arch" >&2; exit 1 ;; \
    esac; \
    sh /usr/local/sbin/install-terraform "$TERRAFORM_VERSION" "$arch" "$sum" /usr/local/bin

# --- runtime ---------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/org/cdc-deploy-action
LABEL org.opencontainers.image.title="cdc-deploy-action" \
      org.opencontainers.image.description="Deploys a fleet of Change Data Capture consumers to AWS ECS Fargate" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# git for the commit of the checkout and Terraform's git module sources; CA certificates for AWS,
# GitHub and the Terraform registry. Debian's stable security updates are wanted, not a pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/*
COPY docker/gitconfig /etc/gitconfig
COPY --from=terraform /usr/local/bin/terraform /usr/local/bin/terraform
COPY --from=build /out/cdc-deploy /usr/local/bin/cdc-deploy
# Terraform runs unattended: no prompts, no version check against checkpoint.hashicorp.com.
ENV TF_IN_AUTOMATION=1 \
    TF_INPUT=0 \
    CHECKPOINT_DISABLE=1
# The runner mounts the checkout here and passes the inputs as INPUT_* variables; with no
# arguments the binary runs `cdc-deploy run` from them.
WORKDIR /github/workspace
ENTRYPOINT ["/usr/local/bin/cdc-deploy"]
