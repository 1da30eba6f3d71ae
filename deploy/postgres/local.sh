#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:${PGPORT:-5432} with a `unionhub` role,
# using Debian's postgresql cluster tools. Not a superuser: it may create databases (the tests
# make one each) and roles (the fault tests make one with a connection limit), and end its
# own and other non-superuser sessions (pg_signal_backend: the fault tests cut connections).
#   local.sh ensure    start the cluster if needed, create the role
#   local.sh url       print the admin URL the tests use
set -euo pipefail
port=${PGPORT:-5432}
user=${UNIONHUB_PG_USER:-unionhub}
password=${UNIONHUB_PG_PASSWORD:-unionhub}

answers() { pg_isready -q -h 127.0.0.1 -p "$port"; }

ensure() {
  if ! answers; then
    command -v pg_lsclusters >/dev/null || { echo "postgres: Debian's postgresql is not installed (apt-get install postgresql)" >&2; exit 1; }
    version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
      pg_createcluster "$version" main -p "$port" >/dev/null
    fi
    pg_ctlcluster "$version" main start
    for _ in $(seq 1 60); do answers && break; sleep 0.5; done
    answers || { echo "postgres: the cluster did not start" >&2; exit 1; }
  fi
  local super
  super=$(PGPASSWORD=$password psql -qAt -h 127.0.0.1 -p "$port" -U "$user" -d postgres \
    -c 'select rolsuper from pg_roles where rolname = current_user' 2>/dev/null || echo missing)
  if [ "$super" != f ]; then  # missing, or a superuser made by an earlier version of this script
    # Peer authentication over the local socket needs no password for the postgres user.
    runuser -u postgres -- psql -q -p "$port" -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN CREATE ROLE $user LOGIN PASSWORD '$password'; END IF;
END \$\$;
ALTER ROLE $user NOSUPERUSER CREATEDB CREATEROLE;
GRANT pg_signal_backend TO $user;
SQL
    PGPASSWORD=$password psql -q -h 127.0.0.1 -p "$port" -U "$user" -d postgres -c 'select 1' >/dev/null
  fi
  echo "postgres: ready on 127.0.0.1:$port (role $user)" >&2
}

case "${1:-}" in
  ensure) ensure ;;
  url) echo "postgresql+asyncpg://$user:$password@127.0.0.1:$port/postgres" ;;
  *) echo "usage: $0 ensure|url" >&2; exit 2 ;;
esac
