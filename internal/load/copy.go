package load

import (
	"bufio"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"

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

var errCopyStopped = errors.New("copy stopped")

// copySpec is one COPY fed from one replica query.
type copySpec struct {
	copySQL string // COPY … FROM STDIN
	query   string // the replica query whose rows it takes
}

// copyRows streams the rows of query into COPY text format through a pipe:
// one goroutine reads the replica while PostgreSQL ingests, and memory stays
// at one row plus the buffers whatever the table size. When COPY fails the
// replica query is cancelled, so the rest of a large result is not read
// just to be thrown away.
func (tl *tableLoad) copyRows(ctx context.Context, pc *pgconn.PgConn, c copySpec) (read, written int64, err error) {
	qctx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := tl.streamRows(qctx, c.query, pw, &read)
		pw.CloseWithError(err) // nil: COPY sees EOF
		done <- err
	}()
	tag, cerr := pc.CopyFrom(ctx, pr, c.copySQL)
	if cerr != nil {
		cancelRead()
	}
	pr.CloseWithError(errCopyStopped) // unblocks the writer if COPY ended early
	werr := <-done
	switch {
	// Whichever side failed first is the cause; the other's error is its echo
	// (errCopyStopped, or the read cancelled because COPY failed).
	case werr != nil && !errors.Is(werr, errCopyStopped) && (cerr == nil || qctx.Err() == nil):
		return read, 0, fmt.Errorf("read replica %s: %w", tl.p.src.Name, werr)
	case cerr != nil:
		return read, 0, fmt.Errorf("copy %s into raw: %w", tl.p.src.Name, cerr)
	}
	tl.progress(read, true)
	return read, tag.RowsAffected(), nil
}

// streamRows runs query on the replica connection's driver directly: the
// rows come as the driver decodes them (bytes, or int64/uint64/float64 for
// numbers) and go straight into the COPY line, skipping database/sql's
// per-value conversion, which costs a quarter of the loader's CPU.
func (tl *tableLoad) streamRows(ctx context.Context, query string, w io.Writer, read *int64) error {
	p, counts := tl.p, tl.counts
	return tl.rc.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("the replica driver %T cannot run queries directly", dc)
		}
		rows, err := q.QueryContext(ctx, query, nil) // no arguments: MySQL's text protocol
		if err != nil {
			return err
		}
		defer rows.Close()
		if n := len(rows.Columns()); n != len(p.cols) {
			return fmt.Errorf("query returned %d columns, expected %d", n, len(p.cols))
		}
		bw := bufio.NewWriterSize(w, 256<<10)
		dest := make([]driver.Value, len(p.cols))
		line := make([]byte, 0, 4096)
		for {
			if err := rows.Next(dest); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return err
			}
			line = line[:0]
			for i, v := range dest {
				if i > 0 {
					line = append(line, '\t')
				}
				if line, err = typemap.AppendValue(line, v, &p.cols[i].Mapping, &counts[i]); err != nil {
					return fmt.Errorf("column %q: %w", p.cols[i].Name, err)
				}
			}
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return err
			}
			*read++
			if *read%16384 == 0 {
				tl.progress(*read, false)
			}
		}
		return bw.Flush()
	})
}
