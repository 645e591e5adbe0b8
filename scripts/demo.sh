#!/usr/bin/env bash
# The main job on the embedded defaults: starts a local PostgreSQL 15 and an S3 server (s3s-fs)
# on 127.0.0.1, loads the ticket fixture into `gestor_tickets`, backs it up to S3 with the tag
# v1.0.0, and lists the repository. The servers keep running; `scripts/env.sh stop` stops them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

PGSAFE_SKIP_GARAGE=1 scripts/install-deps.sh
cargo build --release --locked
PGSAFE_SKIP_GARAGE=1 scripts/env.sh start
# shellcheck disable=SC1091
source .pgsafe-env/env.sh

echo "==> loading fixtures/tickets.sql into gestor_tickets"
PGPASSWORD="$PGSAFE_TEST_PG_PASSWORD" "$PGSAFE_TEST_PG_BIN/psql" -X -q -h 127.0.0.1 \
  -p "$PGSAFE_TEST_PG_PORT" -U postgres -d postgres -c 'CREATE DATABASE gestor_tickets'
PGPASSWORD="$PGSAFE_TEST_PG_PASSWORD" "$PGSAFE_TEST_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
  -h 127.0.0.1 -p "$PGSAFE_TEST_PG_PORT" -U postgres -d gestor_tickets -f fixtures/tickets.sql

# What a user sets: the database (URL in the environment, not on the command line), the
# repository, and the S3 endpoint and credentials the AWS tools read.
export DATABASE_URL="${PGSAFE_TEST_PG_URL%/postgres}/gestor_tickets"
export PGSAFE_REPO="s3://$PGSAFE_TEST_S3S_BUCKET/backups"
export AWS_ENDPOINT_URL="$PGSAFE_TEST_S3S_ENDPOINT"
export AWS_ACCESS_KEY_ID="$PGSAFE_TEST_S3S_ACCESS_KEY"
export AWS_SECRET_ACCESS_KEY="$PGSAFE_TEST_S3S_SECRET_KEY"

echo "==> pgsafe backup --tag v1.0.0"
target/release/pgsafe backup --tag v1.0.0
echo "==> pgsafe list"
target/release/pgsafe list
echo
echo "The servers are still running; stop them with: scripts/env.sh stop"
