#!/usr/bin/env bash
# make demo: seed a synthetic OpenDental clinic into the local MariaDB and run
# the whole pipeline on it. The first run seeds, discovers and runs a full
# copy; every later run applies one clinic day (demo mutate) and runs an
# incremental pass; both end with verify and status. Nothing to configure:
# everything lives in .demo/.
#
#   DEMO_SCALE=0.01   share of a real clinic's row counts (1 ≈ 20 M rows, 4 GB)
#   DEMO_SEED=1       random seed of the data
#   DEMO_RESET=1      drop the demo databases and start over
#   DEMO_DB=opendental_demo  name of the source database (the replica and analytics
#                     databases are named after it: <name>_replica, <name>_analytics)
#   DEMO_LEGACY=0     seed without legacy values (by default 0.5% of a few columns hold zero
#                     dates 0000-00-00, partial dates 1987-00-00 and NUL bytes, as old clinic
#                     databases do; the load converts them and counts each one)
#
# Databases (local servers from scripts/services.sh, root/postgres, no password):
#   source      MariaDB    opendental_demo             (the "clinic", seeded)
#   replication MariaDB    opendental_demo_replica
#   analytics   PostgreSQL opendental_demo_analytics   (schemas raw, staging, intermediate, marts)
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

DEMO_DIR=${DEMO_DIR:-.demo}
SCALE=${DEMO_SCALE:-0.01}
SEED=${DEMO_SEED:-1}
LEGACY=()
[ "${DEMO_LEGACY:-1}" = 0 ] || LEGACY=(--legacy-values)
SRC_DB=${DEMO_DB:-opendental_demo}
REPL_DB=${SRC_DB}_replica
PG_DB=${SRC_DB}_analytics
TLS_CA=${PIPELINE_DEV_TLS_DIR:-/var/lib/pipeline-dev-tls}/ca.pem

log() { printf '\n== demo: %s\n' "$*" >&2; }
my() { mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot "$@"; }
pg() { PGOPTIONS='--client-min-messages=warning' psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres "$@"; }

# make demo already ran `make services`; run by hand, bring them up here.
if [ -z "${MAKELEVEL:-}" ] && [ -f scripts/services.sh ]; then
	bash scripts/services.sh
fi

if [ "${DEMO_RESET:-0}" = 1 ]; then
	log "DEMO_RESET=1: dropping the demo databases"
	my -e "DROP DATABASE IF EXISTS \`$SRC_DB\`; DROP DATABASE IF EXISTS \`$REPL_DB\`"
	pg -d postgres -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)"
	rm -rf "$DEMO_DIR"
fi

mkdir -p "$DEMO_DIR"
log "building the pipeline"
go build -o "$DEMO_DIR/pipeline" ./cmd/pipeline
P="$DEMO_DIR/pipeline"

# The pipeline reads its connections from the environment (production
# variable names) and its options from pipeline.yml in the config dir.
cat >"$DEMO_DIR/demo.env" <<ENV
# Written by scripts/demo.sh: the local demo servers. Source with: set -a; . $DEMO_DIR/demo.env; set +a
ETL_ENVIRONMENT=production
OPENDENTAL_SOURCE_HOST=127.0.0.1
OPENDENTAL_SOURCE_PORT=3306
OPENDENTAL_SOURCE_DB=$SRC_DB
OPENDENTAL_SOURCE_USER=root
OPENDENTAL_SOURCE_PASSWORD=
MYSQL_REPLICATION_HOST=127.0.0.1
MYSQL_REPLICATION_PORT=3306
MYSQL_REPLICATION_DB=$REPL_DB
MYSQL_REPLICATION_USER=root
MYSQL_REPLICATION_PASSWORD=
POSTGRES_ANALYTICS_HOST=127.0.0.1
POSTGRES_ANALYTICS_PORT=5432
POSTGRES_ANALYTICS_DB=$PG_DB
POSTGRES_ANALYTICS_SCHEMA=raw
POSTGRES_ANALYTICS_USER=postgres
POSTGRES_ANALYTICS_PASSWORD=
# TLS verified against the local dev CA of scripts/services.sh; a clinic points *_SSL_CA at its own CA.
OPENDENTAL_SOURCE_SSL_MODE=verify-full
OPENDENTAL_SOURCE_SSL_CA=$TLS_CA
MYSQL_REPLICATION_SSL_MODE=verify-full
MYSQL_REPLICATION_SSL_CA=$TLS_CA
POSTGRES_ANALYTICS_SSL_MODE=verify-full
POSTGRES_ANALYTICS_SSL_CA=$TLS_CA
ENV
if [ ! -f "$DEMO_DIR/pipeline.yml" ]; then
	cat >"$DEMO_DIR/pipeline.yml" <<'YML'
