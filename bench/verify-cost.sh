#!/usr/bin/env bash
# bench/verify-cost.sh: what one full `pipeline verify` pass costs the
# clinic's server, beside a no-change `pipeline run` and a full re-copy
# (`pipeline replicate --full-refresh`), all at the production defaults
# (1 source connection, 100 ms between source queries) on the demo clinic.
# The source is read by a SELECT-only user of its own, so the server's
# per-user statistics (userstat=1, information_schema.USER_STATISTICS)
# count exactly what each step cost it: statements and rows examined.
#
#   VCOST_SCALE=0.1   demo scale (0.1 ≈ 2 M rows in 408 tables)
#   VCOST_SEED=7      demo seed
#   VCOST_DB=opendental_demo_vcost   source database (replica: <db>_replica, analytics: <db>_analytics)
#   VCOST_REUSE=1     keep the databases of an earlier run of this script (no seeding, no first run)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
SCALE=${VCOST_SCALE:-0.1}
SEED=${VCOST_SEED:-7}
DB=${VCOST_DB:-opendental_demo_vcost}
REPL=${DB}_replica
PGDB=${DB}_analytics
W=bench/work-vcost

# shellcheck source=bench/lib.sh
. bench/lib.sh # my, pg, the source user and its cost
log() { printf '\n== verify-cost: %s\n' "$*" >&2; }

REUSE=${VCOST_REUSE:-0}
[ "$REUSE" = 1 ] || rm -rf "$W"
mkdir -p "$W/config"
go build -o "$W/pipeline" ./cmd/pipeline
P=$W/pipeline
if [ "$REUSE" != 1 ]; then
my -e "DROP DATABASE IF EXISTS \`$DB\`; DROP DATABASE IF EXISTS \`$REPL\`; CREATE DATABASE \`$REPL\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
pg -d postgres -c "DROP DATABASE IF EXISTS \"$PGDB\" WITH (FORCE)" -c "CREATE DATABASE \"$PGDB\" ENCODING 'UTF8' TEMPLATE template0"
log "seeding $DB at scale $SCALE (seed $SEED)"
"$P" demo seed --db "$DB" --scale "$SCALE" --seed "$SEED" >"$W/seed.log" 2>&1
fi
source_user_create "$DB"
trap source_user_drop EXIT

export ETL_ENVIRONMENT=production
export OPENDENTAL_SOURCE_HOST=127.0.0.1 OPENDENTAL_SOURCE_PORT=3306 OPENDENTAL_SOURCE_DB=$DB OPENDENTAL_SOURCE_USER=$SRC_USER OPENDENTAL_SOURCE_PASSWORD=$SRC_PASS
export MYSQL_REPLICATION_HOST=127.0.0.1 MYSQL_REPLICATION_PORT=3306 MYSQL_REPLICATION_DB=$REPL MYSQL_REPLICATION_USER=root MYSQL_REPLICATION_PASSWORD=
export POSTGRES_ANALYTICS_HOST=127.0.0.1 POSTGRES_ANALYTICS_PORT=5432 POSTGRES_ANALYTICS_DB=$PGDB POSTGRES_ANALYTICS_SCHEMA=raw POSTGRES_ANALYTICS_USER=postgres POSTGRES_ANALYTICS_PASSWORD=
# pipeline.yml's defaults: 2 workers, 1 source connection, 100 ms between source queries.
printf 'connections:\n  source:\n    application_name: pipeline_vcost\n' >"$W/config/pipeline.yml"
if [ "$REUSE" != 1 ]; then
	"$P" --config-dir "$W/config" discover >"$W/discover.log" 2>&1
	log "first full run (not measured)"
	"$P" --config-dir "$W/config" run >"$W/first.log" 2>&1
else
	log "a run to bring replica and raw up to date (not measured)"
	"$P" --config-dir "$W/config" load --full-refresh >"$W/first.log" 2>&1
fi

declare -A Q R S B C
measure() { # measure <step> <pipeline args…>
	local step=$1 c0 c1 t0 t1
	shift
	log "$step: pipeline $*"
	c0=$(source_cost)
	t0=$(date +%s.%N)
	"$P" --config-dir "$W/config" "$@" >"$W/$step.log" 2>&1 || true
	t1=$(date +%s.%N)
	c1=$(source_cost)
	read -r Q[$step] _ R[$step] _ B[$step] C[$step] < <(source_cost_delta "$c0" "$c1")
	S[$step]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	printf '   %s: %s s, %s statements, %s rows examined, %s KB sent, %s s CPU\n' "$step" "${S[$step]}" "${Q[$step]}" "${R[$step]}" "${B[$step]}" "${C[$step]}" >&2
}
measure run_nochange run
measure verify verify
measure verify_again verify
measure replicate_full replicate --full-refresh

ROWS=$(grep -o '[0-9]* rows in' "$W/seed.log" | head -n1 | cut -d' ' -f1)
{
	echo "| step (production defaults: 1 source connection, 100 ms rate limit) | wall s | source statements | rows examined by the source | KB sent by the source | source CPU s |"
	echo "|---|---:|---:|---:|---:|---:|"
	for s in run_nochange verify verify_again replicate_full; do
		printf '| %s | %s | %s | %s | %s | %s |\n' "$s" "${S[$s]}" "${Q[$s]}" "${R[$s]}" "${B[$s]}" "${C[$s]}"
	done
	echo
	echo "Demo clinic at scale $SCALE (seed $SEED): $ROWS rows in 408 tables; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; MariaDB $(my -N -e 'SELECT VERSION()')."
	echo "verify: $(grep -E '^[0-9]+ tables verified' "$W/verify.log")"
	echo "Statements include each session's set-up (SET …) and SHOW is not counted by the server."
} | tee "$W/RESULTS.md"
