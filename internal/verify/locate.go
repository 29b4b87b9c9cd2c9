package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// span is a key range (lo, hi] (hi nil: to the end of the table) and the
// source rows in it.
type span struct {
	lo, hi []string
	count  int64
}

// locate names the rows that differ in the parts of a range that differ.
// src are the source's parts after lo, rep the replica's sums within their
// bounds (with tail, part len(src) is the replica's rows after the last
// source key). Consecutive differing parts are listed together while they
// hold at most leafRows source rows; a larger one is split again.
func (tv *tableVerify) locate(ctx context.Context, lo []string, src []part, rep map[int]agg, tail bool) error {
	var pending *span
	flush := func() error {
		if pending == nil {
			return nil
		}
		s := *pending
		pending = nil
		return tv.narrow(ctx, s)
	}
	prev := lo
	for i, p := range src {
		r := rep[i]
		if r.count == p.count && r.hash == p.hash {
			if err := flush(); err != nil {
				return err
			}
			prev = p.last
			continue
		}
		if pending != nil && pending.count+p.count <= int64(tv.leaf()) {
			pending.hi, pending.count = p.last, pending.count+p.count
		} else {
			if err := flush(); err != nil {
				return err
			}
			pending = &span{lo: prev, hi: p.last, count: p.count}
		}
		prev = p.last
	}
	if err := flush(); err != nil {
		return err
	}
	if tail && rep[len(src)].count > 0 {
		// Replica rows after the source's last key: the source has none there.
		return tv.list(ctx, span{lo: prev})
	}
	return nil
}

// leaf is the most source rows one listing reads: leafRows, or less for a
// table whose chunks are smaller.
func (tv *tableVerify) leaf() int { return min(leafRows, tv.batch) }

// narrow lists a differing span's rows, or splits it into parts first when
// it holds more than a leaf.
func (tv *tableVerify) narrow(ctx context.Context, s span) error {
	if s.count <= int64(tv.leaf()) {
		return tv.list(ctx, s)
	}
	parts, err := tv.sourceParts(ctx, s.lo, s.hi, int(s.count), partSize(int(s.count)))
	if err != nil {
		return err
	}
	if len(parts) == 0 { // the source changed since: list what is there now
		return tv.list(ctx, span{lo: s.lo, hi: s.hi})
	}
	bounds := make([][]string, len(parts))
	for i, p := range parts {
		bounds[i] = p.last
	}
	// The source may have gained rows in the span since its parts were
	// taken: those past the last part are compared as a tail up to s.hi.
	rep, err := tv.replicaParts(ctx, s.lo, append(bounds, s.hi), false)
	if err != nil {
		return err
	}
	if err := tv.locate(ctx, s.lo, parts, rep, false); err != nil {
		return err
	}
	if r := rep[len(parts)]; r.count > 0 && !equalKeys(parts[len(parts)-1].last, s.hi) {
		return tv.list(ctx, span{lo: parts[len(parts)-1].last, hi: s.hi})
	}
	return nil
}

// list reads the keys and row hashes of a span on both sides and records
// every row that differs. The source read is bounded by the span's keys
// and holds at most a leaf of rows (none for a tail: it is not read).
func (tv *tableVerify) list(ctx context.Context, s span) error {
	var src []keyHash
	if s.hi != nil || s.count > 0 {
		q, args := tv.listQuery(tv.srcHash, s, tv.pending.wm)
		err := tv.r.source(ctx, &tv.res.SourceQueries, func(ctx context.Context, c *sql.Conn) error {
			var err error
			src, err = readKeyHashes(ctx, c, stmt{q, args}, tv.key.Len(), tv.pending.wm != "")
			return err
		})
		if err != nil {
			return fmt.Errorf("list source rows of %s: %w", tv.cfg.Name, err)
		}
	}
	q, args := tv.listQuery(tv.repHash, s, "")
	rep, err := readKeyHashes(ctx, tv.conn, stmt{q, args}, tv.key.Len(), false)
	if err != nil {
		return fmt.Errorf("list replica rows of %s: %w", tv.cfg.Name, err)
	}
	diffKeyHashes(src, rep, func(kind int, r keyHash) {
		if tv.pending.pending(kind, r.wm) {
			tv.res.SourceReplica.Pending++
			return
		}
		tv.res.SourceReplica.add(kind, r.key)
	})
	return nil
}

// listQuery reads a span's keys and row hashes (and the column wm, when
// not "").
func (tv *tableVerify) listQuery(hash string, s span, wm string) (string, []any) {
	pred, args := tv.key.Range(s.lo, s.hi)
	if wm != "" {
		hash += ", " + keyset.Quote(wm)
	}
	return "SELECT " + tv.key.List() + ", " + hash + " FROM " + keyset.Quote(tv.cfg.Name) + byKey + " WHERE " + pred +
		" ORDER BY " + tv.key.List(), args
}

// keyHash is one row's key and hash (and watermark, when read).
type keyHash struct {
	key  []string
	hash uint64
	wm   string
}

// readKeyHashes reads st's rows: keyLen key values, the hash and, withWM,
// the watermark.
func readKeyHashes(ctx context.Context, q querier, st stmt, keyLen int, withWM bool) ([]keyHash, error) {
	n := keyLen + 1
	if withWM {
		n++
	}
	var out []keyHash
	err := eachRow(ctx, q, st, n, func(vals [][]byte) error {
		h, err := strconv.ParseUint(string(vals[keyLen]), 10, 64)
		if err != nil {
			return err
		}
		r := keyHash{key: strs(vals[:keyLen]), hash: h}
		if withWM {
			r.wm = string(vals[keyLen+1])
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// diffKeyHashes calls found with every row of up (upstream) and down that
// differs: missing downstream, extra downstream (a row of down), or changed.
func diffKeyHashes(up, down []keyHash, found func(kind int, r keyHash)) {
	have := make(map[string]uint64, len(down))
	for _, r := range down {
		have[state.EncodeKey(r.key)] = r.hash
	}
	for _, r := range up {
		k := state.EncodeKey(r.key)
		h, ok := have[k]
		switch {
		case !ok:
			found(kindMissing, r)
		case h != r.hash:
			found(kindChanged, r)
		}
		delete(have, k)
	}
	for _, r := range down {
		if _, ok := have[state.EncodeKey(r.key)]; ok {
			found(kindExtra, r)
		}
	}
}

func equalKeys(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
