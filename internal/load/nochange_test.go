package load

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// A night with nothing to load sends the replica no statement per table: the
// load decides "unchanged" from what it reads once at its start (the
// replica's schema and copy states; raw's shapes and load states). It was
// three schema queries per table, most of a 408-table no-change run. A
// table that did change is still looked at afresh and loaded.
func TestNoChangeLoadSendsNoStatementPerTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	cfg := &tables.Config{Tables: map[string]*tables.Table{}}
	const n = 30
	for i := range n {
		name := fmt.Sprintf("t%02d", i)
		e.exec(t, "CREATE TABLE "+name+" (Id bigint NOT NULL PRIMARY KEY, V varchar(20), KEY v (V)) ENGINE=InnoDB",
			"INSERT INTO "+name+" VALUES (1, 'a'), (2, 'b')", changeSeq(name, 1))
		cfg.Tables[name] = &tables.Table{Name: name, PrimaryKey: []string{"Id"}, Strategy: tables.FullTable, BatchSize: 1000, Importance: tables.Standard}
	}
	for _, r := range e.run(t, cfg, Options{}).Tables {
		require.Equal(t, StatusOK, r.Status, "%s: %s", r.Table, r.Error)
	}

	// The same load through a meter: nothing changed, then one table did.
	mcfg, meter := testdb.Metered(t, testdb.SourceUser(t, e.cfg))
	db, err := factory.New().MySQL(mcfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	metered := New(connections.ReplicationDB{DB: db}, connections.AnalyticsRawDB{Pool: e.pg}, cfg, slog.New(slog.DiscardHandler))

	res, err := metered.Run(context.Background(), Options{})
	require.NoError(t, err)
	for _, r := range res.Tables {
		assert.Equal(t, ModeUnchanged, r.Mode, r.Table)
	}
	quiet := len(meter.Statements())
	assert.Less(t, quiet, n, "statements to the replica for %d unchanged tables", n)

	e.exec(t, "UPDATE t07 SET V = 'changed' WHERE Id = 2", changeSeq("t07", 2))
	res, err = metered.Run(context.Background(), Options{})
	require.NoError(t, err)
	for _, r := range res.Tables {
		want := ModeUnchanged
		if r.Table == "t07" {
			want = ModeFull
		}
		assert.Equal(t, want, r.Mode, r.Table)
		assert.Equal(t, StatusOK, r.Status, "%s: %s", r.Table, r.Error)
	}
	var v string
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT "V" FROM raw.t07 WHERE "Id" = 2`).Scan(&v))
	assert.Equal(t, "changed", v)
	t.Logf("replica statements: %d for a no-change load of %d tables, %d with one table changed", quiet, n, len(meter.Statements())-quiet)
}
