package load

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// The changed-keys log (internal/state) lists keys of replica rows a keyed
// writer changed (verify's repair, for one). Every load applies the log
// after the id it last applied, whatever the table's mode: an incremental
// load would never see a row re-copied with an old watermark. The logged
// keys' replica rows are upserted into raw and raw's rows of logged keys
// the replica no longer has are deleted. When every change since the
// loaded change_seq logged its keys, those rows are all the load does
// (ModeKeys), even for a full_table table.

// keysPerQuery is how many logged keys one replica read asks for.
const keysPerQuery = 500

// keyedOnly switches the table to ModeKeys when its replica changes since
// the change_seq raw holds were all logged with their keys (read in the
// load's snapshot). A rebuild the plan asked for (first load, schema
// change, --full-refresh) stays one.
func (tl *tableLoad) keyedOnly(ctx context.Context) error {
	st, snap := tl.st, tl.snap
	if tl.opts.FullRefresh || !tl.exists || st == nil || st.Signature == nil || len(tl.r.Changes) > 0 ||
		st.ChangeSeq == nil || snap.changeSeq == nil || len(tl.p.key) == 0 || snap.maxChangeID <= st.LastChangeID {
		return nil
	}
	keyed, err := state.KeyedSince(ctx, tl.rc, tl.p.src.Name, *st.ChangeSeq, *snap.changeSeq)
	if err != nil || !keyed {
		return err
	}
	tl.r.Mode = ModeKeys
	tl.r.Reason = fmt.Sprintf("every change since change_seq %d logged its keys: only those rows", *st.ChangeSeq)
	return nil
}

// keyed loads only the rows of the logged keys (and the recorded deletes),
// in one transaction.
func (tl *tableLoad) keyed(ctx context.Context) error {
	ptx, err := tl.beginStaged(ctx, "keyed")
	if err != nil {
		return err
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	return tl.finishStaged(ctx, ptx, "keyed")
}

// applyLogged stages the replica rows of the keys logged after the last
// applied id (those not staged already) and deletes from raw the logged
// keys the replica no longer has.
func (tl *tableLoad) applyLogged(ctx context.Context, ptx pgx.Tx) error {
	if tl.snap.maxChangeID <= tl.st.LastChangeID {
		return nil
	}
	keys, err := tl.loggedKeys(ctx)
	if err != nil || len(keys) == 0 {
		return err
	}
	if err := tl.stageLoggedKeys(ctx, ptx, keys); err != nil {
		return err
	}
	if err := tl.stageLoggedRows(ctx, ptx, keys); err != nil {
		return err
	}
	return tl.deleteLoggedGone(ctx, ptx)
}

// loggedKeys reads the keys logged after the last applied id, each once.
func (tl *tableLoad) loggedKeys(ctx context.Context) ([][]string, error) {
	ks, err := state.ReadChangedKeys(ctx, tl.rc, state.ChangeRange{Table: tl.p.src.Name, After: tl.st.LastChangeID,
		Through: tl.snap.maxChangeID, KeyLen: len(tl.p.key)})
	if err != nil {
		return nil, err
	}
	defer ks.Close()
	seen := map[string]bool{}
	var out [][]string
	for ks.Next() {
		vals, _ := ks.Values()
		key := make([]string, len(vals))
		for i, v := range vals {
			key[i] = v.(string)
		}
		if k := state.EncodeKey(key); !seen[k] {
			seen[k] = true
			out = append(out, key)
		}
	}
	if err := ks.Err(); err != nil {
		return nil, err
	}
	return out, ks.Close()
}

// stageLoggedKeys copies the keys into etl_logged (text columns k0…).
func (tl *tableLoad) stageLoggedKeys(ctx context.Context, ptx pgx.Tx, keys [][]string) error {
	names, defs := tl.keyColumns()
	if _, err := ptx.Exec(ctx, "CREATE TEMP TABLE etl_logged ("+strings.Join(defs, ", ")+") ON COMMIT DROP"); err != nil {
		return fmt.Errorf("create logged-keys staging: %w", err)
	}
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = make([]any, len(k))
		for j, v := range k {
			rows[i][j] = v
		}
	}
	if _, err := ptx.CopyFrom(ctx, pgx.Identifier{"etl_logged"}, names, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("stage logged keys of %s: %w", tl.p.src.Name, err)
	}
	return nil
}

