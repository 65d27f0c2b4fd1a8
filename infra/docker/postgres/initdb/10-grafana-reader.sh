#!/bin/sh
# Runs once, when the postgres-data volume is empty (docker-entrypoint-initdb.d), as POSTGRES_USER.
# Creates the read-only role Grafana's "Nova Postgres" datasource uses for the Usage dashboard's
# per-user and per-key panels. Tables are created later by `nova migrate` (as POSTGRES_USER), so the
# grant is a default privilege on everything that role creates in the public schema.
set -eu
: "${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD is required}"
reader="${GRAFANA_DB_USER:-grafana_reader}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=pw="$GRAFANA_DB_PASSWORD" --set=reader="$reader" --set=owner="$POSTGRES_USER" \
  --set=db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"reader" WITH LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE :"db" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
