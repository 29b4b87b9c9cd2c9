// Package pgcopy feeds a PostgreSQL COPY from a replica query. The query
// runs on the MySQL driver directly: rows come as the driver decodes them
// (bytes, or int64/uint64/float64 for numbers) and go straight into the
// COPY line, skipping database/sql's per-value conversion, which costs a
// quarter of the loader's CPU. A pipe carries the lines while PostgreSQL
// ingests, so memory stays at one row plus the buffers whatever the table
// size; when COPY fails the replica query is cancelled, so the rest of a
// large result is not read just to be thrown away. The load copies into
// raw with it and verify stages replica rows with it, so both convert a
// row the same way.
package pgcopy

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
)

// Stream is one COPY fed from one replica query.
type Stream struct {
	Replica *sql.Conn // the replica connection (and its snapshot)
	Query   string    // run without arguments: MySQL's text protocol
	Columns int       // how many columns Query returns
	Copy    string    // COPY … FROM STDIN
	// Line appends one row's COPY text line, newline included, to line.
	Line func(line []byte, row []driver.Value) ([]byte, error)
	// Written, if set, is called after each row is written, with the rows
	// read so far (from the reading goroutine).
	Written func(rows int64)
	// Table names the table in a read error; Doing says what the COPY
	// does in a COPY error (e.g. "copy patient into raw").
	Table, Doing string
}

var errCopyStopped = errors.New("copy stopped")

// Run copies s into PostgreSQL on pc and returns the rows COPY wrote.
func Run(ctx context.Context, pc *pgconn.PgConn, s Stream) (int64, error) {
	qctx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := s.stream(qctx, pw)
		pw.CloseWithError(err) // nil: COPY sees EOF
		done <- err
	}()
	tag, cerr := pc.CopyFrom(ctx, pr, s.Copy)
	if cerr != nil {
		cancelRead()
	}
	pr.CloseWithError(errCopyStopped) // unblocks the writer if COPY ended early
	werr := <-done
	switch {
	// Whichever side failed first is the cause; the other's error is its echo
	// (errCopyStopped, or the read cancelled because COPY failed).
	case werr != nil && !errors.Is(werr, errCopyStopped) && (cerr == nil || qctx.Err() == nil):
		return 0, fmt.Errorf("read replica %s: %w", s.Table, werr)
	case cerr != nil:
		return 0, fmt.Errorf("%s: %w", s.Doing, cerr)
	}
	return tag.RowsAffected(), nil
}

// stream runs the query on the replica driver and writes every row's line
// to w.
func (s Stream) stream(ctx context.Context, w io.Writer) error {
	return s.Replica.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("the replica driver %T cannot run queries directly", dc)
		}
		rows, err := q.QueryContext(ctx, s.Query, nil) // no arguments: MySQL's text protocol
		if err != nil {
			return err
		}
		defer rows.Close()
		if n := len(rows.Columns()); n != s.Columns {
			return fmt.Errorf("query returned %d columns, expected %d", n, s.Columns)
		}
		bw := bufio.NewWriterSize(w, 256<<10)
		dest := make([]driver.Value, s.Columns)
		line := make([]byte, 0, 4096)
		var read int64
		for {
			if err := rows.Next(dest); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return err
			}
			if line, err = s.Line(line[:0], dest); err != nil {
				return err
			}
			if _, err := bw.Write(line); err != nil {
				return err
			}
			read++
			if s.Written != nil {
				s.Written(read)
			}
		}
		return bw.Flush()
	})
}
