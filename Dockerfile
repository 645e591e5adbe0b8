# Images for docker-compose.yml (and for your own deployment: target `pgsafe`).
#   docker build --target pgsafe -t pgsafe .
# Docker is not available on the development machines; what these images run is tested there
# without Docker (see docs/unattended.md, "docker compose").

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# s3s-fs 0.14.1: the S3-compatible server of the test environment (later versions need a newer rustc).
FROM rust:1.95-bookworm AS s3s-build
RUN cargo install s3s-fs --version 0.14.1 --features binary --locked

FROM debian:bookworm-slim AS s3s-fs
COPY --from=s3s-build /usr/local/cargo/bin/s3s-fs /usr/local/bin/s3s-fs
RUN mkdir -p /data && chown nobody: /data
USER nobody
ENTRYPOINT ["s3s-fs"]

# pgsafe with the PostgreSQL 15 client tools (pg_dump, pg_dumpall, pg_restore, psql) it drives.
# For servers newer than 15, install their postgresql-client-NN too: pgsafe picks a pg_dump at
# least as new as the server.
FROM debian:bookworm-slim AS pgsafe
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/pgsafe/metrics /etc/pgsafe \
 && chown -R nobody: /var/lib/pgsafe
COPY --from=build /src/target/release/pgsafe /usr/local/bin/pgsafe
USER nobody
ENV PGSAFE_NO_PROGRESS=1 XDG_STATE_HOME=/var/lib/pgsafe/state
ENTRYPOINT ["pgsafe"]
CMD ["schedule"]
