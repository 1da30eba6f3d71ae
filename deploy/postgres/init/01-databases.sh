#!/usr/bin/env bash
# One database and one owner per service: no service reads another's tables. The passwords
# come from the environment (compose requires them); none has a default.
set -euo pipefail
for service in membership evaluation feedback; do
  variable="$(echo "$service" | tr a-z A-Z)_DB_PASSWORD"
  password=${!variable:?"$variable is not set"}
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$service" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
done
