package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// orphans lists the replica tables the pipeline copied (they have a copy
// status) whose source table is gone and which tables.yml does not ask to
// copy (not listed, or excluded; a listed one fails as missing at the
// source instead). They are kept, and reported, until DropOrphans.
func orphans(in *inputs, cfg *tables.Config) []string {
	var out []string
	for name := range in.states {
		t, listed := cfg.Tables[name]
		if in.src.Tables[name] != nil || state.Reserved(name) || listed && !t.Exclude {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// dropOrphans drops the replica tables of names and forgets their state
// (Options.DropOrphans), each once the run checked it still holds the
// replica lock. It returns the tables dropped.
func (r *runner) dropOrphans(ctx context.Context, names []string) ([]string, error) {
	var dropped []string
	for _, name := range names {
		conn, err := r.deps.Replica.Conn(ctx)
		if err != nil {
			return dropped, fmt.Errorf("open replica connection to drop %s: %w", name, err)
		}
		err = r.dropOrphan(ctx, conn, name)
		conn.Close()
		if err != nil {
			return dropped, err
		}
		r.log.Warn("orphaned replica table dropped (its source table is gone)", "table", name)
		dropped = append(dropped, name)
	}
	return dropped, nil
}

// dropOrphan drops one orphan's table, then its state rows in one
// transaction (a run stopped between the two finds the state row and drops
// again: DROP TABLE IF EXISTS).
func (r *runner) dropOrphan(ctx context.Context, conn *sql.Conn, name string) error {
	if err := r.holds(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+quoteIdent(name)); err != nil {
		return fmt.Errorf("drop orphaned replica table %s: %w", name, err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("forget orphaned replica table %s: %w", name, err)
	}
	defer tx.Rollback()
	if err := state.Forget(ctx, tx, name); err != nil {
		return err
	}
	if err := r.holds(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Orphans lists the replica's orphaned tables (see orphans) without a
// run: for `pipeline check`. It reads the source's tables (three
// information_schema queries) and the replica's copy status.
func Orphans(ctx context.Context, source connections.SourceDB, replica connections.ReplicationDB, cfg *tables.Config) ([]string, error) {
	in := &inputs{}
	var err error
	if in.src, err = schema.Read(ctx, source); err != nil {
		return nil, fmt.Errorf("read source schema: %w", err)
	}
	if in.states, err = state.ReadAll(ctx, replica); err != nil {
		return nil, err
	}
	return orphans(in, cfg), nil
}
