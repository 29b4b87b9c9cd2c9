package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/rowhash"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Most of a clinic's tables are small: one range each, so a source query
// each, and at the production rate limit the queries are the cost. Small
// tables are therefore checksummed together first: one source query sums
// up to batchTables of them, batchRows rows in all (one default range's
// read). A table whose sum matches the replica's needs no source query of
// its own; one that differs is walked by ranges as usual.
const (
	batchTables = 32
	batchRows   = tables.DefaultBatchSize
)

// smallSums checksums the small tables of order (whole, count and hash)
// in batched source queries, by table name. Only tables whose row count
// the source knows exactly (MyISAM, Aria) are batched, so a query never
// reads more rows than it was sized for.
func (r *runner) smallSums(ctx context.Context, order []*tables.Table, src *schema.Database) (map[string]agg, error) {
	sums := map[string]agg{}
	var batch []*schema.Table
	rows := int64(0)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.sumBatch(ctx, batch, sums)
		batch, rows = nil, 0
		return err
	}
	for _, t := range order {
		s := src.Tables[t.Name]
		if !small(t, s) || (r.progress[t.Name] != nil && !r.progress[t.Name].complete && !r.deadline.IsZero()) {
			continue
		}
		if len(batch) == batchTables || rows+s.Rows > batchRows {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		batch, rows = append(batch, s), rows+s.Rows
	}
	return sums, flush()
}

// small reports whether a table is summed in a batch: keyed, its rows
// known exactly and fewer than one range of it.
func small(t *tables.Table, s *schema.Table) bool {
	if s == nil || len(s.PrimaryKey) == 0 || !s.KeyTravels() {
		return false
	}
	switch strings.ToLower(s.Engine) {
	case "myisam", "aria":
	default:
		return false
	}
	batch := t.BatchSize
	if batch <= 0 {
		batch = tables.DefaultBatchSize
	}
	return s.Rows < int64(min(batch, batchRows))
}

// sumBatch sums the tables of batch in one source query.
func (r *runner) sumBatch(ctx context.Context, batch []*schema.Table, sums map[string]agg) error {
	parts := make([]string, len(batch))
	for i, s := range batch {
		parts[i] = "SELECT " + strconv.Itoa(i) + ", COUNT(*), COALESCE(BIT_XOR(" + rowhash.Expr(s.Columns) + "), 0) FROM " + keyset.Quote(s.Name)
	}
	q := strings.Join(parts, " UNION ALL ")
	err := r.source(ctx, nil, func(ctx context.Context, c *sql.Conn) error {
		return eachRow(ctx, c, stmt{query: q}, 3, func(vals [][]byte) error {
			i, err := strconv.Atoi(string(vals[0]))
			if err != nil || i < 0 || i >= len(batch) {
				return fmt.Errorf("unexpected table index %q", vals[0])
			}
			var a agg
			if a.count, err = strconv.ParseInt(string(vals[1]), 10, 64); err != nil {
				return err
			}
			if a.hash, err = strconv.ParseUint(string(vals[2]), 10, 64); err != nil {
				return err
			}
			sums[batch[i].Name] = a
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("checksum %d small source tables: %w", len(batch), err)
	}
	return nil
}

// bySum settles a small table's source ↔ replica hop from its batched
// sum when the replica's whole-table sum matches; done is false when it
// does not (or there is none), and the table is walked by ranges.
func (tv *tableVerify) bySum(ctx context.Context) (done bool, err error) {
	a, ok := tv.r.sums[tv.cfg.Name]
	if !ok {
		return false, nil
	}
	var rep agg
	q := "SELECT COUNT(*), COALESCE(BIT_XOR(" + tv.repHash + "), 0) FROM " + keyset.Quote(tv.cfg.Name)
	if err := tv.conn.QueryRowContext(ctx, q).Scan(&rep.count, &rep.hash); err != nil {
		return false, fmt.Errorf("checksum replica %s: %w", tv.cfg.Name, err)
	}
	if rep != a {
		return false, nil
	}
	tv.res.SourceReplica.Compared = a.count
	return true, nil
}
