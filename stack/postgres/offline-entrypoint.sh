#!/bin/sh
# Entrypoint of the `postgres` service when it runs on the offline image (Debian's postgresql package instead of the
# official postgres image, whose docker-entrypoint.sh this mimics in the parts the stack uses):
#   - PGDATA (default /var/lib/postgresql/data, the named volume) is initialised once with initdb, as user postgres,
#     superuser POSTGRES_USER with password POSTGRES_PASSWORD, database POSTGRES_DB;
#   - local (unix socket) connections are trusted, TCP connections need the password (scram-sha-256), like the
#     official image;
#   - then postgres replaces this script (setpriv execs, no intermediate process), so the stop signal (SIGINT, the
#     compose file's stop_signal, = fast shutdown) reaches it directly.
# Runs as root (it must chown a freshly created volume); postgres itself runs as user postgres.
set -eu

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the compose file sets it)}"
socket_dir=/var/run/postgresql

# Debian installs each major version under /usr/lib/postgresql/<major>/bin; take the newest one present.
bindir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ ! -x "$bindir/postgres" ]; then
  echo "offline-entrypoint: no PostgreSQL server under /usr/lib/postgresql" >&2
  exit 1
fi

mkdir -p "$PGDATA" "$socket_dir"
chown postgres:postgres "$PGDATA" "$socket_dir"
chmod 0700 "$PGDATA"
chmod 2775 "$socket_dir"

as_postgres() { runuser -u postgres -- "$@"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "offline-entrypoint: initialising $PGDATA (superuser $POSTGRES_USER, database $POSTGRES_DB)"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres "$bindir/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != "postgres" ]; then
    # A private, socket-only server just for creating the database, as the official entrypoint does.
    as_postgres "$bindir/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -k $socket_dir" -w start >/dev/null
    as_postgres "$bindir/psql" -h "$socket_dir" -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 -q \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
    as_postgres "$bindir/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  fi
fi

# The official image is started as `docker-entrypoint.sh postgres`: accept (and drop) that first argument.
if [ "${1:-}" = postgres ]; then shift; fi
exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
  "$bindir/postgres" -D "$PGDATA" -c listen_addresses='*' -k "$socket_dir" "$@"
