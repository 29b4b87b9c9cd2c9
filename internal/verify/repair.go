package verify

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// repairBatch is the most keys one source read of a repair asks for: a
// short primary-key lookup.
const repairBatch = 500

// Repaired says what a repair wrote, for the command to finish it: load the
// tables (the load applies the changed-keys log), re-copy the keyless ones,
// then verify them all again.
type Repaired struct {
	Tables []string // tables whose replica rows or changed-keys log were written
	Whole  []string // tables without a usable key whose replica differs: only a whole copy repairs them
}

// Repair repairs what res found, table by table, and records the counts in
// res (Diff.Repaired; TableResult.RepairErr when a table could not be).
// The caller holds the replica and warehouse locks.
//
// Source ↔ replica: the differing keys are read again from the source
// (repairBatch keys per rate-limited query), written into the replica
// exactly as replication writes rows, the keys the source no longer has
// deleted (and recorded in the deleted-rows log), and every key logged in
// the changed-keys log, all in one commit per batch. Replica ↔ raw: the
// differing keys are logged, so the next load re-applies those rows. Nothing
// else is rewritten.
func Repair(ctx context.Context, deps Deps, opts Options, res *Result) (*Repaired, error) {
	r, err := newRunner(deps, opts)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := state.Ensure(ctx, deps.Replica); err != nil {
		return nil, err
	}
	src, err := r.sourceSchema(ctx)
	if err != nil {
		return nil, err
	}
	out := &Repaired{}
	for _, t := range res.Tables {
		if t.Err != nil || !t.Differs() {
			continue
		}
		rp := &tableRepair{r: r, res: t, cfg: deps.Tables.Tables[t.Table], src: src.Tables[t.Table]}
		whole, err := rp.run(ctx)
		t.RepairErr = err
		switch {
		case err != nil:
			r.log.Error("table not repaired", "table", t.Table, "err", err)
		case whole:
			out.Whole = append(out.Whole, t.Table)
		default:
			out.Tables = append(out.Tables, t.Table)
		}
	}
	return out, nil
}

// sourceSchema reads the source's tables through a source connection.
func (r *runner) sourceSchema(ctx context.Context) (*schema.Database, error) {
	var src *schema.Database
	if err := r.source(ctx, nil, func(ctx context.Context, c *sql.Conn) error {
		var err error
		src, err = schema.Read(ctx, c)
		return err
	}); err != nil {
		return nil, fmt.Errorf("read source schema: %w", err)
	}
	return src, nil
}

// tableRepair repairs one table.
type tableRepair struct {
	r   *runner
	res *TableResult
	cfg *tables.Table
	src *schema.Table
	key keyset.Key
}

// run repairs the table; whole reports a keyless table only a whole copy
// repairs.
func (rp *tableRepair) run(ctx context.Context) (whole bool, err error) {
	t := rp.res
	if rp.src == nil || rp.cfg == nil {
		return false, fmt.Errorf("table %s is no longer in the source or tables.yml", t.Table)
	}
	if t.SourceReplica.Keyless || t.ReplicaRaw.Keyless {
		return rp.keyless(ctx)
	}
	if t.SourceReplica.Truncated || t.ReplicaRaw.Truncated {
		return false, fmt.Errorf("more than %d rows of %s differ: re-copy it whole with `pipeline replicate --full-refresh --tables %s` and `pipeline load --full-refresh --tables %s`",
			maxKeys, t.Table, t.Table, t.Table)
	}
	rp.key = keyset.Of(rp.src)
	keys := t.SourceReplica.Keys()
	for len(keys) > 0 {
		n := min(len(keys), repairBatch)
		if err := rp.recopy(ctx, keys[:n]); err != nil {
			return false, err
		}
		t.SourceReplica.Repaired += int64(n)
		keys = keys[n:]
	}
	if raw := rp.rawOnly(); len(raw) > 0 {
		if err := rp.logRaw(ctx, raw); err != nil {
			return false, err
		}
	}
	t.ReplicaRaw.Repaired = t.ReplicaRaw.Differing()
	return false, nil
}

