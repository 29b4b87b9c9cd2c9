package demo

import (
	"context"
	"database/sql"
	"fmt"
)

// link makes a child row agree with its parent about the patient: a
// procedure belongs to its appointment's patient, a claim payment or a
// payment split to its procedure's patient.
type link struct {
	Child, Via, Parent, Column string
}

// links run in order, so a procedure's patient is fixed before its claims copy it.
var links = []link{
	{"procedurelog", "AptNum", "appointment", "PatNum"},
	{"claimproc", "ProcNum", "procedurelog", "PatNum"},
	{"paysplit", "ProcNum", "procedurelog", "PatNum"},
	{"adjustment", "ProcNum", "procedurelog", "PatNum"},
	{"procnote", "ProcNum", "procedurelog", "PatNum"},
}

// alignPatients applies links after seeding. Timestamp columns are assigned
// to themselves so that ON UPDATE CURRENT_TIMESTAMP keeps the seeded values.
func alignPatients(ctx context.Context, db *sql.DB, tables map[string]*table) error {
	for _, l := range links {
		child, parent := tables[l.Child], tables[l.Parent]
		if child == nil || parent == nil || len(parent.PK) != 1 || !hasColumn(child, l.Via) || !hasColumn(child, l.Column) || !hasColumn(parent, l.Column) {
			continue
		}
		set := fmt.Sprintf("c.`%s` = p.`%s`", l.Column, l.Column)
		for _, c := range child.Columns {
			if c.DataType == "timestamp" {
				set += fmt.Sprintf(", c.`%s` = c.`%s`", c.Name, c.Name)
			}
		}
		q := fmt.Sprintf("UPDATE `%s` c JOIN `%s` p ON p.`%s` = c.`%s` SET %s", l.Child, l.Parent, parent.PK[0], l.Via, set)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("align %s.%s with %s: %w", l.Child, l.Column, l.Parent, err)
		}
	}
	return nil
}

func hasColumn(t *table, name string) bool {
	for _, c := range t.Columns {
		if c.Name == name {
			return true
		}
	}
	return false
}
