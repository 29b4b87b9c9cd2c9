package verify

import (
	"bufio"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

var errCopyStopped = errors.New("copy stopped")

// stageRows copies the replica rows matching where into the stage, read
// and converted exactly as the load reads and converts them, and returns
// how many were staged.
func (h *rawHop) stageRows(ctx context.Context, where string) (int64, error) {
	all := make([]int, len(h.cols))
	for i := range all {
		all[i] = i
	}
	return h.copyInto(ctx, stage, all, true, where)
}

// copyInto copies columns idx of the replica rows matching where into
// table (columns named like raw's), with the replica's key text as a last
// column when withKey.
func (h *rawHop) copyInto(ctx context.Context, table string, idx []int, withKey bool, where string) (int64, error) {
	exprs := make([]string, len(idx))
	targets := make([]string, len(idx))
	for i, c := range idx {
		exprs[i], targets[i] = h.cols[c].SelectExpr, typemap.QuotePG(h.cols[c].target)
	}
	if withKey {
		targets = append(targets, "_verify_key")
	}
	query := "SELECT " + strings.Join(exprs, ", ") + " FROM " + keyset.Quote(h.tv.cfg.Name) + " WHERE " + where
	copySQL := "COPY " + table + " (" + strings.Join(targets, ", ") + ") FROM STDIN"
	qctx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := h.streamRows(qctx, query, idx, withKey, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	tag, cerr := h.pg.Conn().PgConn().CopyFrom(ctx, pr, copySQL)
	if cerr != nil {
		cancelRead()
	}
	pr.CloseWithError(errCopyStopped)
	werr := <-done
	switch {
	case werr != nil && !errors.Is(werr, errCopyStopped) && (cerr == nil || qctx.Err() == nil):
		return 0, fmt.Errorf("read replica %s: %w", h.tv.cfg.Name, werr)
	case cerr != nil:
		return 0, fmt.Errorf("stage replica rows of %s: %w", h.tv.cfg.Name, cerr)
	}
	return tag.RowsAffected(), nil
}

// streamRows runs query (reading columns idx) on the replica session's
// driver directly, on the text protocol like the load, and writes each row
// as a COPY line: the converted values, then (withKey) the key as the
// replica printed it.
func (h *rawHop) streamRows(ctx context.Context, query string, idx []int, withKey bool, w io.Writer) error {
	var counts typemap.Counts // conversions are the load's to count; here they only need doing
	return h.tv.conn.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("the replica driver %T cannot run queries directly", dc)
		}
		rows, err := q.QueryContext(ctx, query, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		bw := bufio.NewWriterSize(w, 256<<10)
		dest := make([]driver.Value, len(idx))
		line := make([]byte, 0, 4096)
		for {
			if err := rows.Next(dest); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return err
			}
			if line, err = h.appendRow(line[:0], dest, idx, withKey, &counts); err != nil {
				return err
			}
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}

// appendRow writes one COPY line: the values of columns idx converted,
// then (withKey) the key as the replica printed it.
func (h *rawHop) appendRow(line []byte, dest []driver.Value, idx []int, withKey bool, counts *typemap.Counts) ([]byte, error) {
	var err error
	for i, v := range dest {
		if i > 0 {
			line = append(line, '\t')
		}
		if line, err = typemap.AppendValue(line, v, &h.cols[idx[i]].Mapping, counts); err != nil {
			return nil, fmt.Errorf("column %s: %w", h.cols[idx[i]].name, err)
		}
	}
	if withKey {
		key := make([]string, len(h.key))
		for i, c := range h.key {
			key[i] = driverText(dest[c])
		}
		line = append(line, '\t')
		line = typemap.AppendCopy(line, []byte(state.EncodeKey(key)), typemap.ConvText, 0, counts)
	}
	return append(line, '\n'), nil
}

// driverText is a key value as the replica printed it.
func driverText(v driver.Value) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case string:
		return x
	}
	return fmt.Sprint(v)
}
