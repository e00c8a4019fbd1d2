#!/usr/bin/env bash
# Starts PostgreSQL on 127.0.0.1:5432 with a test role and database, and
# prints AGENTHOST_TEST_POSTGRES. An already-set AGENTHOST_TEST_POSTGRES wins.
set -eu
# Only the export lines go to the real stdout (fd 3); everything the tools
# print (apt, pg_ctlcluster "Removed stale pid file", ...) goes to stderr.
# Anything that may leave a daemon behind runs with fd 3 closed: a daemon
# holding it would keep `make test`'s $(services.sh) waiting forever.
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
if [ -n "${AGENTHOST_TEST_POSTGRES:-}" ]; then
  echo "export AGENTHOST_TEST_POSTGRES='$AGENTHOST_TEST_POSTGRES'" >&3; exit 0
fi
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing postgresql" >&2
  apt_install postgresql
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$ver main"; then
  pg_createcluster "$ver" main >&2 3>&-
fi
pg_ctlcluster "$ver" main start >&2 2>/dev/null 3>&- </dev/null || true
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 && break; sleep 0.2
done
pg_isready -q -h 127.0.0.1 || { echo "postgres did not start" >&2; exit 1; }
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='agenthost'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE agenthost LOGIN SUPERUSER PASSWORD 'agenthost'\"" >&2
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='agenthost_test'\"" | grep -q 1 ||
  su postgres -c "createdb -O agenthost agenthost_test" >&2
echo "export AGENTHOST_TEST_POSTGRES='postgres://agenthost:agenthost@127.0.0.1:5432/agenthost_test?sslmode=disable'" >&3
