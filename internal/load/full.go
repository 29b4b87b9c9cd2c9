package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// full builds the table beside the live one and swaps it in.
func (tl *tableLoad) full(ctx context.Context) error {
	p, snap, r := tl.p, tl.snap, tl.r
	// One transaction from CREATE to swap: a failure leaves nothing behind,
	// and COPY FREEZE (allowed into a table created in the same transaction)
	// writes rows already frozen, sparing the first readers and vacuum from
	// rewriting every page to set hint bits.
	ptx, err := tl.l.raw.Begin(ctx) // holds one pool connection until Commit/Rollback
	if err != nil {
		return fmt.Errorf("begin full load: %w", err)
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	written, err := tl.build(ctx, ptx)
	if err != nil {
		return err
	}
	raw, err := tl.swap(ctx, ptx, written)
	if err != nil {
		return err
	}
	shapes, err := readShapes(ctx, ptx, &p.target) // what the next load compares raw with
	if err != nil {
		return err
	}
	tl.raw = shapes[p.target]
	r.RawRows = raw
	if raw != snap.count {
		return fmt.Errorf("row count mismatch: replica %s has %d rows, raw %s would have %d; table left unchanged", p.src.Name, snap.count, p.target, raw)
	}
	if err := writeSuccess(ctx, ptx, tl.success(snap.watermark, snap.maxDelID)); err != nil {
		return err
	}
	if err := tl.commit(ctx, ptx, "full"); err != nil {
		return err
	}
	return nil
}

// build creates the new table beside the live one, fills it with every
// replica row and adds its key; it returns the rows written.
func (tl *tableLoad) build(ctx context.Context, ptx pgx.Tx) (int64, error) {
	p, snap, r := tl.p, tl.snap, tl.r
	tmp := p.building()
	if _, err := ptx.Exec(ctx, "DROP TABLE IF EXISTS "+tmp); err != nil {
		return 0, fmt.Errorf("drop leftover %s: %w", tmp, err)
	}
	if _, err := ptx.Exec(ctx, p.createSQL(tmp)); err != nil {
		return 0, fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := tl.stampDefault(ctx, ptx, true); err != nil {
		return 0, err
	}
	var read, written int64
	var err error
	if tl.carryMarkers() {
		read, written, err = tl.copyCarryingMarkers(ctx, ptx)
	} else {
		read, written, err = tl.copyRows(ctx, ptx.Conn().PgConn(), copySpec{
			copySQL: "COPY " + tmp + " (" + p.columnList("") + ") FROM STDIN WITH (FREEZE)", query: p.selectSQL("")})
	}
	r.RowsRead, r.RowsWritten = read, written
	r.Conversions = conversionMap(p, tl.counts)
	if err != nil {
		return 0, err
	}
	if written != snap.count {
		return 0, fmt.Errorf("row count mismatch: replica %s has %d rows, %d copied into raw; table left unchanged", p.src.Name, snap.count, written)
	}
	if err := tl.stampDefault(ctx, ptx, false); err != nil {
		return 0, err
	}
	if len(p.key) > 0 {
		if _, err := ptx.Exec(ctx, p.addKeySQL(tmp)); err != nil {
			return 0, fmt.Errorf("add primary key to %s: %w", tmp, err)
		}
	}
	return written, nil
}

// swap replaces the live table by the new one inside ptx. Views built on
// the live table (dbt staging) would block a DROP, so when there are any and
// the old columns are all kept (new ones may be added) the rows are moved
// instead, keeping the views. They are moved with DELETE, not TRUNCATE:
// TRUNCATE is not MVCC-safe, and a repeatable-read reader whose snapshot
// predates the commit (pg_dump, a dbt run in one transaction) would find
// the table empty; after DELETE it still sees the old rows.
//
// It returns the live table's row count afterwards: the COPY's count when the
// new table is renamed in (nothing else writes to it), the INSERT's when rows
// are moved, so the check against the replica needs no extra scan.
func (tl *tableLoad) swap(ctx context.Context, ptx pgx.Tx, copied int64) (int64, error) {
	p := tl.p
	views, err := viewCount(ctx, ptx, p)
	if err != nil {
		return 0, err
	}
	stmts, err := tl.swapSQL(views)
	if err != nil {
		return 0, err
	}
	if views == 0 {
		if err := freeName(ctx, ptx, p.target); err != nil {
			return 0, err
		}
	}
	var moved int64
	for _, q := range stmts {
		tag, err := ptx.Exec(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("swap %s: %w", p.target, err)
		}
		if strings.HasPrefix(q, "INSERT") {
			moved = tag.RowsAffected()
		}
	}
	if views > 0 {
		return moved, nil
	}
	return copied, nil
}

// viewCount is the number of views that depend on the live raw table.
func viewCount(ctx context.Context, q pgxQuerier, p *plan) (int, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT count(DISTINCT rw.ev_class) FROM pg_depend d
		JOIN pg_rewrite rw ON rw.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
		WHERE d.refobjid = to_regclass($1) AND rw.ev_class <> d.refobjid`, qualified(p.target)).Scan(&n); err != nil {
		return 0, fmt.Errorf("find views on %s: %w", p.target, err)
	}
	return n, nil
}

// swapSQL is the statements swap runs (p.swapSQL), refusing to move rows
// under views into a table changed by hand: it would keep the hand-made
// shape (a narrower type would change values).
func (tl *tableLoad) swapSQL(views int) ([]string, error) {
	if views > 0 && byHand(tl.r.Changes) {
		return nil, fmt.Errorf("%s.%s was changed by hand (%s) and %d view(s) depend on it, so it cannot be rebuilt in place;"+
			" drop the views (dbt rebuilds them) and load again", Schema, tl.p.target, strings.Join(tl.r.Changes, "; "), views)
	}
	return tl.p.swapSQL(tl.st, views, tl.r.Changes)
}

// swapSQL is the statements swap runs: with views on the live table, the
// rows moved under them (new columns added first); else the new table
// renamed in. changes describe the shape change for the error when views
// block it.
func (p *plan) swapSQL(st *loadState, views int, changes []string) ([]string, error) {
	tmp := p.building()
	if views > 0 {
		added, ok := addedColumns(st, p)
		if !ok {
			return nil, fmt.Errorf("raw %s changed shape (%s) and %d view(s) depend on it; drop them (dbt rebuilds them) and load again", p.target, strings.Join(changes, "; "), views)
		}
		var stmts []string
		for _, c := range added {
			stmts = append(stmts, "ALTER TABLE "+qualified(p.target)+" ADD COLUMN "+typemap.QuotePG(c[0])+" "+c[1])
		}
		return append(stmts,
			"DELETE FROM "+qualified(p.target),
			"INSERT INTO "+qualified(p.target)+" ("+p.rawColumnList()+") SELECT "+p.rawColumnList()+" FROM "+tmp,
			"DROP TABLE "+tmp), nil
	}
	// The new table moves into raw under its own name with its key; the
	// key's name ends with a space, so no source table's name is taken.
	return []string{
		"DROP TABLE IF EXISTS " + qualified(p.target),
		"ALTER TABLE " + tmp + " SET SCHEMA " + typemap.QuotePG(Schema),
	}, nil
}

// addedColumns returns the planned raw columns (name, type; the loaded-at
// marker included) the live table lacks, with ok false unless every live
// column is kept with its type and the key is the same: only then can the
// live table take the new rows in place (every row is replaced, so a
// column that became hashed, or a new key, needs no more).
func addedColumns(st *loadState, p *plan) (added [][2]string, ok bool) {
	if st == nil || st.Signature == nil {
		return nil, false
	}
	var old, nu signature
	if json.Unmarshal([]byte(*st.Signature), &old) != nil || json.Unmarshal([]byte(p.signature), &nu) != nil || !slices.Equal(old.Key, nu.Key) {
		return nil, false
	}
	planned := map[string]string{}
	for _, c := range nu.Columns {
		planned[c[0]] = c[1]
	}
	live := map[string]bool{}
	for _, c := range old.Columns {
		if planned[c[0]] != c[1] {
			return nil, false
		}
		live[c[0]] = true
	}
	for _, c := range nu.Columns {
		if !live[c[0]] {
			added = append(added, c)
		}
	}
	return added, true
}

// freeName renames the primary key of a raw table that holds the name a new
// table needs in raw (indexes and tables share one namespace): a key made
// by an older version, named "<table>_pkey", which a source table may be
// called too. It gets today's name (pkeyName), which no table can have.
func freeName(ctx context.Context, tx pgx.Tx, target string) error {
	var table string
	err := tx.QueryRow(ctx, `SELECT t.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
		WHERE x.indisprimary AND i.relnamespace = to_regnamespace($1) AND i.relname = $2`, typemap.QuotePG(Schema), target).Scan(&table)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for an index named %s in %s: %w", target, Schema, err)
	}
	if _, err := tx.Exec(ctx, "ALTER INDEX "+qualified(target)+" RENAME TO "+typemap.QuotePG(pkeyName(table))); err != nil {
		return fmt.Errorf("rename the primary key of %s.%s, which holds the name %s: %w", Schema, table, target, err)
	}
	return nil
}
