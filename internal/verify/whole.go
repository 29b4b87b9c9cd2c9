package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// whole compares a table without a usable primary key: row count and hash
// of the whole table on each side (the source read in one query, as a
// table without a key can only be copied whole too); when they differ, the
// multisets of row hashes tell how many rows are missing and extra. Rows
// cannot be named, and a changed row counts as one missing and one extra.
func (tv *tableVerify) whole(ctx context.Context) error {
	d := &tv.res.SourceReplica
	d.Keyless, tv.res.ReplicaRaw.Keyless = true, true
	t := keyset.Quote(tv.cfg.Name)
	sumQ := func(hash string) string { return "SELECT COUNT(*), COALESCE(BIT_XOR(" + hash + "), 0) FROM " + t }
	var sc, rc int64
	var sh, rh uint64
	if err := tv.r.source(ctx, &tv.res.SourceQueries, func(ctx context.Context, c *sql.Conn) error {
		return c.QueryRowContext(ctx, sumQ(tv.srcHash)).Scan(&sc, &sh)
	}); err != nil {
		return fmt.Errorf("checksum source %s: %w", tv.cfg.Name, err)
	}
	if err := tv.conn.QueryRowContext(ctx, sumQ(tv.repHash)).Scan(&rc, &rh); err != nil {
		return fmt.Errorf("checksum replica %s: %w", tv.cfg.Name, err)
	}
	d.Compared = sc
	if sc != rc || sh != rh {
		if err := tv.wholeMultiset(ctx, d); err != nil {
			return err
		}
	}
	if _, err := tv.r.resume(ctx, tv); err != nil {
		return err
	}
	if err := tv.raw.whole(ctx); err != nil {
		return err
	}
	tv.res.Ranges = 1
	tv.res.Complete = true
	return tv.r.saveProgress(ctx, tv, nil, true)
}

// wholeMultiset counts the rows missing and extra by comparing the two
// sides' multisets of row hashes.
func (tv *tableVerify) wholeMultiset(ctx context.Context, d *Diff) error {
	countQ := func(hash string) string {
		return "SELECT h, COUNT(*) FROM (SELECT " + hash + " AS h FROM " + keyset.Quote(tv.cfg.Name) + ") x GROUP BY h"
	}
	var src, rep map[uint64]int64
	if err := tv.r.source(ctx, &tv.res.SourceQueries, func(ctx context.Context, c *sql.Conn) error {
		var err error
		src, err = hashCounts(ctx, c, countQ(tv.srcHash))
		return err
	}); err != nil {
		return fmt.Errorf("read source row hashes of %s: %w", tv.cfg.Name, err)
	}
	rep, err := hashCounts(ctx, tv.conn, countQ(tv.repHash))
	if err != nil {
		return fmt.Errorf("read replica row hashes of %s: %w", tv.cfg.Name, err)
	}
	for h, n := range src {
		d.Missing += max(0, n-rep[h])
	}
	for h, n := range rep {
		d.Extra += max(0, n-src[h])
	}
	return nil
}

func hashCounts(ctx context.Context, q querier, query string) (map[uint64]int64, error) {
	out := map[uint64]int64{}
	err := eachRow(ctx, q, stmt{query: query}, 2, func(vals [][]byte) error {
		h, err := strconv.ParseUint(string(vals[0]), 10, 64)
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(vals[1]), 10, 64)
		out[h] = n
		return err
	})
	return out, err
}

// whole compares a keyless table's replica rows with raw's as multisets.
func (h *rawHop) whole(ctx context.Context) error {
	staged, err := h.stageRows(ctx, "TRUE")
	if err != nil {
		return err
	}
	d := &h.tv.res.ReplicaRaw
	d.Compared = staged
	vals := make([]string, len(h.cols))
	for i, c := range h.cols {
		vals[i] = typemap.QuotePG(c.target) + "::text"
	}
	list := strings.Join(vals, ", ")
	t := qualified(h.target)
	q := "SELECT (SELECT count(*) FROM (SELECT " + list + " FROM " + stage + " EXCEPT ALL SELECT " + list + " FROM " + t + ") a)," +
		" (SELECT count(*) FROM (SELECT " + list + " FROM " + t + " EXCEPT ALL SELECT " + list + " FROM " + stage + ") b)"
	if err := h.pg.QueryRow(ctx, q).Scan(&d.Missing, &d.Extra); err != nil {
		return fmt.Errorf("compare %s with raw: %w", h.tv.cfg.Name, err)
	}
	return nil
}

// extraByKeys finds raw rows whose key the replica does not have, for a
// key that does not sort alike in both engines (text): the replica's keys
// are copied into a temp table and raw is anti-joined with it. It runs
// once, when a table's pass ends.
func (h *rawHop) extraByKeys(ctx context.Context) error {
	defs := make([]string, len(h.key))
	var match, rkeys []string
	for i, c := range h.key {
		col := typemap.QuotePG(h.cols[c].target)
		defs[i] = col + " " + h.cols[c].pgType
		match = append(match, "k."+col+" = r."+col)
		rkeys = append(rkeys, "r."+col+"::text")
	}
	for _, q := range []string{"DROP TABLE IF EXISTS pg_temp.verify_keys", "CREATE TEMP TABLE verify_keys (" + strings.Join(defs, ", ") + ")"} {
		if _, err := h.pg.Exec(ctx, q); err != nil {
			return fmt.Errorf("compare keys of %s with raw: %w", h.tv.cfg.Name, err)
		}
	}
	if _, err := h.copyInto(ctx, "pg_temp.verify_keys", h.key, false, "TRUE"); err != nil {
		return err
	}
	rows, err := h.pg.Query(ctx, "SELECT json_build_array("+strings.Join(rkeys, ", ")+")::text FROM "+qualified(h.target)+
		" r WHERE NOT EXISTS (SELECT 1 FROM pg_temp.verify_keys k WHERE "+strings.Join(match, " AND ")+")")
	if err != nil {
		return fmt.Errorf("compare keys of %s with raw: %w", h.tv.cfg.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return fmt.Errorf("compare keys of %s with raw: %w", h.tv.cfg.Name, err)
		}
		k, err := h.replicaKey(kindExtra, key)
		if err != nil {
			return err
		}
		h.tv.res.ReplicaRaw.add(kindExtra, k)
	}
	return rows.Err()
}
