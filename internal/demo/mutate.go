package demo

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/opendental"
)

// MutateOptions controls Mutate.
type MutateOptions struct {
	Fraction float64   // share of each table's rows touched; default 0.01
	Seed     int64     // same seed and same database state, same changes
	Now      time.Time // the change stamp; zero means the wall clock
	Force    bool
	Log      *slog.Logger
}

// DefaultFraction is one busy clinic day: about 1% of the rows.
const DefaultFraction = 0.01

// Mutate applies a day of clinic activity: inserts in every kind of table,
// updates that move the change columns (DateTStamp, SecDateTEdit …) of
// tables edited in place, and deletes from tables no other table refers to
// (so the keys of what remains still join).
func Mutate(ctx context.Context, db *sql.DB, opts MutateOptions) (Report, error) {
	start := time.Now()
	if opts.Fraction <= 0 {
		opts.Fraction = DefaultFraction
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	name, err := Guard(ctx, db, opts.Force)
	if err != nil {
		return Report{}, err
	}
	now := opts.Now
	if now.IsZero() {
		// The server's clock, the one the pipeline compares change stamps with.
		var clock string
		if err := db.QueryRowContext(ctx, "SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')").Scan(&clock); err != nil {
			return Report{}, fmt.Errorf("read the server's clock: %w", err)
		}
		read := time.Now()
		if now, err = time.Parse(time.DateTime, clock); err != nil {
			return Report{}, fmt.Errorf("read the server's clock %q: %w", clock, err)
		}
		// Return only once the stamp's second is over: a reader that skips
		// the still-open current second (as replication does) then sees the
		// whole day on its next run, as it would see a real clinic's edits.
		defer func() {
			if d := time.Until(read.Add(1100 * time.Millisecond)); d > 0 {
				time.Sleep(d)
			}
		}()
	}
	now = now.UTC().Truncate(time.Second)
	tables, err := readTables(ctx, db)
	if err != nil {
		return Report{}, err
	}
	vols, err := opendental.Volumes()
	if err != nil {
		return Report{}, fmt.Errorf("read table volumes: %w", err)
	}
	w := &world{keyName: map[string]string{}, maxKey: map[string]int64{}}
	counts := map[string]int64{}
	for _, tn := range sortedNames(tables) {
		t := tables[tn]
		var n, mx sql.NullInt64
		q := "SELECT COUNT(*), 0 FROM `" + tn + "`"
		if len(t.PK) > 0 {
			w.keyName[tn] = t.PK[0]
			q = "SELECT COUNT(*), MAX(`" + t.PK[0] + "`) FROM `" + tn + "`"
		}
		if err := db.QueryRowContext(ctx, q).Scan(&n, &mx); err != nil {
			return Report{}, fmt.Errorf("count rows of %s: %w", tn, err)
		}
		counts[tn] = n.Int64
		w.maxKey[tn] = max(mx.Int64, n.Int64)
	}
	referenced := map[string]bool{}
	for _, t := range tables {
		for _, c := range t.Columns {
			if c.FK != "" && c.FK != t.Name {
				referenced[c.FK] = true
			}
		}
	}
	var ins, upd, del atomic.Int64
	for _, tn := range sortedNames(tables) {
		t := tables[tn]
		r := rngFor(opts.Seed, "mutate", tn, itoa(w.maxKey[tn]))
		want := float64(counts[tn]) * opts.Fraction
		n := int64(want)
		if r.Float64() < want-math.Floor(want) {
			n++
		}
		if n == 0 {
			continue
		}
		wm := watermarkOf(t, vols[tn])
		editable := t.SeqPK >= 0 && wm != "" && vols[tn].SyncProfile != "append_only"
		var nIns, nUpd, nDel int64
		switch {
		case !editable:
			nIns = n
		default:
			nUpd = n / 2
			if !referenced[tn] {
				nDel = n / 10
			}
			nIns = n - nUpd - nDel
		}
		g := newGen(r, t, w, now, wm)
		if t.SeqPK >= 0 || len(t.PK) > 0 {
			if err := insertRows(ctx, db, t, g, w.maxKey[tn]+1, w.maxKey[tn]+nIns, &ins); err != nil {
				return Report{}, err
			}
		} else {
			if err := insertRows(ctx, db, t, g, counts[tn]+1, counts[tn]+nIns, &ins); err != nil {
				return Report{}, err
			}
		}
		if nUpd > 0 {
			k, err := updateRows(ctx, db, t, g, w.maxKey[tn], nUpd, wm, now)
			if err != nil {
				return Report{}, err
			}
			upd.Add(k)
		}
		if nDel > 0 {
			k, err := deleteRows(ctx, db, t, g, w.maxKey[tn], nDel)
			if err != nil {
				return Report{}, err
			}
			del.Add(k)
		}
	}
	rep := Report{Database: name, Tables: len(tables), Rows: ins.Load(), Updated: upd.Load(), Deleted: del.Load(), Elapsed: time.Since(start)}
	opts.Log.Info("applied a clinic day", "database", name, "inserted", rep.Rows, "updated", rep.Updated, "deleted", rep.Deleted,
		"seconds", rep.Elapsed.Seconds())
	return rep, nil
}

// watermarkOf is the column a change moves: the clinic's change column when
// it is a date, else the table's first timestamp column, else "".
func watermarkOf(t *table, v opendental.Volume) string {
	for _, c := range t.Columns {
		if c.Name == v.Watermark && isTemporal(c.DataType) {
			return c.Name
		}
	}
	for _, c := range t.Columns {
		if c.DataType == "timestamp" {
			return c.Name
		}
	}
	return ""
}

// sampleKeys draws n distinct keys in 1..maxKey.
func sampleKeys(g *gen, maxKey, n int64) []int64 {
	n = min(n, maxKey)
	seen := map[int64]bool{}
	out := make([]int64, 0, n)
	for int64(len(out)) < n {
		k := 1 + g.r.Int64N(maxKey)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// editColumn picks the column an edit changes besides the change stamp:
// a note, a status or an amount, whatever the table has.
func editColumn(t *table, wm string) *column {
	var pick *column
	for i := range t.Columns {
		c := &t.Columns[i]
		if c.Name == wm || i == t.SeqPK || c.FK != "" || c.DataType == "timestamp" {
			continue
		}
		if strings.HasSuffix(c.Name, "Note") {
			return c
		}
		if pick == nil && (c.DataType == "varchar" || c.DataType == "text" || c.DataType == "double" || c.DataType == "tinyint") {
			pick = c
		}
	}
	return pick
}

const chunk = 500

// updateRows edits n random existing rows: one column gets a new value and
// every change column (wm and the table's timestamps) gets now.
func updateRows(ctx context.Context, db *sql.DB, t *table, g *gen, maxKey, n int64, wm string, now time.Time) (int64, error) {
	keys := sampleKeys(g, maxKey, n)
	key := t.Columns[t.SeqPK].Name
	edit := editColumn(t, wm)
	var done int64
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		var sb strings.Builder
		sb.WriteString("UPDATE `" + t.Name + "` SET ")
		sets := 0
		for _, c := range t.Columns {
			if c.Name == wm || c.DataType == "timestamp" {
				if sets > 0 {
					sb.WriteByte(',')
				}
				sb.WriteString("`" + c.Name + "` = '" + now.Format(layoutFor(c.DataType)) + "'")
				sets++
			}
		}
		if edit != nil {
			sb.WriteString(",`" + edit.Name + "` = CASE `" + key + "`")
			for _, k := range part {
				b := g.value(nil, edit, k)
				sb.WriteString(" WHEN " + itoa(k) + " THEN " + string(b))
			}
			sb.WriteString(" END")
		}
		sb.WriteString(" WHERE `" + key + "` IN (")
		for j, k := range part {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(itoa(k))
		}
		sb.WriteString(")")
		res, err := db.ExecContext(ctx, sb.String())
		if err != nil {
			return done, fmt.Errorf("update %s: %w", t.Name, err)
		}
		k, _ := res.RowsAffected()
		done += k
	}
	return done, nil
}

// deleteRows removes n random existing rows of t.
func deleteRows(ctx context.Context, db *sql.DB, t *table, g *gen, maxKey, n int64) (int64, error) {
	keys := sampleKeys(g, maxKey, n)
	key := t.Columns[t.SeqPK].Name
	var done int64
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		ids := make([]string, len(part))
		for j, k := range part {
			ids[j] = itoa(k)
		}
		res, err := db.ExecContext(ctx, "DELETE FROM `"+t.Name+"` WHERE `"+key+"` IN ("+strings.Join(ids, ",")+")")
		if err != nil {
			return done, fmt.Errorf("delete from %s: %w", t.Name, err)
		}
		k, _ := res.RowsAffected()
		done += k
	}
	return done, nil
}
