#!/usr/bin/env bash
# make bench: the pipeline against the stock tools, on the same demo data, in
# one run. Prints a table and writes bench/RESULTS.md. Timings are measured,
# never asserted; run it by hand on an otherwise idle machine and commit the
# results. See bench/README.md for what each step runs and why it is fair.
#
#   BENCH_SCALE=0.01   demo scale (share of a real clinic: 0.01 ≈ 200 k rows)
#   BENCH_SEED=1       demo seed
#   BENCH_WORKERS=2    parallel tables for the per-table stock pipe
#   BENCH_PGLOADER_TIMEOUT=300   seconds before a hung pgloader is stopped
#   BENCH_PIPELINE=path  use this pipeline binary instead of building ./cmd/pipeline
#                        (BENCH_PIPELINE_REV=commit it was built from, for the report)
#   BENCH_STEPS=all    all steps; prod: only seed, discover and the pipeline at
#                      the production defaults (first full run, no-change run,
#                      a clinic day, the day's run): for BENCH_SCALE=1, where
#                      pgloader, dump/restore and the stock pipe take far too long
#   BENCH_REPLICA_POOL_MB=8192  InnoDB buffer pool of the server holding the
#                      replica for the run (restored after); 0 keeps the server's
#                      own. MariaDB's default, 128 MB, makes a day's REPLACEs into
#                      big tables with many secondary indexes read index pages
#                      from disk: see "Sizing the replica server" in README.md
#   BENCH_REPLICA_REDO_MB=1024  InnoDB redo log (innodb_log_file_size) of that
#                      server for the run (restored after); 0 keeps the server's.
#                      MariaDB's default, 96 MB, fills during a day's upserts and
#                      makes them wait for page flushes (same README section)
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
export PATH="$PATH:/usr/local/go/bin"
ROOT=$PWD
SCALE=${BENCH_SCALE:-0.01}
SEED=${BENCH_SEED:-1}
WORKERS=${BENCH_WORKERS:-2}
MODE=${BENCH_STEPS:-all}
case $MODE in all | prod) ;; *) echo "bench: BENCH_STEPS must be all or prod, not $MODE" >&2; exit 2 ;; esac
W=$ROOT/bench/work
CFG=$W/config           # the comparison steps: no rate limit, 2 source connections
PRODCFG=$W/config-prod  # the *_prod steps: pipeline.yml's replication defaults
SRC=opendental_demo_bench # "demo" in the name: demo seed/mutate refuse other databases
REPL=opendental_demo_bench_replica
DUMPCOPY=opendental_demo_bench_dumpcopy
PGDB=opendental_demo_bench_analytics
RESULTS=${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}

FLOOR=/tmp/bench-floor.$$ # the ingest floor's binary COPY files: the postgres server writes them

# shellcheck source=bench/lib.sh
. bench/lib.sh # my, pg, the source user and what it costs the source, rows written in PostgreSQL
log() { printf '\n== bench: %s\n' "$*" >&2; }

if [ -z "${MAKELEVEL:-}" ] && [ -f scripts/services.sh ]; then
	bash scripts/services.sh || exit 2
fi
TOOLS="mariadb psql /usr/bin/time"
[ "$MODE" = prod ] || TOOLS="$TOOLS mariadb-dump pgloader"
for tool in $TOOLS; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install mariadb-client postgresql-client pgloader time)" >&2; exit 2; }
done

