package load

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Issue 8 item 11: a raw table changed by hand — a column's type, a
// dropped column, a dropped key — is noticed before loading into it, and
// rebuilt from the replica (reported like a schema change), even when the
// replica did not change; with a view on it the load fails naming the
// change and the fix, changing nothing.
func TestRawTableChangedByHand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t, "CREATE TABLE h (Id BIGINT NOT NULL PRIMARY KEY, Amount DECIMAL(12,3) NOT NULL, Note TEXT, Stamp DATETIME NOT NULL) ENGINE=InnoDB",
		"INSERT INTO h VALUES (1, 1.234, 'one', '2024-01-01'), (2, 2.5, 'two', '2024-01-01')", changeSeq("h", 1))
	cfg := &tables.Config{Tables: map[string]*tables.Table{"h": {Name: "h", PrimaryKey: []string{"Id"}, WatermarkColumns: []string{"Stamp"},
		Strategy: tables.Incremental, Importance: tables.Standard}}}
	load := func(want Mode) TableResult {
		t.Helper()
		r := byName(e.run(t, cfg, Options{}), "h")
		require.Equal(t, StatusOK, r.Status, r.Error)
		assert.Equal(t, want, r.Mode, r.Reason)
		return r
	}
	hand := func(q string) {
		t.Helper()
		_, err := e.pg.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	text := func(q string) string {
		t.Helper()
		var s string
		require.NoError(t, e.pg.QueryRow(ctx, q).Scan(&s), q)
		return s
	}
	load(ModeFull)
	e.exec(t, "UPDATE h SET Amount = 5.678, Stamp = '2024-01-02' WHERE Id = 1", changeSeq("h", 2))
	load(ModeIncremental)

	// A narrower type: loading into it would round 7.891 to 8.
	hand(`ALTER TABLE raw.h ALTER COLUMN "Amount" TYPE numeric(12,0)`)
	e.exec(t, "UPDATE h SET Amount = 7.891, Stamp = '2024-01-03' WHERE Id = 1", changeSeq("h", 3))
	r := load(ModeFull)
	assert.Equal(t, "raw table changed by hand: rebuild", r.Reason)
	assert.Contains(t, r.Changes, `raw table changed by hand: column "Amount" type numeric(12,0), expected numeric(12,3)`)
	assert.Equal(t, "7.891", text(`SELECT "Amount"::text FROM raw.h WHERE "Id" = 1`))

	// A dropped column and a dropped key, with nothing new in the replica.
	hand(`ALTER TABLE raw.h DROP COLUMN "Note"`)
	r = load(ModeFull)
	assert.Equal(t, []string{`raw table changed by hand: column "Note" dropped`}, r.Changes)
	assert.Equal(t, "one", text(`SELECT "Note" FROM raw.h WHERE "Id" = 1`))
	hand(`ALTER TABLE raw.h DROP CONSTRAINT "h_pkey "`)
	r = load(ModeFull)
	assert.Equal(t, []string{`raw table changed by hand: primary key (), expected (Id)`}, r.Changes)
	assert.Equal(t, "PRIMARY KEY (\"Id\")", text(`SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'raw.h'::regclass AND contype = 'p'`))
	load(ModeUnchanged)

	// A view on the table: the rebuild cannot happen in place; nothing changes.
	hand(`ALTER TABLE raw.h ALTER COLUMN "Note" TYPE varchar(5)`)
	hand(`CREATE VIEW staging.hv AS SELECT * FROM raw.h`)
	res := e.run(t, cfg, Options{})
	r = byName(res, "h")
	assert.Equal(t, StatusFailed, r.Status)
	assert.Contains(t, r.Error, `raw.h was changed by hand (raw table changed by hand: column "Note" type character varying(5), expected text) and 1 view(s) depend on it`)
	assert.Contains(t, r.Error, "drop the views (dbt rebuilds them) and load again")
	assert.Equal(t, "character varying(5)", text(`SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'raw.h'::regclass AND attname = 'Note'`))
}
