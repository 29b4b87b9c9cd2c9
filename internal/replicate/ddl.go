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

// syncSchema creates the replica table from the source's SHOW CREATE TABLE,
// or alters it to the source's columns, and reports each change.
func (r *runner) syncSchema(ctx context.Context, conn *sql.Conn, p *plan) ([]Change, error) {
	create, err := r.sourceCreate(ctx, p)
	if err != nil {
		return nil, err
	}
	if p.create {
		return createTable(ctx, conn, p, create)
	}
	return alterTable(ctx, conn, p, create)
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

// alterTable makes the replica table's columns the source's in one ALTER.
func alterTable(ctx context.Context, conn *sql.Conn, p *plan, create string) ([]Change, error) {
	name := p.cfg.Name
	clauses, changes, err := diffColumns(name, p.src, p.rep, columnDefs(create))
	if err != nil || len(clauses) == 0 {
		return nil, err
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

// ensureIndexes adds to the replica table the indexes of the source it lacks
// (those left out to speed up the first copy, or new at the source), all in
// one ALTER so each is built once from sorted data.
func (r *runner) ensureIndexes(ctx context.Context, conn *sql.Conn, p *plan) error {
	name := p.cfg.Name
	srcCreate, err := r.sourceCreate(ctx, p)
	if err != nil {
		return err
	}
	var repCreate, n string
	if err := scanOne(ctx, conn, "SHOW CREATE TABLE "+quoteIdent(name), &n, &repCreate); err != nil {
		return fmt.Errorf("read replica definition of %s: %w", name, err)
	}
	have := map[string]bool{}
	for _, d := range indexDefs(repCreate) {
		have[d] = true
	}
	var add []string
	for _, d := range indexDefs(srcCreate) {
		if !have[d] {
			add = append(add, "ADD "+d)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "ALTER TABLE "+quoteIdent(name)+" "+strings.Join(add, ", ")); err != nil {
		return fmt.Errorf("build indexes of replica %s: %w", name, err)
	}
	return nil
}
