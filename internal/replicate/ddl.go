package replicate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/opendental-pipeline/pipeline/internal/state"
)

// lenientSQLMode is the replica's session mode without STRICT_ALL_TABLES,
// for applying schema drift (see alterTable).
const lenientSQLMode = "ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"

// syncSchema brings the replica table's definition in line with the
// source's: creates it, rebuilds it (the primary key changed), alters its
// columns, and drops and adds the indexes that differ. Before a change that
// leaves the rows to be copied again it records that a full copy is under
// way, so a load skips the table until that copy completes (see state).
func (r *runner) syncSchema(ctx context.Context, j *tableJob, p *plan) ([]Change, error) {
	create, err := r.sourceCreate(ctx, p)
	if err != nil {
		return nil, err
	}
	if p.create || p.rebuild || p.alter {
		if err := j.begin(p.mode, true).ClearLastKey().Exec(ctx, j.conn); err != nil {
			return nil, err
		}
	}
	switch {
	case p.create:
		return createTable(ctx, j.conn, p, create)
	case p.rebuild:
		return rebuildTable(ctx, j.conn, p, create)
	case p.alter:
		return alterTable(ctx, j.conn, p, create)
	}
	return syncIndexes(ctx, j.conn, p, create, false) // missing ones: after the copy
}

// rebuildTable drops the replica table and creates it as the source's
// definition says: its primary key changed, and rows keyed the old way
// would collapse on the new key (or never be matched again).
func rebuildTable(ctx context.Context, conn *sql.Conn, p *plan, create string) ([]Change, error) {
	if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+quoteIdent(p.cfg.Name)); err != nil {
		return nil, fmt.Errorf("drop replica table %s to rebuild it: %w", p.cfg.Name, err)
	}
	if _, err := createTable(ctx, conn, p, create); err != nil {
		return nil, err
	}
	return []Change{{Table: p.cfg.Name, Kind: "rebuild_table", From: keyText(p.rep.PrimaryKey), To: keyText(p.src.PrimaryKey)}}, nil
}

// createTable creates the replica table as the source's definition says,
// on InnoDB; a full copy leaves the plain secondary indexes for the end.
func createTable(ctx context.Context, conn *sql.Conn, p *plan, create string) ([]Change, error) {
	name := p.cfg.Name
	full := replicaDDL(create)
	ddl := full
	if p.mode == state.ModeFull {
		ddl, _ = splitIndexes(full) // built after the copy by ensureIndexes
	}
	_, err := conn.ExecContext(ctx, ddl)
	if err != nil && ddl != full {
		// e.g. an AUTO_INCREMENT column indexed only by a plain KEY: keep every index
		_, err = conn.ExecContext(ctx, full)
	}
	if err != nil && isRowSizeError(err) {
		// MyISAM allows rows InnoDB's strict mode refuses to plan for; the
		// values still fit (long columns go off-page), so relax the check.
		if _, serr := conn.ExecContext(ctx, "SET SESSION innodb_strict_mode=OFF"); serr == nil {
			_, err = conn.ExecContext(ctx, full)
			_, _ = conn.ExecContext(ctx, "SET SESSION innodb_strict_mode=DEFAULT")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create replica table %s: %w", name, err)
	}
	return []Change{{Table: name, Kind: "create_table"}}, nil
}

// alterTable makes the replica table's columns and indexes the source's in
// one ALTER (plain indexes new or changed at the source are built after the
// full copy that follows).
func alterTable(ctx context.Context, conn *sql.Conn, p *plan, create string) ([]Change, error) {
	name := p.cfg.Name
	clauses, changes, err := diffColumns(name, p.src, p.rep, columnDefs(create))
	if err != nil {
		return nil, err
	}
	repCreate, err := replicaCreate(ctx, conn, name)
	if err != nil {
		return nil, err
	}
	ixClauses, ixChanges := indexClauses(name, create, repCreate, false) // missing ones: after the copy
	clauses, changes = append(ixClauses, clauses...), append(changes, ixChanges...)
	if len(clauses) == 0 {
		return nil, nil
	}
	// The source changed existing values as it altered (e.g. NULL to '' for a
	// new NOT NULL); the replica's rows are re-copied right after, so the
	// ALTER may convert them the same lenient way.
	if _, err := conn.ExecContext(ctx, "SET @pipeline_sql_mode = @@SESSION.sql_mode, SESSION sql_mode = '"+lenientSQLMode+"'"); err != nil {
		return nil, fmt.Errorf("relax replica sql_mode: %w", err)
	}
	_, err = conn.ExecContext(ctx, "ALTER TABLE "+quoteIdent(name)+" "+strings.Join(clauses, ", "))
	if _, rerr := conn.ExecContext(ctx, "SET SESSION sql_mode = @pipeline_sql_mode"); rerr != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // never pool a session left lenient
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return changes, fmt.Errorf("apply schema drift to replica %s (%d changes): %w", name, len(changes), err)
	}
	return changes, nil
}

