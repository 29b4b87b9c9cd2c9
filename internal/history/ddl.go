package history

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema is our own PostgreSQL schema: never raw, which belongs to the
// source's tables.
const Schema = "pipeline"

// Table names, schema-qualified.
const (
	RunTable   = Schema + ".etl_run_history"
	TableTable = Schema + ".etl_table_history"
	// FreshnessView answers "when was this table last confirmed current,
	// and last loaded": the one definition status, metrics and dbt's
	// source freshness (`pipeline dbt-sources`) share.
	FreshnessView = Schema + ".etl_table_freshness"
)

// ddlLockKey serialises history DDL across processes ("odhist" in ASCII),
// so two first runs do not race on CREATE TABLE IF NOT EXISTS.
const ddlLockKey int64 = 0x6f64_6869_7374

// ErrPrivilege marks DDL refused for lack of a privilege; the message says
// which GRANT fixes it.
var ErrPrivilege = errors.New("missing PostgreSQL privilege for the run history")

var createRuns = `CREATE TABLE ` + RunTable + ` (
	run_id           text PRIMARY KEY,
	command          text NOT NULL,
	started_at       timestamptz NOT NULL,
	finished_at      timestamptz NOT NULL,
	duration_seconds double precision NOT NULL,
	status           text NOT NULL,
	exit_code        integer NOT NULL,
	tables_total     integer NOT NULL,
	tables_ok        integer NOT NULL,
	tables_failed    integer NOT NULL,
	tables_differ    integer NOT NULL,
	tables_stopped   integer NOT NULL,
	rows_read        bigint NOT NULL,
	rows_written     bigint NOT NULL,
	rows_deleted     bigint NOT NULL,
	conversions      bigint NOT NULL,
	schema_changes   integer NOT NULL,
	source_queries   bigint NOT NULL,
	error            text,
	report_version   integer NOT NULL,
	report           jsonb NOT NULL
)`

var createTables = `CREATE TABLE ` + TableTable + ` (
	run_id            text NOT NULL REFERENCES ` + RunTable + ` (run_id) ON DELETE CASCADE,
	table_name        text NOT NULL,
	phase             text NOT NULL,
	command           text NOT NULL,
	mode              text NOT NULL,
	status            text NOT NULL,
	started_at        timestamptz NOT NULL,
	finished_at       timestamptz NOT NULL,
	duration_seconds  double precision NOT NULL,
	rows_read         bigint NOT NULL,
	rows_written      bigint NOT NULL,
	rows_deleted      bigint NOT NULL,
	conversions       jsonb NOT NULL,
	conversions_total bigint NOT NULL,
	schema_changes    text[] NOT NULL,
	source_queries    bigint NOT NULL,
	error             text,
	verify            jsonb,
	PRIMARY KEY (run_id, table_name, phase)
)`

var indexes = []string{
	`CREATE INDEX etl_run_history_started ON ` + RunTable + ` (started_at DESC)`,
	`CREATE INDEX etl_run_history_command_started ON ` + RunTable + ` (command, started_at DESC)`,
	// "latest success / failure of this table in this phase"
	`CREATE INDEX etl_table_history_latest ON ` + TableTable + ` (table_name, phase, status, started_at DESC)`,
}

// createFreshness defines "confirmed current" once, for status (through
// Store.Tables) and for dbt's freshness checks: a table is confirmed current
// as of the start of its latest successful replicate that a successful load
// started after (raw then holds what that replicate read; a replicate that
// found nothing to change counts), or of its latest successful verify.
// last_loaded_at is the end of its latest successful load, changes or not;
// last_changed_at that of the latest successful load that wrote or deleted
// rows in raw.
var createFreshness = `CREATE VIEW ` + FreshnessView + ` AS
WITH confirmed AS (
	SELECT table_name, max(started_at) AS at FROM (
		SELECT r.table_name, r.started_at FROM ` + TableTable + ` r
		WHERE r.phase = 'replicate' AND r.status = 'ok' AND EXISTS (
			SELECT 1 FROM ` + TableTable + ` l
			WHERE l.table_name = r.table_name AND l.phase = 'load' AND l.status = 'ok' AND l.started_at >= r.finished_at)
		UNION ALL
		SELECT table_name, started_at FROM ` + TableTable + ` WHERE phase = 'verify' AND status = 'ok'
	) c GROUP BY table_name
), loaded AS (
	SELECT table_name, max(finished_at) AS at,
		max(finished_at) FILTER (WHERE rows_written > 0 OR rows_deleted > 0) AS changed
	FROM ` + TableTable + ` WHERE phase = 'load' AND status = 'ok' GROUP BY table_name
)
SELECT t.table_name, c.at AS last_confirmed_current_at, l.at AS last_loaded_at, l.changed AS last_changed_at
FROM (SELECT DISTINCT table_name FROM ` + TableTable + `) t
LEFT JOIN confirmed c USING (table_name)
LEFT JOIN loaded l USING (table_name)`

var freshnessComments = []string{
	"table_name", "source table name",
	"last_confirmed_current_at", "raw matched the source as of this instant: start of the latest successful replicate a successful load started after (nothing to change counts), or of the latest successful verify; NULL: never",
	"last_loaded_at", "end of the latest successful load of the table into raw, whether or not it changed rows",
	"last_changed_at", "end of the latest successful load that wrote or deleted rows in raw",
}

