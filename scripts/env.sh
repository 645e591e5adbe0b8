#!/usr/bin/env bash
# The embedded test environment: a throwaway PostgreSQL 15 cluster, an s3s-fs server and a
# single-node Garage, all on 127.0.0.1 with free ports, state under one temporary directory.
#
#   scripts/env.sh start    start everything, write .pgsafe-env/env.sh (variables for tests/demo)
#   scripts/env.sh stop     stop everything and delete its data
#   scripts/env.sh status
#
# PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user.
# Set PGSAFE_SKIP_GARAGE=1 to start without Garage.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.pgsafe-env"
PGBIN="${PGSAFE_PG_BIN:-/usr/lib/postgresql/15/bin}"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '==> %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  log "$what did not start listening on port $port"; return 1
}

start_postgres() {
  local dir=$1 port password
  port=$(free_port)
  password="pg-$(random_hex 12)"
  mkdir -p "$dir/pg"
  printf '%s\n' "$password" > "$dir/pg/pwfile"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$dir/pg"; fi
  chmod 700 "$dir/pg"
  as_pg_owner "$PGBIN/initdb" -D "$dir/pg/data" -U postgres --pwfile="$dir/pg/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/pg/initdb.log"
  rm -f "$dir/pg/pwfile"
  # TLS: a test CA and a server certificate for the name db.pgsafe.test only, so verify-ca
  # passes against 127.0.0.1 while verify-full fails on the name.
  local tls="$dir/pg/tls"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pgsafe test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=db.pgsafe.test" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:db.pgsafe.test\n' >"$tls/ext.cnf"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$tls/ext.cnf" -out "$tls/server.crt" 2>/dev/null
  chmod 600 "$tls/server.key"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$tls"; fi
  # The role tlsonly may only connect over TLS.
  local hba="$dir/pg/data/pg_hba.conf"
  { printf 'hostnossl all tlsonly 127.0.0.1/32 reject\nhostssl all tlsonly 127.0.0.1/32 scram-sha-256\n'; cat "$hba"; } >"$hba.new"
  mv "$hba.new" "$hba"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$hba"; fi
  cat >>"$dir/pg/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/pg'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
ssl = on
ssl_cert_file = '$dir/pg/tls/server.crt'
ssl_key_file = '$dir/pg/tls/server.key'
CONF
  as_pg_owner "$PGBIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w start >/dev/null
  PGPASSWORD="$password" "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE tlsonly LOGIN SUPERUSER PASSWORD '$password'"
  echo "export PGSAFE_TEST_PG_CA='$dir/pg/tls/ca.crt'" >>"$STATE/env.sh"
  echo "export PGSAFE_TEST_PG_URL='postgresql://postgres:$password@127.0.0.1:$port/postgres'" >>"$STATE/env.sh"
  echo "export PGSAFE_TEST_PG_PORT=$port" >>"$STATE/env.sh"
  echo "export PGSAFE_TEST_PG_PASSWORD='$password'" >>"$STATE/env.sh"
  echo "export PGSAFE_TEST_PG_BIN='$PGBIN'" >>"$STATE/env.sh"
  log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

start_s3s() {
  local dir=$1 port key secret
  port=$(free_port)
  key="s3s$(random_hex 6)"
  secret="$(random_hex 16)"
  mkdir -p "$dir/s3s/pgsafe-test"
  nohup s3s-fs --host 127.0.0.1 --port "$port" --access-key "$key" --secret-key "$secret" \
    "$dir/s3s" >"$dir/s3s.log" 2>&1 &
  echo $! >"$dir/s3s.pid"
  wait_port "$port" s3s-fs
  {
    echo "export PGSAFE_TEST_S3S_ENDPOINT='http://127.0.0.1:$port'"
    echo "export PGSAFE_TEST_S3S_ACCESS_KEY='$key'"
    echo "export PGSAFE_TEST_S3S_SECRET_KEY='$secret'"
    echo "export PGSAFE_TEST_S3S_BUCKET='pgsafe-test'"
    echo "export PGSAFE_TEST_S3S_ROOT='$dir/s3s'"
  } >>"$STATE/env.sh"
  log "s3s-fs on 127.0.0.1:$port (bucket pgsafe-test)"
}

start_garage() {
  local dir=$1 s3port rpcport adminport key secret
  s3port=$(free_port); rpcport=$(free_port); adminport=$(free_port)
  mkdir -p "$dir/garage/meta" "$dir/garage/data"
  cat >"$dir/garage/garage.toml" <<CONF
metadata_dir = "$dir/garage/meta"
data_dir = "$dir/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpcport"
rpc_public_addr = "127.0.0.1:$rpcport"
rpc_secret = "$(random_hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$adminport"
CONF
  # Garage key IDs are GK + 24 hex digits, secrets 64 hex digits.
  key="GK$(random_hex 12)"
  secret="$(random_hex 32)"
  GARAGE_DEFAULT_ACCESS_KEY="$key" GARAGE_DEFAULT_SECRET_KEY="$secret" \
    GARAGE_DEFAULT_BUCKET=pgsafe-test RUST_LOG=warn \
    nohup garage -c "$dir/garage/garage.toml" server --single-node --default-bucket \
    >"$dir/garage.log" 2>&1 &
  echo $! >"$dir/garage.pid"
  wait_port "$s3port" garage
  # The bucket exists once the S3 API answers for it (HTTP 403 without a signature, not 404).
  for _ in $(seq 1 100); do
    code=$(python3 -c "import urllib.request,urllib.error
try: print(urllib.request.urlopen('http://127.0.0.1:$s3port/pgsafe-test', timeout=1).status)
except urllib.error.HTTPError as e: print(e.code)
except Exception: print(0)")
    [ "$code" = 403 ] && break
    sleep 0.2
  done
  {
    echo "export PGSAFE_TEST_GARAGE_ENDPOINT='http://127.0.0.1:$s3port'"
    echo "export PGSAFE_TEST_GARAGE_ACCESS_KEY='$key'"
    echo "export PGSAFE_TEST_GARAGE_SECRET_KEY='$secret'"
    echo "export PGSAFE_TEST_GARAGE_BUCKET='pgsafe-test'"
    echo "export PGSAFE_TEST_GARAGE_REGION='garage'"
  } >>"$STATE/env.sh"
  log "Garage on 127.0.0.1:$s3port (bucket pgsafe-test, region garage)"
}

stop_all() {
  [ -f "$STATE/dir" ] || return 0
  local dir
  dir=$(cat "$STATE/dir")
  for name in s3s garage; do
    if [ -f "$dir/$name.pid" ]; then kill "$(cat "$dir/$name.pid")" 2>/dev/null || true; fi
  done
  if [ -f "$dir/pg/data/postmaster.pid" ]; then
    as_pg_owner "$PGBIN/pg_ctl" -D "$dir/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir" "$STATE"
  log "environment stopped"
}

case "${1:-}" in
  start)
    stop_all
    mkdir -p "$STATE"
    dir=$(mktemp -d /tmp/pgsafe-env.XXXXXX)
    chmod 755 "$dir"
    echo "$dir" >"$STATE/dir"
    {
      echo "# written by scripts/env.sh start; source it to reach the test environment"
      echo "export PGSAFE_TEST_ENV_DIR='$dir'"
      # Never let the AWS SDK look for instance credentials on the network.
      echo "export AWS_EC2_METADATA_DISABLED=true"
    } >"$STATE/env.sh"
    start_postgres "$dir"
    start_s3s "$dir"
    if [ "${PGSAFE_SKIP_GARAGE:-}" != 1 ]; then start_garage "$dir"; fi
    log "variables in $STATE/env.sh"
    ;;
  stop) stop_all ;;
  status)
    if [ -f "$STATE/env.sh" ]; then cat "$STATE/env.sh"; else echo "not running"; fi
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