func (tl *tableLoad) keyColumns() (names, defs []string) {
	for i := range tl.p.key {
		names = append(names, "k"+strconv.Itoa(i))
		defs = append(defs, names[i]+" text")
	}
	return names, defs
}

// stageLoggedRows copies the replica rows of keys (keysPerQuery per read,
// in the load's snapshot) into etl_stage, skipping keys already staged.
func (tl *tableLoad) stageLoggedRows(ctx context.Context, ptx pgx.Tx, keys [][]string) error {
	p := tl.p
	if _, err := ptx.Exec(ctx, "CREATE TEMP TABLE etl_keyed (LIKE "+qualified(p.target)+") ON COMMIT DROP"); err != nil {
		return fmt.Errorf("create keyed staging: %w", err)
	}
	key := keyset.Of(p.src)
	for len(keys) > 0 {
		n := min(len(keys), keysPerQuery)
		read, _, err := tl.copyRows(ctx, ptx.Conn().PgConn(), copySpec{
			copySQL: "COPY pg_temp.etl_keyed (" + p.columnList("") + ") FROM STDIN", query: p.selectSQL(" WHERE " + key.InLiteral(keys[:n]))})
		tl.r.RowsRead += read
		if err != nil {
			return err
		}
		keys = keys[n:]
	}
	_, err := ptx.Exec(ctx, "INSERT INTO pg_temp.etl_stage SELECT k.* FROM pg_temp.etl_keyed k WHERE NOT EXISTS"+
		" (SELECT 1 FROM pg_temp.etl_stage s WHERE "+tl.keyMatch("s", "k")+")")
	if err != nil {
		return fmt.Errorf("stage logged rows of %s: %w", p.src.Name, err)
	}
	return nil
}

// deleteLoggedGone deletes raw's rows of logged keys the replica no longer
// has (none of them was staged).
func (tl *tableLoad) deleteLoggedGone(ctx context.Context, ptx pgx.Tx) error {
	p := tl.p
	var match []string
	for i, k := range p.key {
		c := p.cols[k]
		match = append(match, fmt.Sprintf("t.%s = d.k%d::%s", typemap.QuotePG(c.Target), i, c.Mapping.Target))
	}
	tag, err := ptx.Exec(ctx, "DELETE FROM "+qualified(p.target)+" t USING pg_temp.etl_logged d WHERE "+strings.Join(match, " AND ")+
		" AND NOT EXISTS (SELECT 1 FROM pg_temp.etl_stage s WHERE "+tl.keyMatch("s", "t")+")")
	if err != nil {
		return fmt.Errorf("delete logged keys from %s: %w", p.target, err)
	}
	tl.r.RowsDeleted += tag.RowsAffected()
	return nil
}

// keyMatch is "a.k1 = b.k1 AND …" over the raw key columns.
func (tl *tableLoad) keyMatch(a, b string) string {
	var out []string
	for _, k := range tl.p.key {
		c := typemap.QuotePG(tl.p.cols[k].Target)
		out = append(out, a+"."+c+" = "+b+"."+c)
	}
	return strings.Join(out, " AND ")
}

// upsertStaged upserts etl_stage into raw and checks raw's row count
// against the replica snapshot's: a mismatch applies nothing.
func (tl *tableLoad) upsertStaged(ctx context.Context, ptx pgx.Tx) error {
	p, r := tl.p, tl.r
	tag, err := ptx.Exec(ctx, p.upsertSQL("pg_temp.etl_stage"), tl.stampArgs()...)
	if err != nil {
		return fmt.Errorf("upsert changed rows into %s: %w", p.target, err)
	}
	r.RowsWritten = tag.RowsAffected()
	if err := ptx.QueryRow(ctx, "SELECT count(*) FROM "+qualified(p.target)).Scan(&r.RawRows); err != nil {
		return fmt.Errorf("count raw %s: %w", p.target, err)
	}
	if r.RawRows != tl.snap.count {
		return fmt.Errorf("row count mismatch after %s load: replica %s has %d rows, raw %s would have %d "+
			"(rows outside the watermark or unrecorded deletes); nothing applied — run `pipeline load --full-refresh --tables %s`",
			r.Mode, p.src.Name, tl.snap.count, p.target, r.RawRows, p.src.Name)
	}
	return nil
}