// columnComments document the interface dbt and dashboards query (the
// README's "Run history" table says the same).
var columnComments = map[string][]string{
	RunTable: {
		"run_id", "unique id of the run, sorts by start time (report.run_id)",
		"command", "run | replicate | load | verify",
		"started_at", "when the run started",
		"finished_at", "when the run ended",
		"duration_seconds", "wall time of the run",
		"status", "ok | failed | config_error | locked | unavailable | outside_window | stopped_by_window | interrupted",
		"exit_code", "the process exit code (README, Exit codes)",
		"tables_total", "distinct tables the run touched",
		"tables_ok", "tables whose every phase ended ok",
		"tables_failed", "tables with a failed phase",
		"tables_differ", "verify: tables where a hop found differences",
		"tables_stopped", "tables stopped by the window or a signal after a committed chunk (resume next run)",
		"rows_read", "rows read, all tables and phases",
		"rows_written", "rows written, all tables and phases",
		"rows_deleted", "rows deleted, all tables and phases",
		"conversions", "values converted on purpose by the load (zero dates to NULL, NUL bytes stripped, ...)",
		"schema_changes", "schema changes applied (columns added, changed, dropped; tables created)",
		"source_queries", "queries sent to the clinic's source database",
		"error", "why the run as a whole stopped, when it did",
		"report_version", "version of the JSON in report",
		"report", "the whole run result (README, JSON result)",
	},
	TableTable: {
		"run_id", "the run (etl_run_history.run_id)",
		"table_name", "source table name",
		"phase", "replicate (source to replica) | load (replica to raw) | verify",
		"command", "the command of the run",
		"mode", "full | incremental | shadow | unchanged | ... (how the table was handled)",
		"status", "ok | failed | stopped | differs; ok includes 'nothing to change' (confirmed current)",
		"started_at", "when the table's phase started",
		"finished_at", "when the table's phase ended",
		"duration_seconds", "wall time of the table's phase",
		"rows_read", "rows read from the phase's input",
		"rows_written", "rows written to the phase's output",
		"rows_deleted", "rows deleted from the phase's output",
		"conversions", "values converted on purpose: {column: {kind: count}}",
		"conversions_total", "sum of conversions",
		"schema_changes", "schema changes applied, one line each",
		"source_queries", "queries sent to the clinic's source database",
		"error", "why the table's phase failed",
		"verify", "verify only: per hop identical, missing, extra, changed, sample keys",
	},
}

// Ensure creates the schema, tables and indexes that are missing. It is
// safe to call from several processes at once, and needs no privilege when
// everything exists (CREATE SCHEMA IF NOT EXISTS would still demand CREATE
// on the database, so what exists is looked up first).
func (s *Store) Ensure(ctx context.Context) error {
	if s.ensured.Load() {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("creating the run history: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ddlLockKey); err != nil {
		return fmt.Errorf("creating the run history: %w", err)
	}
	var hasSchema, hasRuns, hasTables, hasView bool
	err = tx.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL, to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL, to_regclass($4) IS NOT NULL`,
		Schema, RunTable, TableTable, FreshnessView).Scan(&hasSchema, &hasRuns, &hasTables, &hasView)
	if err != nil {
		return fmt.Errorf("creating the run history: %w", err)
	}
	if !hasSchema {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+Schema); err != nil {
			return privilegeError(ctx, s, "creating schema "+Schema, err)
		}
	}
	if !hasRuns {
		if err := createTable(ctx, tx, RunTable, createRuns, indexes[:2]); err != nil {
			return privilegeError(ctx, s, "creating "+RunTable, err)
		}
	}
	if !hasTables {
		if err := createTable(ctx, tx, TableTable, createTables, indexes[2:]); err != nil {
			return privilegeError(ctx, s, "creating "+TableTable, err)
		}
	}
	if !hasView {
		if err := createView(ctx, tx); err != nil {
			return privilegeError(ctx, s, "creating "+FreshnessView, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("creating the run history: %w", err)
	}
	s.ensured.Store(true)
	return nil
}

func createTable(ctx context.Context, tx pgx.Tx, name, ddl string, idx []string) error {
	stmts := append([]string{ddl}, idx...)
	cols := columnComments[name]
	for i := 0; i+1 < len(cols); i += 2 {
		stmts = append(stmts, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS '%s'", name, cols[i], strings.ReplaceAll(cols[i+1], "'", "''")))
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

func createView(ctx context.Context, tx pgx.Tx) error {
	stmts := []string{createFreshness, "COMMENT ON VIEW " + FreshnessView + " IS 'when each table was last confirmed current and last loaded (README, Run history)'"}
	for i := 0; i+1 < len(freshnessComments); i += 2 {
		stmts = append(stmts, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS '%s'", FreshnessView, freshnessComments[i], strings.ReplaceAll(freshnessComments[i+1], "'", "''")))
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// privilegeError names the GRANT that fixes a refused CREATE.
func privilegeError(ctx context.Context, s *Store, doing string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege
		return fmt.Errorf("%s: %w", doing, err)
	}
	db, user := "<database>", "<user>"
	// The failed transaction cannot be asked; the pool gives a fresh connection.
	_ = s.pool.QueryRow(ctx, "SELECT current_database(), current_user").Scan(&db, &user)
	fix := fmt.Sprintf("GRANT CREATE ON DATABASE %q TO %q, or create the schema for it once: CREATE SCHEMA %s AUTHORIZATION %q", db, user, Schema, user)
	if doing != "creating schema "+Schema {
		fix = fmt.Sprintf("GRANT USAGE, CREATE ON SCHEMA %s TO %q", Schema, user)
	}
	return fmt.Errorf("%w: %s: %s. The pipeline keeps its run history in its own schema %q; to allow it: %s",
		ErrPrivilege, doing, pgErr.Message, Schema, fix)
}