// recopy re-reads keys from the source and makes the replica hold exactly
// those rows, in one commit with their log entries.
func (rp *tableRepair) recopy(ctx context.Context, keys [][]string) error {
	name := rp.cfg.Name
	pred, args := rp.key.In(keys)
	q := query{sql: "SELECT " + rowcopy.SelectList(rp.src.Columns) + " FROM " + keyset.Quote(name) + byKey + " WHERE " + pred, args: args}
	f := &rowcopy.File{KeepKeys: true}
	if err := rp.r.source(ctx, &rp.res.SourceQueries, func(ctx context.Context, c *sql.Conn) error {
		return readRows(ctx, c, q, rp.keyIndexes(), f)
	}); err != nil {
		return fmt.Errorf("read %s from source for repair: %w", name, err)
	}
	have := map[string]bool{}
	for _, k := range f.Keys {
		have[k] = true
	}
	var gone [][]string
	for _, k := range keys {
		if !have[state.EncodeKey(k)] {
			gone = append(gone, k)
		}
	}
	return rp.commit(ctx, f, keys, gone)
}

// commit writes the re-read rows, deletes the gone keys and logs them all.
func (rp *tableRepair) commit(ctx context.Context, f *rowcopy.File, keys, gone [][]string) error {
	name := rp.cfg.Name
	tx, err := rp.r.deps.Replica.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin replica transaction for %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := rowcopy.Load(ctx, tx, name, rp.src.Columns, f); err != nil {
		return err
	}
	now := rp.r.now()
	if len(gone) > 0 {
		pred, args := rp.key.In(gone)
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+keyset.Quote(name)+" WHERE "+pred, args...); err != nil {
			return fmt.Errorf("delete repaired rows of %s: %w", name, err)
		}
		if err := state.RecordDeletes(ctx, tx, name, gone, now); err != nil {
			return err
		}
	}
	if _, err := state.LogChanges(ctx, tx, state.Changes{Table: name, Keys: keys, Reason: state.ReasonRepair, At: now}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit repair of %s: %w", name, err)
	}
	return nil
}

// rawOnly is the keys that differ between replica and raw and were not
// just logged by the source repair.
func (rp *tableRepair) rawOnly() [][]string {
	logged := map[string]bool{}
	for _, k := range rp.res.SourceReplica.Keys() {
		logged[state.EncodeKey(k)] = true
	}
	var out [][]string
	for _, k := range rp.res.ReplicaRaw.Keys() {
		if !logged[state.EncodeKey(k)] {
			out = append(out, k)
		}
	}
	return out
}

// logRaw logs keys whose replica row is right and raw's copy is not.
func (rp *tableRepair) logRaw(ctx context.Context, keys [][]string) error {
	tx, err := rp.r.deps.Replica.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin replica transaction for %s: %w", rp.cfg.Name, err)
	}
	defer tx.Rollback()
	if _, err := state.LogChanges(ctx, tx, state.Changes{Table: rp.cfg.Name, Keys: keys, Reason: state.ReasonRawRepair, At: rp.r.now()}); err != nil {
		return err
	}
	return tx.Commit()
}

// keyless: a replica that differs from the source needs a whole copy
// (replication copies keyless tables whole every run); a raw table that
// differs from the replica is reloaded whole by the load once the
// replica's change_seq moves.
func (rp *tableRepair) keyless(ctx context.Context) (bool, error) {
	t := rp.res
	if !t.SourceReplica.Identical() {
		return true, nil
	}
	if err := state.For(rp.cfg.Name).BumpChangeSeq().Exec(ctx, rp.r.deps.Replica); err != nil {
		return false, err
	}
	t.ReplicaRaw.Repaired = t.ReplicaRaw.Differing()
	return false, nil
}

func (rp *tableRepair) keyIndexes() []int {
	var idx []int
	for _, k := range rp.key.Cols {
		for i, c := range rp.src.Columns {
			if c.Name == k {
				idx = append(idx, i)
			}
		}
	}
	return idx
}

// query is a statement and its arguments.
type query struct {
	sql  string
	args []any
}

// readRows adds the rows of q to f, listing their keys (columns idx).
func readRows(ctx context.Context, c *sql.Conn, q query, idx []int, f *rowcopy.File) error {
	f.Reset()
	rows, err := c.QueryContext(ctx, q.sql, q.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	key := make([]string, len(idx))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		f.Add(vals)
		for i, j := range idx {
			key[i] = string(vals[j])
		}
		f.Keys = append(f.Keys, state.EncodeKey(key))
	}
	return rows.Err()
}