# Written by scripts/demo.sh for the local demo servers; edit freely.
connections:
  source:
    application_name: pipeline_demo
replication:
  workers: 2
  source_connections: 2
  rate_limit_ms: 0      # the demo source is local and idle
load:
  workers: 2
YML
fi
set -a
# shellcheck disable=SC1091
. "$DEMO_DIR/demo.env"
set +a

log "creating $REPL_DB and $PG_DB (schemas raw, staging, intermediate, marts)"
my -e "CREATE DATABASE IF NOT EXISTS \`$REPL_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
if [ -z "$(pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]; then
	pg -d postgres -c "CREATE DATABASE \"$PG_DB\" ENCODING 'UTF8' TEMPLATE template0"
fi
pg -d "$PG_DB" -c "CREATE SCHEMA IF NOT EXISTS raw; CREATE SCHEMA IF NOT EXISTS staging; CREATE SCHEMA IF NOT EXISTS intermediate; CREATE SCHEMA IF NOT EXISTS marts"

tables=$(my -N -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$SRC_DB'")
if [ "$tables" -lt 408 ] || [ ! -f "$DEMO_DIR/tables.yml" ]; then
	if [ "$tables" -lt 408 ]; then
		log "seeding $SRC_DB at scale $SCALE (seed $SEED)"
		"$P" demo seed --db "$SRC_DB" --scale "$SCALE" --seed "$SEED" "${LEGACY[@]}"
	fi
	log "discover: reading the source schema into $DEMO_DIR/tables.yml"
	"$P" --config-dir "$DEMO_DIR" discover >"$DEMO_DIR/discover.log" 2>&1 || { tail -n 20 "$DEMO_DIR/discover.log" >&2; exit 1; }
	tail -n 1 "$DEMO_DIR/discover.log"
	first=1
else
	log "applying one clinic day to $SRC_DB (demo mutate)"
	"$P" demo mutate --db "$SRC_DB" --seed "$SEED"
	first=0
fi

log "check: every connection, verified TLS"
"$P" --config-dir "$DEMO_DIR" check

if [ "$first" = 1 ]; then log "run: full copy source → replica → PostgreSQL raw"; else log "run: incremental"; fi
# The run prints a line per table and phase: keep them in run.log, show the totals.
set +e
"$P" --config-dir "$DEMO_DIR" run >"$DEMO_DIR/run.log" 2>&1
rc=$?
set -e
grep -E '^(load: )?[0-9]+ tables, [0-9]+ failed' "$DEMO_DIR/run.log" || tail -n 20 "$DEMO_DIR/run.log"
grep -E 'level=(WARN|ERROR)' "$DEMO_DIR/run.log" | head -n 20 || true
echo "(every table's line: $DEMO_DIR/run.log)"

# Prove it: every table compared source ↔ replica ↔ raw (hashes only from
# the source); rows a run could not see are re-copied and verified again.
log "verify --repair: source ↔ replica ↔ raw, every table"
set +e
"$P" --config-dir "$DEMO_DIR" verify --repair >"$DEMO_DIR/verify.log" 2>&1
vrc=$?
set -e
grep -E '^[0-9]+ tables verified' "$DEMO_DIR/verify.log" || tail -n 20 "$DEMO_DIR/verify.log"
grep -E 'repaired|DIFFERS|FAILED' "$DEMO_DIR/verify.log" | head -n 20 || true
echo "(every table's line: $DEMO_DIR/verify.log)"
[ "$rc" != 0 ] || rc=$vrc

# What an operator asks the next morning: is every table current? status
# reads only the pipeline's own state (never the clinic's server).
log "status: when each table was last confirmed current"
set +e
"$P" --config-dir "$DEMO_DIR" status >"$DEMO_DIR/status.log" 2>&1
src=$?
set -e
head -n 1 "$DEMO_DIR/status.log"
grep -E '^\S+\s+(stale|failed)\s|^FAILING ' "$DEMO_DIR/status.log" | head -n 20 || true
echo "(every table's line: $DEMO_DIR/status.log; run history: schema pipeline of $PG_DB)"
[ "$rc" != 0 ] || rc=$src

log "summary"
tables=$(my -N -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$SRC_DB'")
# Exact counts: every row of the source must be in the replica and in raw.
my_rows() {
	local q
	q=$(my -N -e "SELECT CONCAT('SELECT ', IFNULL(GROUP_CONCAT(CONCAT('(SELECT COUNT(*) FROM \`', TABLE_NAME, '\`)') SEPARATOR ' + '), '0'))
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$1' AND TABLE_NAME NOT LIKE 'etl\\_%' AND TABLE_NAME NOT LIKE '\\_pipeline\\_%'")
	my -N "$1" -e "$q"
}
pg_rows() {
	local q
	q=$(pg -d "$PG_DB" -tA -c "SELECT 'SELECT ' || COALESCE(string_agg(format('(SELECT count(*) FROM %I.%I)', table_schema, table_name), ' + '), '0')
		FROM information_schema.tables WHERE table_schema = 'raw' AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'etl\\_%'")
	pg -d "$PG_DB" -tA -c "$q"
}
repl_tables=$(my -N -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$REPL_DB' AND TABLE_NAME NOT LIKE 'etl\\_%' AND TABLE_NAME NOT LIKE '\\_pipeline\\_%'")
raw_tables=$(pg -d "$PG_DB" -tAc "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'raw' AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'etl\\_%'")
printf '  source      %-28s %4s tables, %s rows\n' "$SRC_DB" "$tables" "$(my_rows "$SRC_DB")"
printf '  replication %-28s %4s tables, %s rows\n' "$REPL_DB" "$repl_tables" "$(my_rows "$REPL_DB")"
printf '  analytics   %-28s %4s tables in raw, %s rows\n' "$PG_DB" "$raw_tables" "$(pg_rows)"
# Every value the load had to change (zero dates → NULL, NUL bytes stripped), per column.
conv=$(pg -d "$PG_DB" -tA -c "SELECT COALESCE(sum(k.value::bigint), 0) || CASE WHEN sum(k.value::bigint) = 1 THEN ' value' ELSE ' values' END || COALESCE(': ' || string_agg(format('%s.%s %s %s', s.table_name, c.key, k.key, k.value), ', ' ORDER BY s.table_name, c.key, k.key), '')
	FROM pipeline.etl_load_status s, jsonb_each(s.conversions) c, jsonb_each(c.value) k" 2>/dev/null || echo "unknown (no pipeline.etl_load_status)")
printf '  converted   %s (last load of each table; pipeline.etl_load_status.conversions)\n' "$conv"
printf '  config      %s (pipeline.yml, tables.yml, demo.env)\n' "$DEMO_DIR"
printf '  verify exit code %s (0: every table identical on both hops)\n' "$vrc"
printf '  status exit code %s (0: every table confirmed current within status.stale_after)\n' "$src"
printf '  pipeline exit code %s; run `make demo` again for an incremental day.\n' "$rc"
exit "$rc"
