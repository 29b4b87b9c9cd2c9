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
	d := &day{db: db, opts: opts}
	if err := d.prepare(ctx); err != nil {
		return Report{}, err
	}
	for _, tn := range sortedNames(d.tables) {
		if err := d.mutate(ctx, d.tables[tn]); err != nil {
			return Report{}, err
		}
	}
	rep := Report{Database: name, Tables: len(d.tables), Rows: d.ins.Load(), Updated: d.upd.Load(), Deleted: d.del.Load(), Elapsed: time.Since(start)}
	opts.Log.Info("applied a clinic day", "database", name, "inserted", rep.Rows, "updated", rep.Updated, "deleted", rep.Deleted,
		"seconds", rep.Elapsed.Seconds())
	return rep, nil
}

// day is one Mutate: the database as it was found and what was done to it.
type day struct {
	db         *sql.DB
	opts       MutateOptions
	now        time.Time // the change stamp, whole seconds
	tables     map[string]*table
	vols       map[string]opendental.Volume
	w          *world
	counts     map[string]int64 // rows per table before the day
	referenced map[string]bool  // tables another table's foreign key names
	ins        atomic.Int64
	upd        atomic.Int64
	del        atomic.Int64
}

// prepare reads the clock, the tables, their volumes and their row counts.
func (d *day) prepare(ctx context.Context) error {
	d.now = d.opts.Now
	if d.now.IsZero() {
		// The server's clock, the one the pipeline compares change stamps with.
		var clock string
		if err := d.db.QueryRowContext(ctx, "SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')").Scan(&clock); err != nil {
			return fmt.Errorf("read the server's clock: %w", err)
		}
		var err error
		if d.now, err = time.Parse(time.DateTime, clock); err != nil {
			return fmt.Errorf("read the server's clock %q: %w", clock, err)
		}
	}
	d.now = d.now.UTC().Truncate(time.Second)
	var err error
	if d.tables, err = readTables(ctx, d.db); err != nil {
		return err
	}
	if d.vols, err = opendental.Volumes(); err != nil {
		return fmt.Errorf("read table volumes: %w", err)
	}
	if err := d.census(ctx); err != nil {
		return err
	}
	d.referenced = map[string]bool{}
	for _, t := range d.tables {
		for _, c := range t.Columns {
			if c.FK != "" && c.FK != t.Name {
				d.referenced[c.FK] = true
			}
		}
	}
	return nil
}

// census counts every table's rows and highest key.
func (d *day) census(ctx context.Context) error {
	d.w = &world{keyName: map[string]string{}, maxKey: map[string]int64{}}
	d.counts = map[string]int64{}
	for _, tn := range sortedNames(d.tables) {
		t := d.tables[tn]
		var n, mx sql.NullInt64
		q := "SELECT COUNT(*), 0 FROM `" + tn + "`"
		if len(t.PK) > 0 {
			d.w.keyName[tn] = t.PK[0]
			q = "SELECT COUNT(*), MAX(`" + t.PK[0] + "`) FROM `" + tn + "`"
		}
		if err := d.db.QueryRowContext(ctx, q).Scan(&n, &mx); err != nil {
			return fmt.Errorf("count rows of %s: %w", tn, err)
		}
		d.counts[tn] = n.Int64
		d.w.maxKey[tn] = max(mx.Int64, n.Int64)
	}
	return nil
}

// mutate applies the day to one table: its share of inserts, and for a
// table edited in place updates and (when nothing refers to it) deletes.
func (d *day) mutate(ctx context.Context, t *table) error {
	tn := t.Name
	r := rngFor(d.opts.Seed, "mutate", tn, itoa(d.w.maxKey[tn]))
	want := float64(d.counts[tn]) * d.opts.Fraction
	n := int64(want)
	if r.Float64() < want-math.Floor(want) {
		n++
	}
	if n == 0 {
		return nil
	}
	wm := watermarkOf(t, d.vols[tn])
	var nUpd, nDel int64
	if t.SeqPK >= 0 && wm != "" && d.vols[tn].SyncProfile != "append_only" { // edited in place
		nUpd = n / 2
		if !d.referenced[tn] {
			nDel = n / 10
		}
	}
	nIns := n - nUpd - nDel
	tw := writer{db: d.db, t: t, g: newGen(r, t, d.w, d.now, wm), written: &d.ins, maxKey: d.w.maxKey[tn], wm: wm, now: d.now}
	next := d.counts[tn] + 1 // a table without a key is numbered by its rows
	if t.SeqPK >= 0 || len(t.PK) > 0 {
		next = d.w.maxKey[tn] + 1
	}
	if err := tw.insert(ctx, next, next+nIns-1); err != nil {
		return err
	}
	k, err := tw.update(ctx, nUpd)
	if err != nil {
		return err
	}
	d.upd.Add(k)
	k, err = tw.delete(ctx, nDel)
	d.del.Add(k)
	return err
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

// update edits n random existing rows: one column gets a new value and
// every change column (wm and the table's timestamps) gets now.
func (tw writer) update(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	t := tw.t
	keys := sampleKeys(tw.g, tw.maxKey, n)
	var done int64
	for i := 0; i < len(keys); i += chunk {
		res, err := tw.db.ExecContext(ctx, tw.updateSQL(keys[i:min(i+chunk, len(keys))]))
		if err != nil {
			return done, fmt.Errorf("update %s: %w", t.Name, err)
		}
		k, _ := res.RowsAffected()
		done += k
	}
	return done, nil
}

// updateSQL is the UPDATE of the rows with keys.
func (tw writer) updateSQL(keys []int64) string {
	t := tw.t
	key := t.Columns[t.SeqPK].Name
	var sb strings.Builder
	sb.WriteString("UPDATE `" + t.Name + "` SET ")
	sets := 0
	for _, c := range t.Columns {
		if c.Name == tw.wm || c.DataType == "timestamp" {
			if sets > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("`" + c.Name + "` = '" + tw.now.Format(layoutFor(c.DataType)) + "'")
			sets++
		}
	}
	if edit := editColumn(t, tw.wm); edit != nil {
		sb.WriteString(",`" + edit.Name + "` = CASE `" + key + "`")
		for _, k := range keys {
			b := tw.g.value(nil, edit, k)
			sb.WriteString(" WHEN " + itoa(k) + " THEN " + string(b))
		}
		sb.WriteString(" END")
	}
	sb.WriteString(" WHERE `" + key + "` IN (")
	for j, k := range keys {
		if j > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(itoa(k))
	}
	sb.WriteString(")")
	return sb.String()
}

// delete removes n random existing rows.
func (tw writer) delete(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	keys := sampleKeys(tw.g, tw.maxKey, n)
	key := tw.t.Columns[tw.t.SeqPK].Name
	var done int64
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		ids := make([]string, len(part))
		for j, k := range part {
			ids[j] = itoa(k)
		}
		res, err := tw.db.ExecContext(ctx, "DELETE FROM `"+tw.t.Name+"` WHERE `"+key+"` IN ("+strings.Join(ids, ",")+")")
		if err != nil {
			return done, fmt.Errorf("delete from %s: %w", tw.t.Name, err)
		}
		k, _ := res.RowsAffected()
		done += k
	}
	return done, nil
}
