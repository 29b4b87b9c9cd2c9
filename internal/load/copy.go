package load

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opendental-pipeline/pipeline/internal/pgcopy"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

func conversionMap(p *plan, counts []typemap.Counts) map[string]map[string]int64 {
	var out map[string]map[string]int64
	for i := range counts {
		if counts[i].Total() == 0 {
			continue
		}
		if out == nil {
			out = map[string]map[string]int64{}
		}
		out[p.cols[i].Name] = counts[i].Map()
	}
	return out
}

// copySpec is one COPY fed from one replica query.
type copySpec struct {
	copySQL string // COPY … FROM STDIN
	query   string // the replica query whose rows it takes
}

// copyRows streams the rows of query into COPY text format (pgcopy),
// converting each value with the column's mapping and counting the
// conversions, and reports progress every 16384 rows.
func (tl *tableLoad) copyRows(ctx context.Context, pc *pgconn.PgConn, c copySpec) (read, written int64, err error) {
	p, counts := tl.p, tl.counts
	written, err = pgcopy.Run(ctx, pc, pgcopy.Stream{
		Replica: tl.rc, Query: c.query, Columns: len(p.cols), Copy: c.copySQL,
		Table: p.src.Name, Doing: "copy " + p.src.Name + " into raw",
		Line: func(line []byte, row []driver.Value) ([]byte, error) {
			var err error
			for i, v := range row {
				if i > 0 {
					line = append(line, '\t')
				}
				if line, err = typemap.AppendValue(line, v, &p.cols[i].Mapping, &counts[i]); err != nil {
					return nil, fmt.Errorf("column %q: %w", p.cols[i].Name, err)
				}
			}
			return append(line, '\n'), nil
		},
		Written: func(n int64) {
			read = n
			if n%16384 == 0 {
				tl.progress(n, false)
			}
		},
	})
	if err != nil {
		return read, 0, err
	}
	tl.progress(read, true)
	return read, written, nil
}
