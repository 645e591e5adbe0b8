#!/usr/bin/env bash
# Installs what pgsafe's tests, demo and benchmark need, when it is missing:
# PostgreSQL 15 (Debian postgresql-15), s3s-fs 0.14.1 and Garage 2.5.0 (crates, built from source).
# Idempotent: a second run installs nothing.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
export PATH="$HOME/.cargo/bin:$PATH"

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to install Debian packages: $*"; return 1
  fi
  if [ -z "${PGSAFE_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    export PGSAFE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ! -x /usr/lib/postgresql/15/bin/pg_dump ] || [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  log "installing postgresql-15"
  apt_install postgresql-15 postgresql-client-15
fi
# The package starts a cluster of its own on 5432; pgsafe's tests use throwaway clusters instead.

# python3: free ports and the benchmark; zstd: by hand checks; openssl: the test CA of env.sh;
# GNU time: the benchmark's CPU and RSS figures.
for tool in python3 zstd openssl /usr/bin/time; do
  if ! command -v "$tool" >/dev/null; then
    log "installing $tool"
    case "$tool" in
      /usr/bin/time) apt_install time ;;
      *) apt_install "$tool" ;;
    esac
  fi
done

# The benchmark's peers (scripts/bench.sh; its smoke run is part of scripts/test.sh).
if [ ! -x /usr/bin/aws ]; then
  log "installing awscli (Debian)"
  apt_install awscli
fi
if ! command -v restic >/dev/null; then
  log "installing restic"
  apt_install restic
fi

if ! command -v s3s-fs >/dev/null; then
  log "building s3s-fs 0.14.1 (about 2.5 minutes)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi

if [ "${PGSAFE_SKIP_GARAGE:-}" != 1 ] && ! command -v garage >/dev/null; then
  log "building Garage 2.5.0 (about 15 minutes)"
  cargo install garage --version 2.5.0 --locked
fi
