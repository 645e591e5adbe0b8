#!/usr/bin/env bash
# The test command: installs what is missing, starts the embedded environment (PostgreSQL 15,
# s3s-fs, Garage on 127.0.0.1), then runs the format check, clippy with -D warnings, and every
# test (unit, property, CLI and end-to-end). The environment is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

trap 'scripts/env.sh stop' EXIT
scripts/env.sh start
# shellcheck disable=SC1091
source .pgsafe-env/env.sh

echo "==> benchmark smoke run (tiny databases, not timed: it only proves the benchmark still runs)"
scripts/bench.sh --smoke

echo "==> cargo test"
cargo test --locked --all-targets -- --test-threads="${PGSAFE_TEST_THREADS:-4}"