func isRowSizeError(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1118
}

// definitionsPerTurn is how many tables' SHOW CREATE TABLE one source turn
// (one rate-limited slot) reads: metadata statements, which read no row and
// lock no table's rows (the server answers from its table definitions).
const definitionsPerTurn = 50

// readDefinitions reads the source's SHOW CREATE TABLE of every job that
// will need it (to create, rebuild or alter its replica table, or build its
// indexes), definitionsPerTurn per source turn, instead of one turn each:
// a first run creates four hundred tables. A table whose definition cannot
// be read here (dropped meanwhile) reads it in its job, which reports why.
func (r *runner) readDefinitions(ctx context.Context, jobs []*plan) {
	var need []*plan
	for _, p := range jobs {
		if p.srcCreate == "" && (p.create || p.rebuild || p.alter || p.reindex || p.buildsIndexes()) {
			need = append(need, p)
		}
	}
	for len(need) > 0 {
		batch := need[:min(len(need), definitionsPerTurn)]
		need = need[len(batch):]
		if err := r.source(ctx, func(ctx context.Context, c *sql.Conn) error {
			for _, p := range batch {
				var n, create string
				if err := scanOne(ctx, c, "SHOW CREATE TABLE "+quoteIdent(p.cfg.Name), &n, &create); err == nil {
					p.srcCreate = create
				} else if ctx.Err() != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return
		}
	}
}

// sourceCreate returns the source's SHOW CREATE TABLE, reading it once per run.
func (r *runner) sourceCreate(ctx context.Context, p *plan) (string, error) {
	if p.srcCreate != "" {
		return p.srcCreate, nil
	}
	var n, create string
	if err := r.sourceFor(ctx, p.res, func(ctx context.Context, c *sql.Conn) error {
		return scanOne(ctx, c, "SHOW CREATE TABLE "+quoteIdent(p.cfg.Name), &n, &create)
	}); err != nil {
		return "", fmt.Errorf("read source definition of %s: %w", p.cfg.Name, err)
	}
	p.srcCreate = create
	return create, nil
}

// ensureIndexes makes the replica table's indexes the source's after the
// copy (those left out to speed up a fresh copy, or new or changed at the
// source), all in one ALTER so each is built once from sorted data; it
// returns the changes to report (none for a fresh table's own indexes).
func (r *runner) ensureIndexes(ctx context.Context, conn *sql.Conn, p *plan) ([]Change, error) {
	srcCreate, err := r.sourceCreate(ctx, p)
	if err != nil {
		return nil, err
	}
	changes, err := syncIndexes(ctx, conn, p, srcCreate, true)
	if p.create || p.rebuild {
		changes = nil
	}
	return changes, err
}

// syncIndexes drops the replica table's indexes the source lacks or
// defines otherwise and, with add, adds the source's it lacks, in one
// ALTER, and reports each.
func syncIndexes(ctx context.Context, conn *sql.Conn, p *plan, srcCreate string, add bool) ([]Change, error) {
	name := p.cfg.Name
	repCreate, err := replicaCreate(ctx, conn, name)
	if err != nil {
		return nil, err
	}
	clauses, changes := indexClauses(name, srcCreate, repCreate, add)
	if len(clauses) == 0 {
		return nil, nil
	}
	if _, err := conn.ExecContext(ctx, "ALTER TABLE "+quoteIdent(name)+" "+strings.Join(clauses, ", ")); err != nil {
		return nil, fmt.Errorf("build indexes of replica %s: %w", name, err)
	}
	return changes, nil
}

// replicaCreate reads the replica table's SHOW CREATE TABLE.
func replicaCreate(ctx context.Context, conn *sql.Conn, name string) (string, error) {
	var n, create string
	if err := scanOne(ctx, conn, "SHOW CREATE TABLE "+quoteIdent(name), &n, &create); err != nil {
		return "", fmt.Errorf("read replica definition of %s: %w", name, err)
	}
	return create, nil
}
