package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/rowhash"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// tableVerify is one table's verification: it owns a replica session (and,
// for the replica ↔ raw hop, a PostgreSQL one) and borrows a source
// connection per query.
type tableVerify struct {
	r        *runner
	cfg      *tables.Table
	src, rep *schema.Table
	st       *state.Row // the replica's state of the table (nil: none)
	res      *TableResult
	key      keyset.Key
	batch    int    // rows per range: the table's batch_size
	srcHash  string // rowhash.Expr of the source's columns
	repHash  string // and of the replica's
	conn     *sql.Conn
	raw      *rawHop
	pass     *tableProgress // nil without Options.Progress
	pending  pendingRule
}

// verifyTable verifies one table and never panics the run.
func (r *runner) verifyTable(ctx context.Context, t *tables.Table, src, rep *schema.Table, st *state.Row) *TableResult {
	res := &TableResult{Table: t.Name, Mode: ModeKeys, Started: r.now()}
	res.SourceReplica.Hop, res.ReplicaRaw.Hop = report.HopSourceReplica, report.HopReplicaRaw
	res.PassStarted = res.Started
	tv := &tableVerify{r: r, cfg: t, src: src, rep: rep, st: st, res: res, batch: tables.DefaultBatchSize}
	if t.BatchSize > 0 {
		tv.batch = t.BatchSize
	}
	defer func() {
		if v := recover(); v != nil {
			res.Err = fmt.Errorf("verify %s: unexpected panic: %v", t.Name, v)
		}
		res.Finished = r.now()
		tv.close(ctx)
		if res.Err != nil {
			r.log.Error("table not verified", "table", t.Name, "err", res.Err)
		} else {
			r.log.Info("table verified", "table", t.Name, "status", res.Status(), "source_queries", res.SourceQueries,
				"source_replica_differ", res.SourceReplica.Differing(), "replica_raw_differ", res.ReplicaRaw.Differing())
		}
	}()
	res.Err = tv.run(ctx)
	return res
}

func (tv *tableVerify) run(ctx context.Context) error {
	if err := tv.check(); err != nil {
		return err
	}
	conn, err := tv.r.deps.Replica.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open replica connection for %s: %w", tv.cfg.Name, err)
	}
	tv.conn = conn
	if tv.raw, err = tv.r.openRawHop(ctx, tv); err != nil {
		return err
	}
	if tv.key.Len() == 0 {
		tv.res.Mode = ModeKeyless
		return tv.whole(ctx)
	}
	return tv.ranges(ctx)
}

func (tv *tableVerify) close(ctx context.Context) {
	if tv.raw != nil {
		tv.raw.close(ctx)
	}
	if tv.conn != nil {
		tv.conn.Close()
	}
}

// errSchema marks a table whose source and replica definitions differ.
var errSchema = errors.New("definitions differ")

// check refuses what cannot be compared, and sets up the key and hashes.
func (tv *tableVerify) check() error {
	name := tv.cfg.Name
	if err := state.CheckName(name); err != nil {
		return err
	}
	if tv.src == nil {
		return fmt.Errorf("table %s is in tables.yml but not in the source database; remove it or set exclude: true", name)
	}
	if tv.rep == nil {
		return fmt.Errorf("table %s is not in the replica yet; run `pipeline run` first", name)
	}
	if d := columnDiff(tv.src, tv.rep); d != "" {
		return fmt.Errorf("source and replica %w for %s (%s); run `pipeline replicate` to apply the source's schema, then verify", errSchema, name, d)
	}
	if len(tv.src.PrimaryKey) > 0 && tv.src.KeyTravels() {
		tv.key = keyset.Of(tv.src)
	}
	tv.srcHash, tv.repHash = rowhash.Expr(tv.src.Columns), rowhash.Expr(tv.rep.Columns)
	tv.pending = newPendingRule(tv.cfg, tv.src, tv.st)
	return nil
}

// columnDiff describes how the replica's columns or key differ from the
// source's ("" when they match).
func columnDiff(src, rep *schema.Table) string {
	var out []string
	if len(src.Columns) != len(rep.Columns) {
		out = append(out, fmt.Sprintf("%d columns against %d", len(src.Columns), len(rep.Columns)))
	} else {
		for i, c := range src.Columns {
			r := rep.Columns[i]
			if c.Name != r.Name || !strings.EqualFold(c.Type, r.Type) {
				out = append(out, fmt.Sprintf("column %d is %s %s at the source, %s %s in the replica", i+1, c.Name, c.Type, r.Name, r.Type))
			}
		}
	}
	if strings.Join(src.PrimaryKey, ",") != strings.Join(rep.PrimaryKey, ",") {
		out = append(out, fmt.Sprintf("primary key (%s) against (%s)", strings.Join(src.PrimaryKey, ", "), strings.Join(rep.PrimaryKey, ", ")))
	}
	return strings.Join(out, "; ")
}

// ranges walks the table in ranges of batch rows, both hops per range,
// until the end of the table or of the budget.
func (tv *tableVerify) ranges(ctx context.Context) error {
	lo, err := tv.r.resume(ctx, tv)
	if err != nil {
		return err
	}
	if lo == nil {
		summed, err := tv.bySum(ctx)
		if err != nil {
			return err
		}
		if summed {
			return tv.finish(ctx)
		}
	}
	for first := true; ; first = false {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !first && tv.r.outOfTime() {
			tv.res.LastKey = lo
			return tv.r.saveProgress(ctx, tv, lo, false)
		}
		hi, last, err := tv.compareRange(ctx, lo)
		if err != nil {
			return err
		}
		tv.res.Ranges++
		if last {
			return tv.finish(ctx)
		}
		if err := tv.r.saveProgress(ctx, tv, hi, false); err != nil {
			return err
		}
		lo = hi
	}
}

// finish ends the table's pass: the replica ↔ raw hop of the whole table
// when a batched sum settled the other hop without ranges, raw's rows
// under an unordered key, the progress.
func (tv *tableVerify) finish(ctx context.Context) error {
	if tv.res.Ranges == 0 {
		if err := tv.raw.compare(ctx, nil, nil); err != nil {
			return err
		}
		tv.res.Ranges = 1
	}
	if !tv.raw.ordered {
		if err := tv.raw.extraByKeys(ctx); err != nil {
			return err
		}
	}
	tv.res.Complete = true
	return tv.r.saveProgress(ctx, tv, nil, true)
}

// compareRange compares the next batch of source rows after lo on both
// hops. hi is the range's last key; last reports the end of the table (the
// range then reaches past the source's last key, so replica and raw rows
// beyond it count as extra).
func (tv *tableVerify) compareRange(ctx context.Context, lo []string) (hi []string, last bool, err error) {
	parts, err := tv.sourceParts(ctx, lo, nil, tv.batch, partSize(tv.batch))
	if err != nil {
		return nil, false, err
	}
	var rows int64
	bounds := make([][]string, len(parts))
	for i, p := range parts {
		rows += p.count
		bounds[i] = p.last
	}
	last = rows < int64(tv.batch)
	rep, err := tv.replicaParts(ctx, lo, bounds, last)
	if err != nil {
		return nil, false, err
	}
	tv.res.SourceReplica.Compared += rows
	if err := tv.locate(ctx, lo, parts, rep, last); err != nil {
		return nil, false, err
	}
	if len(parts) > 0 {
		hi = bounds[len(bounds)-1]
	}
	rawHi := hi
	if last {
		rawHi = nil
	}
	if err := tv.raw.compare(ctx, lo, rawHi); err != nil {
		return nil, false, err
	}
	return hi, last, nil
}
