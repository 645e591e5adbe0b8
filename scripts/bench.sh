#!/usr/bin/env bash
# Backup benchmark (see docs/benchmarks.md): builds pgsafe in release mode, starts the embedded
# environment (PostgreSQL + s3s-fs), generates the database once, and compares pgsafe with
# pg_dump and shell pipelines.  Usage: scripts/bench.sh [--scale 750] [--runs 3] [--json FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PGSAFE_SKIP_GARAGE=1 scripts/install-deps.sh
cargo build --release --locked
if [ ! -f .pgsafe-env/env.sh ]; then
  PGSAFE_SKIP_GARAGE=1 scripts/env.sh start
fi
# shellcheck disable=SC1091
source .pgsafe-env/env.sh
exec python3 scripts/bench.py "$@"
