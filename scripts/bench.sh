#!/usr/bin/env bash
# The benchmark (see docs/benchmarks.md): builds pgsafe in release mode, starts the embedded
# environment (PostgreSQL + s3s-fs) unless it runs, generates the databases once, and compares
# pgsafe's backup and restore with pg_dump/pg_restore, awscli pipelines and restic.
# Usage: scripts/bench.sh [--scale 750] [--scaling-scale 2250] [--runs 3] [--tuned FLAGS]
#                         [--json FILE] [--smoke]
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