rm -rf "$W"
mkdir -p "$CFG" "$PRODCFG"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
REV=${BENCH_PIPELINE_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [ -n "${BENCH_PIPELINE:-}" ]; then
	cp "$BENCH_PIPELINE" "$W/pipeline" || exit 2
else
	log "building the pipeline"
	go build -o "$W/pipeline" ./cmd/pipeline || exit 2
fi
P=$W/pipeline

# --- measurement ------------------------------------------------------------
declare -A WALL RSS RC CPU
STEPS=()
# measure <step> <shell command>: wall seconds and peak RSS (largest process)
# through GNU time; output in $W/<step>.log. CPU[step]: CPU seconds of the
# command, of MariaDB and of PostgreSQL during it (server_cpu), for the
# [prod] steps' CPU table.
measure() {
	local step=$1 c0 c1 u s
	shift
	STEPS+=("$step")
	log "$step: $*"
	c0=$(server_cpu)
	/usr/bin/time -f '%e %M %U %S' -o "$W/$step.time" bash -o pipefail -c "$*" >"$W/$step.log" 2>&1
	RC[$step]=$?
	sleep 1 # the postmaster reaps the step's backends
	c1=$(server_cpu)
	read -r WALL[$step] RSS[$step] u s < <(tail -n 1 "$W/$step.time")
	CPU[$step]=$(awk -v u="$u" -v s="$s" -v a="$c0" -v b="$c1" 'BEGIN { split(a, x, " "); split(b, y, " ")
		printf "%.1f %.1f %.1f\n", u + s, y[1] - x[1], y[2] - x[2] }')
	printf '   %s: exit %s, %ss, peak RSS %s MB\n' "$step" "${RC[$step]}" "${WALL[$step]}" "$(( ${RSS[$step]:-0} / 1024 ))" >&2
	if [ "${RC[$step]}" != 0 ]; then tail -n 5 "$W/$step.log" | sed 's/^/   | /' >&2; fi
}

# measure_prod <step> <shell command>: measure, connected to the source as the
# SELECT-only bench user, and what the step cost the source server in
# COST[step]: statements selects rows_examined rows_sent kb_sent cpu_s
# (bench/lib.sh source_cost_delta); rows examined per source table in
# $W/<step>.source_tables.txt (the step is the source's only reader).
declare -A COST
measure_prod() {
	local step=$1 c0 c1 q r kb
	c0=$(source_cost)
	source_tables_read "$SRC" >"$W/$step.source_tables.before"
	OPENDENTAL_SOURCE_USER=$SRC_USER OPENDENTAL_SOURCE_PASSWORD=$SRC_PASS measure "$@"
	c1=$(source_cost)
	source_tables_read "$SRC" >"$W/$step.source_tables.after"
	source_tables_delta "$W/$step.source_tables.before" "$W/$step.source_tables.after" >"$W/$step.source_tables.txt"
	COST[$step]=$(source_cost_delta "$c0" "$c1")
	read -r q _ r _ kb _ <<<"${COST[$step]}"
	printf '   %s: %s source statements, %s rows examined, %s KB sent\n' "$step" "$q" "$r" "$kb" >&2
}

# night: the clinic's day ends hours before the night's run. MyISAM's
# UPDATE_TIME counts seconds, so a run starting in the second of the day's
# last write cannot prove a table unwritten since and the next run reads it
# again: start the night's run two seconds later, as it would be.
night() { sleep 2; }

# Exact row counts (TABLE_ROWS is an estimate for InnoDB).
my_rows() { # my_rows <database>
	local q
	q=$(my -N -e "SELECT CONCAT('SELECT ', IFNULL(GROUP_CONCAT(CONCAT('(SELECT COUNT(*) FROM \`', TABLE_NAME, '\`)') SEPARATOR ' + '), '0'))
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$1' AND TABLE_NAME NOT LIKE '\\_pipeline\\_%'" 2>/dev/null) || { echo "-"; return; }
	my -N "$1" -e "$q" 2>/dev/null || echo "-"
}
pg_rows() { # pg_rows <schema>
	local q
	q=$(pg -d "$PGDB" -tA -c "SELECT 'SELECT ' || COALESCE(string_agg(format('(SELECT count(*) FROM %I.%I)', table_schema, table_name), ' + '), '0')
		FROM information_schema.tables WHERE table_schema = '$1' AND table_type = 'BASE TABLE'" 2>/dev/null) || { echo "-"; return; }
	pg -d "$PGDB" -tA -c "$q" 2>/dev/null || echo "-"
}
pg_tables() { pg -d "$PGDB" -tA -c "SELECT count(*) FROM information_schema.tables WHERE table_schema = '$1' AND table_type = 'BASE TABLE'" 2>/dev/null || echo 0; }

# Fidelity probe: rows whose notes hold a 4-byte character (emoji), which a
# client on utf8mb3 silently turns into '?'. Every target must match the source.
my_emoji() {
	my -N "$1" -e "SELECT (SELECT COUNT(*) FROM commlog WHERE HEX(Note) LIKE '%F09F%') + (SELECT COUNT(*) FROM appointment WHERE HEX(Note) LIKE '%F09F%') + (SELECT COUNT(*) FROM procnote WHERE HEX(Note) LIKE '%F09F%')" 2>/dev/null || echo "-"
}
pg_emoji() {
	pg -d "$PGDB" -tA -c "SELECT (SELECT count(*) FROM $1.commlog t WHERE t::text ~ '[\U0001F000-\U0001FFFF]') + (SELECT count(*) FROM $1.appointment t WHERE t::text ~ '[\U0001F000-\U0001FFFF]') + (SELECT count(*) FROM $1.procnote t WHERE t::text ~ '[\U0001F000-\U0001FFFF]')" 2>/dev/null || echo "-"
}

# --- the data and the configuration -----------------------------------------
log "fresh databases: $SRC, $REPL, $DUMPCOPY (MariaDB), $PGDB (PostgreSQL)"
my -e "DROP DATABASE IF EXISTS \`$REPL\`; DROP DATABASE IF EXISTS \`$DUMPCOPY\`;
	CREATE DATABASE \`$REPL\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
	CREATE DATABASE \`$DUMPCOPY\`" || exit 2
pg -d postgres -c "DROP DATABASE IF EXISTS \"$PGDB\" WITH (FORCE)" -c "CREATE DATABASE \"$PGDB\" ENCODING 'UTF8' TEMPLATE template0" || exit 2
pg -d "$PGDB" -c "CREATE SCHEMA raw; CREATE SCHEMA staging; CREATE SCHEMA intermediate; CREATE SCHEMA marts; CREATE SCHEMA pipe" || exit 2

measure seed "'$P' demo seed --db $SRC --scale $SCALE --seed $SEED"
[ "${RC[seed]}" = 0 ] || { echo "bench: seeding failed, see $W/seed.log" >&2; exit 1; }
SEED_LINE=$(grep '^seeded' "$W/seed.log")
SRC_ROWS=$(my_rows "$SRC")
SRC_EMOJI=$(my_emoji "$SRC")
# The [prod] steps read the source as a SELECT-only user of their own, so the
# server's per-user statistics count exactly what each step cost it.
source_user_create "$SRC" || exit 2
# The replica's server is ours to size (the source's tables are MyISAM and do
# not use the InnoDB buffer pool): online resize, the server's value restored.
POOL_BEFORE=$(my -N -e 'SELECT @@innodb_buffer_pool_size')
POOL_MB=${BENCH_REPLICA_POOL_MB:-8192}
if [ "$POOL_MB" != 0 ]; then
	my -e "SET GLOBAL innodb_buffer_pool_size = $((POOL_MB * 1048576))" || exit 2
fi
POOL_USED_MB=$(($(my -N -e 'SELECT @@innodb_buffer_pool_size') / 1048576))
REDO_BEFORE=$(my -N -e 'SELECT @@innodb_log_file_size')
REDO_MB=${BENCH_REPLICA_REDO_MB:-1024}
if [ "$REDO_MB" != 0 ]; then
	my -e "SET GLOBAL innodb_log_file_size = $((REDO_MB * 1048576))" || exit 2
fi
REDO_USED_MB=$(($(my -N -e 'SELECT @@innodb_log_file_size') / 1048576))
trap 'source_user_drop; rm -rf "$FLOOR"; my -e "SET GLOBAL innodb_buffer_pool_size = $POOL_BEFORE; SET GLOBAL innodb_log_file_size = $REDO_BEFORE"' EXIT

cat >"$CFG/pipeline.yml" <<'YML'
connections:
  source:
    application_name: pipeline_bench
replication:
  workers: 2
  source_connections: 2
  rate_limit_ms: 0
load:
  workers: 2
YML
export ETL_ENVIRONMENT=production
export OPENDENTAL_SOURCE_HOST=127.0.0.1 OPENDENTAL_SOURCE_PORT=3306 OPENDENTAL_SOURCE_DB=$SRC OPENDENTAL_SOURCE_USER=root OPENDENTAL_SOURCE_PASSWORD=
export MYSQL_REPLICATION_HOST=127.0.0.1 MYSQL_REPLICATION_PORT=3306 MYSQL_REPLICATION_DB=$REPL MYSQL_REPLICATION_USER=root MYSQL_REPLICATION_PASSWORD=
export POSTGRES_ANALYTICS_HOST=127.0.0.1 POSTGRES_ANALYTICS_PORT=5432 POSTGRES_ANALYTICS_DB=$PGDB POSTGRES_ANALYTICS_SCHEMA=raw POSTGRES_ANALYTICS_USER=postgres POSTGRES_ANALYTICS_PASSWORD=

# The production defaults (internal/providers DefaultPipelineConfig: 2
# workers, 1 source connection, 100 ms between source queries): a
# pipeline.yml that sets no replication or load option, same tables.yml.
cat >"$PRODCFG/pipeline.yml" <<'YML'
connections:
  source:
    application_name: pipeline_bench
YML

measure discover "'$P' --config-dir '$CFG' discover"
cp "$CFG/tables.yml" "$PRODCFG/tables.yml" || exit 2

# --- PostgreSQL's ingest floor -------------------------------------------------
# The same rows as raw, COPYed in binary format from files on the database
# server into tables defined like raw's, 2 sessions at once, each table built
# as the pipeline's full load builds it: created and filled in one
# transaction (COPY FREEZE), then its key (and any other index) added. What
# no loader into these tables can beat: no source read, no conversion, no
# network, PostgreSQL's cheapest input format. The tables are dealt out to the
# two sessions largest first, each to the session with fewer bytes so far (one
# psql per table would cost more in process starts than the small tables do).
ingest_floor() {
	mkdir -p "$FLOOR" && chmod 777 "$FLOOR" || return 1
	pg -d "$PGDB" -c "DROP SCHEMA IF EXISTS floor CASCADE" -c "CREATE SCHEMA floor" || return 1
	pg -d "$PGDB" -tA -c "SELECT format('COPY raw.%I TO %L (FORMAT binary);', relname, '$FLOOR/' || relid || '.bin')
		FROM pg_stat_user_tables WHERE schemaname = 'raw'" | pg -d "$PGDB" || return 1
	FLOOR_MB=$(du -sm "$FLOOR" | cut -f1)
	# one transaction per table, "bytes<TAB>sql" lines, largest first
	pg -d "$PGDB" -tA -F $'\t' -c "SELECT pg_total_relation_size(c.oid), format('BEGIN; CREATE TABLE floor.%I (LIKE raw.%I INCLUDING ALL EXCLUDING INDEXES); COPY floor.%I FROM %L WITH (FORMAT binary, FREEZE);', c.relname, c.relname, c.relname, '$FLOOR/' || c.oid || '.bin')
		|| COALESCE((SELECT string_agg(CASE WHEN k.oid IS NOT NULL THEN format(' ALTER TABLE floor.%I ADD CONSTRAINT %I %s;', c.relname, k.conname, pg_get_constraintdef(k.oid))
			ELSE ' ' || replace(pg_get_indexdef(x.indexrelid), ' ON raw.', ' ON floor.') || ';' END, '')
			FROM pg_index x LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid WHERE x.indrelid = c.oid), '') || ' COMMIT;'
		FROM pg_class c WHERE c.relnamespace = 'raw'::regnamespace AND c.relkind = 'r' ORDER BY 1 DESC" >"$W/floor.sql" || return 1
	awk -F '\t' -v w="$W" '{ s = (b[1] <= b[2]) ? 1 : 2; b[s] += $1; print $2 > (w "/floor." s ".sql") }' "$W/floor.sql"
	FLOOR_INDEXES=$(grep -o 'CREATE [A-Z ]*INDEX' "$W/floor.sql" | wc -l)
	printf '%s\n' "$W/floor.1.sql" "$W/floor.2.sql" >"$W/floor.list"
	measure pg_ingest_floor "xargs -P 2 -n 1 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres -d '$PGDB' -f < '$W/floor.list'"
	FLOOR_ROWS=$(pg_rows floor)
	pg -d "$PGDB" -c "DROP SCHEMA floor CASCADE"
	rm -rf "$FLOOR"
}

if [ "$MODE" = all ]; then
	# --- replication: full copy ---------------------------------------------------
	measure replicate_full "'$P' --config-dir '$CFG' replicate --full-refresh"
	REPL_ROWS=$(my_rows "$REPL")
	REPL_EMOJI=$(my_emoji "$REPL")
	measure dump_restore "mariadb-dump --protocol=tcp -h127.0.0.1 -uroot --default-character-set=utf8mb4 --quick $SRC | mariadb --protocol=tcp -h127.0.0.1 -uroot --default-character-set=utf8mb4 $DUMPCOPY"
	DUMP_ROWS=$(my_rows "$DUMPCOPY")
	DUMP_EMOJI=$(my_emoji "$DUMPCOPY")

	# --- load: full ---------------------------------------------------------------
	measure load_full "'$P' --config-dir '$CFG' load --full-refresh"
	RAW_ROWS=$(pg_rows raw)
	RAW_EMOJI=$(pg_emoji raw)
	ingest_floor || log "pg_ingest_floor: failed"

	cat >"$W/pgloader.load" <<PGL
LOAD DATABASE
  FROM mysql://root@127.0.0.1:3306/$SRC
  INTO postgresql://postgres@127.0.0.1:5432/$PGDB
  WITH include drop, create tables, create indexes, reset sequences, workers = 2, concurrency = 1
  ALTER SCHEMA '$SRC' RENAME TO 'pgloader';
PGL
	# pgloader (SBCL) can exhaust its heap and drop into its debugger, or hang:
	# bound it so the suite always finishes and reports it as failed.
	measure pgloader "cd '$W' && timeout ${BENCH_PGLOADER_TIMEOUT:-300} pgloader --no-ssl-cert-verification pgloader.load </dev/null"
	PGLOADER_ROWS=$(pg_rows pgloader)
	PGLOADER_EMOJI=$(pg_emoji pgloader)

	# The stock-client pipe needs the target tables: copy their definitions from
	# the pipeline's raw schema (or pgloader's when raw is not there).
	REF=raw
	[ "$(pg_tables raw)" -ge 408 ] || REF=pgloader
	PIPE_ROWS="-"
	PIPE_EMOJI="-"
	if [ "$(pg_tables "$REF")" -ge 408 ]; then
		pg -d "$PGDB" -tA -c "SELECT format('CREATE TABLE pipe.%I (LIKE %I.%I);', table_name, table_schema, table_name)
			FROM information_schema.tables WHERE table_schema = '$REF' AND table_type = 'BASE TABLE'" | pg -d "$PGDB" >/dev/null
		my -N -e "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$SRC' ORDER BY TABLE_NAME" >"$W/tables.txt"
		# mariadb --batch writes tab-separated rows, escapes \t \n \\ (and NUL as \0)
		# exactly as PostgreSQL's COPY text format reads them, and prints NULL as
		# the word NULL: the demo data holds no literal 'NULL' string. utf8mb4 on
		# the client, or the 4-byte characters of the notes arrive as '?'.
		cat >"$W/pipe_table.sh" <<PIPE
#!/usr/bin/env bash
set -o pipefail
mariadb --protocol=tcp -h127.0.0.1 -uroot --default-character-set=utf8mb4 --quick --batch --skip-column-names -e "SELECT * FROM \\\`\$1\\\`" $SRC |
	psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d $PGDB -c "\\copy pipe.\"\$1\" FROM STDIN WITH (FORMAT text, NULL 'NULL')"
PIPE
		chmod +x "$W/pipe_table.sh"
		measure stock_pipe "xargs -P $WORKERS -n 1 '$W/pipe_table.sh' < '$W/tables.txt'"
		PIPE_ROWS=$(pg_rows pipe)
		PIPE_EMOJI=$(pg_emoji pipe)
	else
		log "stock_pipe: skipped, no target table definitions (neither pipeline load nor pgloader produced 408 tables)"
	fi

	# --- incremental runs ---------------------------------------------------------
	measure incremental_nochange "'$P' --config-dir '$CFG' run"
	measure mutate "'$P' demo mutate --db $SRC --seed $SEED"
	MUTATE_LINE=$(grep '^mutated' "$W/mutate.log" || true)
	night
	measure incremental_day "'$P' --config-dir '$CFG' run"
	SRC_ROWS_AFTER=$(my_rows "$SRC")
	REPL_ROWS_AFTER=$(my_rows "$REPL")
	RAW_ROWS_AFTER=$(pg_rows raw)
else
	# BENCH_STEPS=prod: the first full run at the production defaults, and
	# the steps below.
	night
	measure_prod run_full_prod "'$P' --config-dir '$PRODCFG' --log-level debug run"
	REPL_ROWS=$(my_rows "$REPL")
	RAW_ROWS=$(pg_rows raw)
fi

# --- incremental runs at the production defaults --------------------------------
# The same state, now with pipeline.yml's defaults: one source connection and
# 100 ms between source queries, as on a clinic's server. Each reads the
# source as the bench user (measure_prod: statements and rows examined) and
# logs at debug level (chunk timings).
measure_prod incremental_nochange_prod "'$P' --config-dir '$PRODCFG' --log-level debug run"
RAW_ROWS_NOCHANGE_PROD=$(pg_rows raw)
# After the [bench] day, another (seed + 1); at BENCH_STEPS=prod the first day.
DAY_SEED=$SEED
[ "$MODE" = prod ] || DAY_SEED=$((SEED + 1))
measure mutate_prod "'$P' demo mutate --db $SRC --seed $DAY_SEED"
MUTATE_PROD_LINE=$(grep '^mutated' "$W/mutate_prod.log" || true)
night
CHANGED=$(sed -E 's/.*: ([0-9]+) inserted, ([0-9]+) updated, ([0-9]+) deleted.*/\1 \2 \3/' <<<"$MUTATE_PROD_LINE" | awk 'NF == 3 { print $1 + $2 + $3 }')
# What the day's run writes into the warehouse (raw's tables, and the whole
# database with the pipeline's bookkeeping and temporary tables) and where it
# examines source rows.
pg_writes "$PGDB" raw >"$W/raw_writes.before"
DB_WRITES0=$(stable pg_db_writes_once "$PGDB")
measure_prod incremental_day_prod "'$P' --config-dir '$PRODCFG' --log-level debug run"
pg_writes "$PGDB" raw >"$W/raw_writes.after"
DB_WRITES=$(( $(stable pg_db_writes_once "$PGDB") - DB_WRITES0 ))
pg_writes_tables "$W/raw_writes.before" "$W/raw_writes.after" >"$W/raw_writes_day.txt"
RAW_WRITES=$(awk '{ n += $1 } END { print n + 0 }' "$W/raw_writes_day.txt")
if [ "$MODE" = all ]; then
	# One full verification pass after that day: every table, both hops, hashes only from the source.
	measure_prod verify_prod "'$P' --config-dir '$PRODCFG' verify"
	VERIFY_LINE=$(grep -E '^[0-9]+ tables verified' "$W/verify_prod.log" || true)
fi
SRC_ROWS_PROD=$(my_rows "$SRC")
REPL_ROWS_PROD=$(my_rows "$REPL")
RAW_ROWS_PROD=$(pg_rows raw)

# --- report -------------------------------------------------------------------
# vs_full <step>: the full copy's wall time over the step's (replicate + load
# --full-refresh; at BENCH_STEPS=prod the first full run).
vs_full() {
	if [ -n "${RC[run_full_prod]:-}" ]; then
		if [ "${RC[$1]:-1}" = 0 ] && [ "${RC[run_full_prod]}" = 0 ]; then
			awk -v a="${WALL[$1]}" -v b="${WALL[run_full_prod]}" 'BEGIN { if (a > 0) printf "%.1f×", b / a; else print "-" }'
		else echo "-"; fi
	elif [ "${RC[$1]:-1}" = 0 ] && [ "${RC[replicate_full]:-1}" = 0 ] && [ "${RC[load_full]:-1}" = 0 ]; then
		awk -v a="${WALL[$1]}" -v b="${WALL[replicate_full]}" -v c="${WALL[load_full]}" 'BEGIN { if (a > 0) printf "%.1f×", (b + c) / a; else print "-" }'
	else echo "-"; fi
}
ratio() { # ratio <step> <baseline step>: how many times longer the baseline took
	if [ "${RC[$1]:-1}" = 0 ] && [ "${RC[$2]:-1}" = 0 ]; then awk -v a="${WALL[$1]}" -v b="${WALL[$2]}" 'BEGIN { if (a > 0) printf "%.2f×", b / a; else print "-" }'; else echo "-"; fi
}
row() { # row <step> <what> <rows> <comparison>
	local s=$1 status
	if [ -z "${RC[$s]:-}" ]; then status="not run"; elif [ "${RC[$s]}" = 0 ]; then status=ok; else status="failed (exit ${RC[$s]})"; fi
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$s" "$2" "${WALL[$s]:--}" "$(( ${RSS[$s]:-0} / 1024 ))" "$3" "$status" "$4"
}
cost_row() { # cost_row <step> <target>: what a [prod] step cost the source
	local q sel r sent kb cpu
	[ -n "${COST[$1]:-}" ] || return 0
	read -r q sel r sent kb cpu <<<"${COST[$1]}"
	printf '| %s | %s | %s (%s SELECT) | %s | %s | %s | %s | %s |\n' "$1" "${WALL[$1]:--}" "$q" "$sel" "$r" "$sent" "$kb" "$cpu" "$2"
}
cpu_row() { # cpu_row <step>: where the machine's CPU went during a [prod] step
	local p m pg src
	[ -n "${CPU[$1]:-}" ] && [ -n "${COST[$1]:-}" ] || return 0
	read -r p m pg <<<"${CPU[$1]}"
	read -r _ _ _ _ _ src <<<"${COST[$1]}"
	awk -v st="$1" -v w="${WALL[$1]}" -v p="$p" -v m="$m" -v pg="$pg" -v src="$src" -v n="$(nproc)" 'BEGIN {
		t = p + m + pg
		printf "| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", st, w, src, m - src, p, pg, t, t / n, (w > 0 ? t / w : 0) }'
}
cpu_plain_row() { # cpu_plain_row <step>: the machine's CPU during a comparison step
	local p m pg
	[ -n "${CPU[$1]:-}" ] && [ "${RC[$1]:-1}" = 0 ] || return 0
	read -r p m pg <<<"${CPU[$1]}"
	awk -v st="$1" -v w="${WALL[$1]}" -v p="$p" -v m="$m" -v pg="$pg" -v n="$(nproc)" 'BEGIN {
		t = p + m + pg
		printf "| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", st, w, m, p, pg, t, t / n, (w > 0 ? t / w : 0) }'
}
top() { # top <file of "n name" lines>: the first five as "name n, …"
	head -n 5 "$1" | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 } END { if (NR == 0) printf "none" }'
}
{
	echo "# Benchmark results"
	echo
	echo "Written by \`make bench\` (bench/run.sh, BENCH_STEPS=$MODE) on $(date -u '+%Y-%m-%d %H:%M UTC'); see bench/README.md for the method."
	echo
	echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, $(uname -sr)"
	echo "- MariaDB $(my -N -e 'SELECT VERSION()'), $(pg -d postgres -tA -c 'SHOW server_version' | sed 's/^/PostgreSQL /')$([ "$MODE" = prod ] || echo ", $(pgloader --version | head -n 1)"), $(go version | cut -d' ' -f3)"
	echo "- load average (1/5/15 min) at the start: $LOAD_BEFORE, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the timings)"
	echo "- replica server: innodb_buffer_pool_size $POOL_USED_MB MB and innodb_log_file_size $REDO_USED_MB MB for the run (BENCH_REPLICA_POOL_MB, BENCH_REPLICA_REDO_MB; the server's own $((POOL_BEFORE / 1048576)) MB and $((REDO_BEFORE / 1048576)) MB restored after)"
	echo "- pipeline: commit $REV${BENCH_PIPELINE:+ (prebuilt binary)}"
	echo "- data: \`pipeline demo seed --scale $SCALE --seed $SEED\`: $SEED_LINE"
	if [ "$MODE" = all ]; then
		echo "- source rows (exact): $SRC_ROWS before the clinic day, $SRC_ROWS_AFTER after it ($MUTATE_LINE), $SRC_ROWS_PROD after the second day ($MUTATE_PROD_LINE)"
		echo "- settings: [bench] = pipeline.yml with replication workers 2, source_connections 2, rate_limit_ms 0, load workers 2 (every step above the [prod] rows, for a fair comparison with the stock tools on an idle local source); [prod] = pipeline.yml's defaults: replication workers 2, source_connections 1, rate_limit_ms 100, load workers 2"
	else
		echo "- source rows (exact): $SRC_ROWS before the clinic day, $SRC_ROWS_PROD after it ($MUTATE_PROD_LINE)"
		echo "- settings: [prod] = pipeline.yml's defaults: replication workers 2, source_connections 1, rate_limit_ms 100, load workers 2"
	fi
	echo
	echo "| step | what | wall s | peak RSS MB | rows in target | status | pipeline is faster by |"
	echo "|---|---|---:|---:|---:|---|---:|"
	if [ "$MODE" = all ]; then
		row replicate_full "pipeline replicate --full-refresh (source → replica)" "$REPL_ROWS" ""
		row dump_restore "mariadb-dump \| mariadb (source → copy)" "$DUMP_ROWS" "$(ratio replicate_full dump_restore)"
		row load_full "pipeline load --full-refresh (replica → raw)" "$RAW_ROWS" ""
		row pg_ingest_floor "PostgreSQL's ingest floor: binary COPY of raw's rows from server files, 2 sessions" "${FLOOR_ROWS:--}" "load_full / floor: $(ratio pg_ingest_floor load_full) (target ≤ 1.3×)"
		row pgloader "pgloader (source → schema pgloader)" "$PGLOADER_ROWS" "$(ratio load_full pgloader)"
		row stock_pipe "mariadb --batch \| psql \\\\copy per table, $WORKERS at once" "$PIPE_ROWS" "$(ratio load_full stock_pipe)"
		row incremental_nochange "pipeline run, nothing changed [bench]" "$RAW_ROWS" "full replicate+load / this: $(vs_full incremental_nochange)"
		row mutate "pipeline demo mutate (a clinic day at the source)" "$SRC_ROWS_AFTER" ""
		row incremental_day "pipeline run after the clinic day [bench]" "$RAW_ROWS_AFTER" "full replicate+load / this: $(vs_full incremental_day)"
	else
		row run_full_prod "pipeline run, the first (a full copy) [prod]" "$RAW_ROWS" "target ≤ 150 s, < 300 MB"
	fi
	row incremental_nochange_prod "pipeline run, nothing changed [prod]" "$RAW_ROWS_NOCHANGE_PROD" "full copy / this: $(vs_full incremental_nochange_prod)"
	row mutate_prod "pipeline demo mutate --seed $DAY_SEED (a clinic day)" "$SRC_ROWS_PROD" ""
	row incremental_day_prod "pipeline run after that day [prod]" "$RAW_ROWS_PROD" "full copy / this: $(vs_full incremental_day_prod)"
	[ "$MODE" = prod ] || row verify_prod "pipeline verify, every table [prod]" "$RAW_ROWS_PROD" "full copy / this: $(vs_full verify_prod)"
	echo
	echo "What the [prod] steps cost the source server (MariaDB \`USER_STATISTICS\` of the SELECT-only user they connect as; statements = SELECT_COMMANDS + UPDATE_COMMANDS + OTHER_COMMANDS, i.e. the SELECTs and each session's set-up, SHOW is not counted; rows examined = ROWS_READ):"
	echo
	echo "| [prod] step | wall s | source statements | rows examined | rows sent | KB sent | source CPU s | target |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|"
	cost_row run_full_prod ""
	cost_row incremental_nochange_prod "≈ 3 statements, < 1 s"
	cost_row incremental_day_prod "≤ 100 statements, ≤ 1 000 000 rows examined (scale 0.1, seed 7); ≤ 60 s (scale 1)"
	cost_row verify_prod ""
	echo
	if [ "$MODE" = all ]; then
		echo "Where this machine's CPU went during the comparison steps (seconds; MariaDB = every mariadbd thread: source and replica or dump copy; the tool = the command's processes' user + system time, psql, mariadb and mariadb-dump included; PostgreSQL = every postgres process):"
		echo
		echo "| step | wall s | MariaDB CPU | the tool's CPU | PostgreSQL CPU | total CPU | total / cores | cores busy (total / wall) |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|"
		for s in replicate_full dump_restore load_full pg_ingest_floor pgloader stock_pipe; do cpu_plain_row "$s"; done
		echo
	fi
	echo "Where this machine's CPU went during the [prod] steps (seconds; source = the bench user's CPU_TIME in USER_STATISTICS, replica = the rest of mariadbd's threads: the replica's writes and reads, on the same server here; pipeline = the process's user + system time; PostgreSQL = every postgres process). All four share the machine's $(nproc) cores, so total / cores is a floor under the wall time on this machine, whatever the pipeline overlaps:"
	echo
	echo "| [prod] step | wall s | source CPU | replica CPU | pipeline CPU | PostgreSQL CPU | total CPU | total / cores | cores busy (total / wall) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	cpu_row run_full_prod
	cpu_row incremental_nochange_prod
	cpu_row incremental_day_prod
	cpu_row verify_prod
	echo
	echo "Raw rows written by incremental_day_prod: $RAW_WRITES (n_tup_ins + n_tup_upd + n_tup_del of raw's tables, delta), for ${CHANGED:-?} rows changed at the source that day (inserted + updated + deleted): $(awk -v w="$RAW_WRITES" -v c="${CHANGED:-0}" 'BEGIN { if (c > 0) printf "%.2f×", w / c; else print "-" }') (target ≤ 2×). The whole database counted $DB_WRITES rows written (pg_stat_database: the pipeline's bookkeeping and temporary tables too). Most written: $(top "$W/raw_writes_day.txt")."
	echo "Rows examined at the source, most per table (TABLE_STATISTICS): by incremental_day_prod $(top "$W/incremental_day_prod.source_tables.txt"); by incremental_nochange_prod $(top "$W/incremental_nochange_prod.source_tables.txt")."
	if [ "$MODE" = all ]; then
		echo "PostgreSQL's ingest floor: raw's tables dumped with \`COPY … TO '/tmp/…' (FORMAT binary)\` (${FLOOR_MB:-?} MB), then per table in one transaction \`CREATE TABLE floor.t (LIKE raw.t INCLUDING ALL EXCLUDING INDEXES)\`, \`COPY floor.t FROM '…' WITH (FORMAT binary, FREEZE)\` and its primary key (${FLOOR_INDEXES:-0} other indexes), in 2 psql sessions (tables dealt out largest first)."
	fi
	echo
	echo "Seeding: $(grep '^seeded' "$W/seed.log" | sed 's/^seeded //'), peak RSS $(( ${RSS[seed]:-0} / 1024 )) MB."
	if [ "$MODE" = all ]; then
		echo "Rows whose notes hold an emoji (4-byte UTF-8): source $SRC_EMOJI; replica $REPL_EMOJI, dump copy $DUMP_EMOJI, raw $RAW_EMOJI, pgloader $PGLOADER_EMOJI, stock pipe $PIPE_EMOJI (each must equal the source)."
		echo "After the clinic day the replica holds $REPL_ROWS_AFTER rows and raw $RAW_ROWS_AFTER (source: $SRC_ROWS_AFTER)."
		echo "After the second day ([prod] runs) the replica holds $REPL_ROWS_PROD rows and raw $RAW_ROWS_PROD (source: $SRC_ROWS_PROD)."
		echo "verify_prod: ${VERIFY_LINE:-no total line} (exit ${RC[verify_prod]:-?}: 1 means rows the day's run could not see; see bench/work/verify_prod.log)."
	else
		echo "After the first full run the replica holds $REPL_ROWS rows and raw $RAW_ROWS (source: $SRC_ROWS); after the day the replica holds $REPL_ROWS_PROD and raw $RAW_ROWS_PROD (source: $SRC_ROWS_PROD)."
	fi
	echo
	echo "\"rows in target\" counts every row of the target's tables exactly (pipeline state tables excluded); each must equal the source rows."
	echo "A step that failed or did not run is listed as such (exit 124: stopped by its timeout), with its log in bench/work/<step>.log at the time of the run."
} >"$RESULTS"
log "results written to $RESULTS"
cat "$RESULTS"
