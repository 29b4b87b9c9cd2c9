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
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
export PATH="$PATH:/usr/local/go/bin"
ROOT=$PWD
SCALE=${BENCH_SCALE:-0.01}
SEED=${BENCH_SEED:-1}
WORKERS=${BENCH_WORKERS:-2}
W=$ROOT/bench/work
CFG=$W/config           # the comparison steps: no rate limit, 2 source connections
PRODCFG=$W/config-prod  # the *_prod steps: pipeline.yml's replication defaults
SRC=opendental_demo_bench # "demo" in the name: demo seed/mutate refuse other databases
REPL=opendental_demo_bench_replica
DUMPCOPY=opendental_demo_bench_dumpcopy
PGDB=opendental_demo_bench_analytics
RESULTS=${BENCH_RESULTS:-$ROOT/bench/RESULTS.md}

log() { printf '\n== bench: %s\n' "$*" >&2; }
my() { mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot "$@"; }
pg() { PGOPTIONS='--client-min-messages=warning' psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres "$@"; }

if [ -z "${MAKELEVEL:-}" ] && [ -f scripts/services.sh ]; then
	bash scripts/services.sh || exit 2
fi
for tool in mariadb mariadb-dump psql pgloader /usr/bin/time; do
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
declare -A WALL RSS RC
STEPS=()
# measure <step> <shell command>: wall seconds and peak RSS (largest process)
# through GNU time; output in $W/<step>.log.
measure() {
	local step=$1
	shift
	STEPS+=("$step")
	log "$step: $*"
	/usr/bin/time -f '%e %M' -o "$W/$step.time" bash -o pipefail -c "$*" >"$W/$step.log" 2>&1
	RC[$step]=$?
	read -r WALL[$step] RSS[$step] < <(tail -n 1 "$W/$step.time")
	printf '   %s: exit %s, %ss, peak RSS %s MB\n' "$step" "${RC[$step]}" "${WALL[$step]}" "$(( ${RSS[$step]:-0} / 1024 ))" >&2
	if [ "${RC[$step]}" != 0 ]; then tail -n 5 "$W/$step.log" | sed 's/^/   | /' >&2; fi
}

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
measure incremental_day "'$P' --config-dir '$CFG' run"
SRC_ROWS_AFTER=$(my_rows "$SRC")
REPL_ROWS_AFTER=$(my_rows "$REPL")
RAW_ROWS_AFTER=$(pg_rows raw)

# --- incremental runs at the production defaults --------------------------------
# The same state, now with pipeline.yml's defaults: one source connection and
# 100 ms between source queries, as on a clinic's server.
measure incremental_nochange_prod "'$P' --config-dir '$PRODCFG' run"
RAW_ROWS_NOCHANGE_PROD=$(pg_rows raw)
measure mutate_prod "'$P' demo mutate --db $SRC --seed $((SEED + 1))"
MUTATE_PROD_LINE=$(grep '^mutated' "$W/mutate_prod.log" || true)
measure incremental_day_prod "'$P' --config-dir '$PRODCFG' run"
# One full verification pass after that day: every table, both hops, hashes only from the source.
measure verify_prod "'$P' --config-dir '$PRODCFG' verify"
VERIFY_LINE=$(grep -E '^[0-9]+ tables verified' "$W/verify_prod.log" || true)
SRC_ROWS_PROD=$(my_rows "$SRC")
REPL_ROWS_PROD=$(my_rows "$REPL")
RAW_ROWS_PROD=$(pg_rows raw)

