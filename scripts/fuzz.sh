#!/usr/bin/env bash
# Fuzz the readers of untrusted input (fuzz/fuzz_targets: consumer.toml, .dockerignore,
# Dockerfiles, event payloads, the markdown escaper, text printed to the runner), each for a
# bounded time, under libFuzzer through cargo fuzz on the nightly toolchain (installed when
# missing). Each input may use at most 512 MiB and 10 s: more is a finding.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s, every target)
# New inputs go to a scratch folder; the committed seed corpus (fuzz/corpus) is only read. A
# crash, a hang or a target over the memory limit stops the script with the input's path.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(consumer_toml dockerignore dockerfile event markdown untrusted)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "== installing the nightly toolchain (cargo fuzz needs it)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Its own target folder, kept between runs: the nightly build of every dependency is slow once.
export CARGO_TARGET_DIR="${CDC_FUZZ_TARGET_DIR:-$HOME/.cache/cdc-deploy/fuzz-target}"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/cdc-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

echo "== building the fuzz targets"
cargo +nightly fuzz build --sanitizer none --debug-assertions --fuzz-dir fuzz

for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs} s"
    mkdir -p "$scratch/$t" "$scratch/artifacts/$t"
    if ! cargo +nightly fuzz run --sanitizer none --debug-assertions --fuzz-dir fuzz "$t" \
        "$scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=512 -timeout=10 \
        -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$scratch/artifacts/$t/" 2>"$scratch/$t.log"; then
        tail -n 40 "$scratch/$t.log"
        mkdir -p fuzz/artifacts/"$t"
        cp "$scratch/artifacts/$t/"* fuzz/artifacts/"$t"/ 2>/dev/null || true
        echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/ (reproduce: cargo +nightly fuzz run --fuzz-dir fuzz $t fuzz/artifacts/$t/<file>)" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$scratch/$t.log" | sed "s/^/$t: /"
done
echo "fuzz: every target ran ${secs} s without a finding"
