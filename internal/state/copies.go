package state

import (
	"context"
	"fmt"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// Copy is a table's replica copy as a reader (load, status) sees it.
type Copy struct {
	Table     string
	Mode      string
	Status    string
	Error     string
	ChangeSeq int64
}

// Complete reports whether the replica table holds a complete and
// consistent copy that a reader may publish, and if not, why.
//
// Every chunk commits in one transaction with the state that describes it,
// so the rule follows from the mode of the last copy:
//   - it ended (status ok): complete.
//   - an incremental or diff copy that failed or was stopped: consistent. It
//     only upserts and deletes rows of a complete copy, each chunk with its
//     state: the table is that copy plus whole chunks, as if the clinic's
//     changes had stopped a little earlier; the next run continues it.
//   - a full or shadow copy that has not ended: not complete. A full copy
//     starts when the table is new, rebuilt (its primary key changed) or
//     altered (its columns changed; the state is written before the DDL):
//     rows not copied yet are missing or hold the old shape's values. A
//     shadow copy's first swap has not happened (the live table is empty or
//     altered). A reader keeps its last good copy until the copy ends.
func (c Copy) Complete() (bool, string) {
	if c.Status == StatusOK || c.Mode != ModeFull && c.Mode != ModeShadow {
		return true, ""
	}
	why := "replica copy incomplete (" + c.Mode + " copy "
	switch {
	case c.Status == StatusFailed && c.Error != "":
		why += "not completed; last replicate failed: " + c.Error
	case c.Status == StatusFailed:
		why += "not completed; last replicate failed"
	default:
		why += "under way, or stopped before it ended"
	}
	return false, why + "); raw keeps its last good copy until a replicate completes it"
}

// ReadCopies reads every table's copy in one query, keyed by table name;
// nil when the replica has no state tables (no replicate run wrote it: its
// tables were made another way, and nothing is known of them).
func ReadCopies(ctx context.Context, q schema.Querier) (map[string]Copy, error) {
	rows, err := q.QueryContext(ctx, "SELECT table_name, mode, status, COALESCE(error, ''), change_seq FROM `"+CopyStatusTable+"`")
	if isNoSuchTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", CopyStatusTable, err)
	}
	defer rows.Close()
	out := map[string]Copy{}
	for rows.Next() {
		var c Copy
		if err := rows.Scan(&c.Table, &c.Mode, &c.Status, &c.Error, &c.ChangeSeq); err != nil {
			return nil, fmt.Errorf("read %s: %w", CopyStatusTable, err)
		}
		out[c.Table] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", CopyStatusTable, err)
	}
	return out, nil
}
