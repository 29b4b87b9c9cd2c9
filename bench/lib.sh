# bench/lib.sh: shell functions shared by bench/run.sh and bench/verify-cost.sh
# (sourced, not run). What a step costs the clinic's server is counted by
# MariaDB's per-user statistics for a SELECT-only source user of its own;
# what it writes into the warehouse by PostgreSQL's table statistics.

my() { mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot "$@"; }
pg() { PGOPTIONS='--client-min-messages=warning' psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres "$@"; }

# source_user_create <database>: turns on the server's per-user statistics
# (userstat=1, global until the server restarts) and creates a SELECT-only
# user on the database; sets SRC_USER and SRC_PASS. The caller drops it with
# source_user_drop (e.g. in an EXIT trap). The password is random and never
# printed: pass it to the pipeline through the environment.
source_user_create() {
	SRC_USER=bench_$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
	SRC_PASS=pw$(head -c8 /dev/urandom | od -An -tx1 | tr -d ' \n')
	my -e "SET GLOBAL userstat = 1; CREATE USER '$SRC_USER'@'%' IDENTIFIED BY '$SRC_PASS'; GRANT SELECT ON \`$1\`.* TO '$SRC_USER'@'%'"
}
source_user_drop() { [ -z "${SRC_USER:-}" ] || my -e "DROP USER IF EXISTS '$SRC_USER'@'%'" || true; }

# source_cost: what the server counted for SRC_USER so far, one line:
# statements, selects, rows examined, rows sent, bytes sent, CPU seconds.
# statements = SELECT_COMMANDS + UPDATE_COMMANDS + OTHER_COMMANDS: every
# statement the server executed for the user (SELECTs, and each session's
# SET …; SHOW is not counted by MariaDB). rows examined = ROWS_READ.
source_cost_once() {
	my -N -e "SELECT COALESCE(SUM(SELECT_COMMANDS + UPDATE_COMMANDS + OTHER_COMMANDS), 0), COALESCE(SUM(SELECT_COMMANDS), 0),
		COALESCE(SUM(ROWS_READ), 0), COALESCE(SUM(ROWS_SENT), 0), COALESCE(SUM(BYTES_SENT), 0), COALESCE(SUM(CPU_TIME), 0)
		FROM information_schema.USER_STATISTICS WHERE USER = '$SRC_USER'"
}
# The server merges a session's counters as its statements end: after the
# step's process has exited, read until two readings agree.
source_cost() { stable source_cost_once; }

# stable <command>: the command's output once two readings 0.5 s apart agree
# (at most 10 s).
stable() {
	local a b i
	a=$("$@")
	for i in $(seq 20); do
		sleep 0.5
		b=$("$@")
		[ "$a" = "$b" ] && break
		a=$b
	done
	printf '%s\n' "$a"
}

# source_cost_delta <before> <after>: the step's cost, one line:
# statements selects rows_examined rows_sent kb_sent cpu_s.
source_cost_delta() {
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, /[ \t]+/); split(b, y, /[ \t]+/)
		printf "%d %d %d %d %d %.1f\n", y[1]-x[1], y[2]-x[2], y[3]-x[3], y[4]-x[4], (y[5]-x[5])/1024, y[6]-x[6] }'
}

# source_tables_read <database>: rows examined per table of the database so
# far (TABLE_STATISTICS counts every user, so read it around a step that is
# the only reader), "table rows" lines.
source_tables_read() {
	my -N -e "SELECT TABLE_NAME, ROWS_READ FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = '$1' ORDER BY TABLE_NAME"
}

# pg_writes_once <database> <schema>: rows inserted, updated and deleted so
# far, per table of the schema, "relid n table" lines. Keyed by relid: a
# table rebuilt beside the live one and moved in keeps its counts, the
# dropped one takes its (earlier) counts with it.
pg_writes_once() {
	pg -d "$1" -tA -F ' ' -c "SELECT pg_stat_clear_snapshot()" -c "SELECT relid, n_tup_ins + n_tup_upd + n_tup_del, relname FROM pg_stat_user_tables WHERE schemaname = '$2' ORDER BY relid"
}
# PostgreSQL's backends flush their counters asynchronously (at exit, or
# within a second of a commit): read until two readings agree.
pg_writes() { stable pg_writes_once "$@"; }

# pg_writes_tables <before file> <after file>: rows written per table between
# the two readings, over the tables that exist at the second (a new table
# counts whole), "rows table" lines, most first, tables not written left out.
pg_writes_tables() {
	awk 'NR == FNR { if (NF == 3) before[$1] = $2; next } NF == 3 && $2 - before[$1] > 0 { print $2 - before[$1], $3 }' "$1" "$2" | sort -k1,1nr
}
# pg_db_writes_once <database>: rows inserted, updated and deleted so far in
# the whole database (pg_stat_database: bookkeeping and temporary tables too).
pg_db_writes_once() {
	pg -d "$1" -tA -c "SELECT pg_stat_clear_snapshot()" -c "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()" | grep .
}

# source_tables_delta <before file> <after file> (of source_tables_read):
# rows examined per table between the two readings, "rows table" lines, most first.
source_tables_delta() {
	awk 'NR == FNR { before[$1] = $2; next } $2 - before[$1] > 0 { print $2 - before[$1], $1 }' "$1" "$2" | sort -k1,1nr
}

# server_cpu: CPU seconds the database servers on this machine used so far,
# one line: MariaDB (every thread of mariadbd) and PostgreSQL (every live
# postgres process, plus what the postmaster's exited backends used).
server_cpu() {
	local hz my pg pm
	hz=$(getconf CLK_TCK)
	my=$(for p in $(pgrep -x mariadbd); do awk '{ print $14 + $15 }' "/proc/$p/stat"; done | awk '{ s += $1 } END { print s + 0 }')
	pm=$(pgrep -o -x postgres)
	pg=$( { for p in $(pgrep -x postgres); do awk '{ print $14 + $15 }' "/proc/$p/stat"; done
		[ -n "$pm" ] && awk '{ print $16 + $17 }' "/proc/$pm/stat"; } 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
	awk -v m="$my" -v p="$pg" -v hz="$hz" 'BEGIN { printf "%.2f %.2f\n", m / hz, p / hz }'
}
