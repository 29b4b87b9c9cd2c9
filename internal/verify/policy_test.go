package verify_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/policy"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// TestVerifyColumnPolicies: verify compares raw's hashed columns as the
// load wrote them (through the same internal/policy call), leaves dropped
// columns and the loaded-at marker alone, and still finds a changed hash.
func TestVerifyColumnPolicies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exec(t, e.src,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), SSN varchar(20), Birthdate date NOT NULL, Note text) ENGINE=MyISAM",
		`INSERT INTO patient VALUES (1, 'José', '123-45-6789', '1980-05-05', 'a\0b'), (2, NULL, NULL, '0000-00-00', NULL),
			(3, 'Nguyễn 😀', '987', '1990-01-01', 'ok')`)
	cfg := e.config(t, 2)
	cfg.Tables["patient"].ColumnPolicies = map[string]tables.ColumnPolicy{"SSN": tables.Drop, "LName": tables.Hash, "Birthdate": tables.Hash}
	key, err := policy.NewKey("0123456789abcdef0123456789abcdef-verify")
	require.NoError(t, err)

	ctx := context.Background()
	sum, err := replicate.Run(ctx, replicate.Deps{Source: connections.SourceDB{DB: e.source}, Replica: connections.ReplicationDB{DB: e.replica}, Tables: cfg},
		replicate.Options{Manager: fastManager()})
	require.NoError(t, err)
	for _, r := range sum.Tables {
		require.NoError(t, r.Err, "replicate %s", r.Table)
	}
	res, err := load.New(connections.ReplicationDB{DB: e.replica}, connections.AnalyticsRawDB{Pool: e.pg}, cfg, slog.New(slog.DiscardHandler)).
		Run(ctx, load.Options{HashKey: key, LoadedAtColumn: "_loaded_at"})
	require.NoError(t, err)
	require.Equal(t, load.StatusOK, res.Tables[0].Status, res.Tables[0].Error)

	p := byTable(t, e.verify(t, cfg, verify.Options{HashKey: key}), "patient")
	require.NoError(t, p.Err)
	assert.True(t, p.SourceReplica.Identical(), "the replica keeps the dropped column: %+v", p.SourceReplica)
	assert.True(t, p.ReplicaRaw.Identical(), "hashed, dropped and marker columns compare identical: %+v", p.ReplicaRaw)
	assert.EqualValues(t, 3, p.ReplicaRaw.Compared)

	// a hash that is not the value's is found
	e.pgExec(t, `UPDATE raw.patient SET "LName" = md5('x') WHERE "PatNum" = 3`)
	p = byTable(t, e.verify(t, cfg, verify.Options{HashKey: key}), "patient")
	require.NoError(t, p.Err)
	assert.Equal(t, []string{`["3"]`}, keys(p.ReplicaRaw.ChangedKeys))

	// without the key verify cannot compare hashed columns, and says so
	p = byTable(t, e.verify(t, cfg, verify.Options{}), "patient")
	require.Error(t, p.Err)
	assert.Contains(t, p.Err.Error(), "column_policies hash needs a key")
}