# --- report -------------------------------------------------------------------
# vs_full <step>: the full replicate + load's wall time over the step's.
vs_full() {
	if [ "${RC[$1]:-1}" = 0 ] && [ "${RC[replicate_full]:-1}" = 0 ] && [ "${RC[load_full]:-1}" = 0 ]; then
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
{
	echo "# Benchmark results"
	echo
	echo "Written by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'); see bench/README.md for the method."
	echo
	echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, $(uname -sr)"
	echo "- MariaDB $(my -N -e 'SELECT VERSION()'), $(pg -d postgres -tA -c 'SHOW server_version' | sed 's/^/PostgreSQL /'), $(pgloader --version | head -n 1), $(go version | cut -d' ' -f3)"
	echo "- load average (1/5/15 min) at the start: $LOAD_BEFORE, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the timings)"
	echo "- pipeline: commit $REV${BENCH_PIPELINE:+ (prebuilt binary)}"
	echo "- data: \`pipeline demo seed --scale $SCALE --seed $SEED\`: $SEED_LINE"
	echo "- source rows (exact): $SRC_ROWS before the clinic day, $SRC_ROWS_AFTER after it ($MUTATE_LINE), $SRC_ROWS_PROD after the second day ($MUTATE_PROD_LINE)"
	echo "- settings: [bench] = pipeline.yml with replication workers 2, source_connections 2, rate_limit_ms 0, load workers 2 (every step above the [prod] rows, for a fair comparison with the stock tools on an idle local source); [prod] = pipeline.yml's defaults: replication workers 2, source_connections 1, rate_limit_ms 100, load workers 2"
	echo
	echo "| step | what | wall s | peak RSS MB | rows in target | status | pipeline is faster by |"
	echo "|---|---|---:|---:|---:|---|---:|"
	row replicate_full "pipeline replicate --full-refresh (source → replica)" "$REPL_ROWS" ""
	row dump_restore "mariadb-dump \| mariadb (source → copy)" "$DUMP_ROWS" "$(ratio replicate_full dump_restore)"
	row load_full "pipeline load --full-refresh (replica → raw)" "$RAW_ROWS" ""
	row pgloader "pgloader (source → schema pgloader)" "$PGLOADER_ROWS" "$(ratio load_full pgloader)"
	row stock_pipe "mariadb --batch \| psql \\\\copy per table, $WORKERS at once" "$PIPE_ROWS" "$(ratio load_full stock_pipe)"
	row incremental_nochange "pipeline run, nothing changed [bench]" "$RAW_ROWS" "full replicate+load / this: $(vs_full incremental_nochange)"
	row mutate "pipeline demo mutate (a clinic day at the source)" "$SRC_ROWS_AFTER" ""
	row incremental_day "pipeline run after the clinic day [bench]" "$RAW_ROWS_AFTER" "full replicate+load / this: $(vs_full incremental_day)"
	row incremental_nochange_prod "pipeline run, nothing changed [prod]" "$RAW_ROWS_NOCHANGE_PROD" "full replicate+load / this: $(vs_full incremental_nochange_prod)"
	row mutate_prod "pipeline demo mutate (another clinic day)" "$SRC_ROWS_PROD" ""
	row incremental_day_prod "pipeline run after that day [prod]" "$RAW_ROWS_PROD" "full replicate+load / this: $(vs_full incremental_day_prod)"
	row verify_prod "pipeline verify, every table [prod]" "$RAW_ROWS_PROD" "full replicate+load / this: $(vs_full verify_prod)"
	echo
	echo "Seeding: $(grep '^seeded' "$W/seed.log" | sed 's/^seeded //'), peak RSS $(( ${RSS[seed]:-0} / 1024 )) MB."
	echo "Rows whose notes hold an emoji (4-byte UTF-8): source $SRC_EMOJI; replica $REPL_EMOJI, dump copy $DUMP_EMOJI, raw $RAW_EMOJI, pgloader $PGLOADER_EMOJI, stock pipe $PIPE_EMOJI (each must equal the source)."
	echo "After the clinic day the replica holds $REPL_ROWS_AFTER rows and raw $RAW_ROWS_AFTER (source: $SRC_ROWS_AFTER)."
	echo "After the second day ([prod] runs) the replica holds $REPL_ROWS_PROD rows and raw $RAW_ROWS_PROD (source: $SRC_ROWS_PROD)."
	echo "verify_prod: ${VERIFY_LINE:-no total line} (exit ${RC[verify_prod]:-?}: 1 means rows the day's run could not see; see bench/work/verify_prod.log)."
	echo
	echo "\"rows in target\" counts every row of the target's tables exactly (pipeline state tables excluded); each must equal the source rows."
	echo "A step that failed or did not run is listed as such (exit 124: stopped by its timeout), with its log in bench/work/<step>.log at the time of the run."
} >"$RESULTS"
log "results written to $RESULTS"
cat "$RESULTS"
