package verify

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/pgcopy"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

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
	var counts typemap.Counts // conversions are the load's to count; here they only need doing
	return pgcopy.Run(ctx, h.pg.Conn().PgConn(), pgcopy.Stream{
		Replica: h.tv.conn, Query: query, Columns: len(idx), Copy: copySQL,
		Table: h.tv.cfg.Name, Doing: "stage replica rows of " + h.tv.cfg.Name,
		Line: func(line []byte, row []driver.Value) ([]byte, error) {
			return h.appendRow(line, row, idx, withKey, &counts)
		},
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
