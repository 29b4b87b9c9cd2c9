package load

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/policy"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

const (
	testKey  = "0123456789abcdef0123456789abcdef-test-key"
	otherKey = "fedcba9876543210fedcba9876543210-other-key"
)

// mac is the expected hash, computed independently of internal/policy.
func mac(key, value string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

func mustKey(t *testing.T, s string) *policy.Key {
	t.Helper()
	k, err := policy.NewKey(s)
	require.NoError(t, err)
	return k
}

func policyConfig(policies map[string]tables.ColumnPolicy) *tables.Config {
	cfg := patientConfig()
	cfg.Tables["patient"].ColumnPolicies = policies
	return cfg
}

// rawColumns lists raw.patient's columns in order.
func rawColumns(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.pg.Query(context.Background(), `SELECT attname FROM pg_attribute WHERE attrelid = 'raw.patient'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	return out
}

func TestColumnPoliciesFullAndIncremental(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), SSN varchar(20), Birthdate date NOT NULL, DateTStamp timestamp NOT NULL DEFAULT current_timestamp()) ENGINE=InnoDB",
		`INSERT INTO patient VALUES (1, 'José', '123-45-6789', '1980-05-05', '2024-01-01 10:00:00'), (2, NULL, NULL, '0000-00-00', '2024-01-01 09:00:00'),
			(3, 'Nguyễn 😀', '987', '1990-01-01', '2024-01-01 08:00:00')`,
		changeSeq("patient", 1),
	)
	cfg := policyConfig(map[string]tables.ColumnPolicy{"SSN": tables.Drop, "LName": tables.Hash, "Birthdate": tables.Keep})
	opts := Options{HashKey: mustKey(t, testKey)}
	r := byName(e.run(t, cfg, opts), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode)
	assert.Equal(t, []string{"PatNum", "LName", "Birthdate", "DateTStamp"}, rawColumns(t, e), "SSN is dropped from raw")
	assert.Equal(t, []*string{ptr(mac(testKey, "José"))}, e.texts(t, `SELECT "LName" FROM raw.patient WHERE "PatNum" = 1`))
	assert.Equal(t, []*string{nil}, e.texts(t, `SELECT "LName" FROM raw.patient WHERE "PatNum" = 2`), "NULL stays NULL")
	assert.Equal(t, []*string{ptr("1980-05-05")}, e.texts(t, `SELECT "Birthdate"::text FROM raw.patient WHERE "PatNum" = 1`))

	// incremental: a changed name is hashed the same way, the dropped column stays out
	e.exec(t, "UPDATE patient SET LName = 'Smith', SSN = '555', DateTStamp = '2024-01-02 00:00:00' WHERE PatNum = 3",
		"INSERT INTO patient VALUES (4, 'Zoë', '444', '2001-02-03', '2024-01-02 00:00:00')", changeSeq("patient", 2))
	r = byName(e.run(t, cfg, opts), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeIncremental, r.Mode)
	assert.EqualValues(t, 2, r.RowsWritten)
	assert.Equal(t, []*string{ptr(mac(testKey, "Smith"))}, e.texts(t, `SELECT "LName" FROM raw.patient WHERE "PatNum" = 3`))
	assert.Equal(t, []*string{ptr(mac(testKey, "Zoë"))}, e.texts(t, `SELECT "LName" FROM raw.patient WHERE "PatNum" = 4`))
	assert.NotContains(t, rawColumns(t, e), "SSN")

	// a policy change rebuilds: Birthdate now hashed (its YYYY-MM-DD text; a zero date stays NULL)
	cfg = policyConfig(map[string]tables.ColumnPolicy{"SSN": tables.Drop, "LName": tables.Hash, "Birthdate": tables.Hash})
	r = byName(e.run(t, cfg, opts), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode, r.Reason)
	assert.Contains(t, r.Changes, `column "Birthdate" type changed date → text`)
	assert.Contains(t, r.Changes, `column "Birthdate" now hashed (column_policies)`)
	assert.Equal(t, []*string{ptr(mac(testKey, "2001-02-03"))}, e.texts(t, `SELECT "Birthdate" FROM raw.patient WHERE "PatNum" = 4`))
	assert.Equal(t, []*string{nil}, e.texts(t, `SELECT "Birthdate" FROM raw.patient WHERE "PatNum" = 2`))
	assert.Equal(t, map[string]int64{"zero_date": 1}, r.Conversions["Birthdate"])

	// un-dropping SSN rebuilds and brings it back
	cfg = policyConfig(map[string]tables.ColumnPolicy{"LName": tables.Hash, "Birthdate": tables.Hash})
	r = byName(e.run(t, cfg, opts), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode)
	assert.Contains(t, r.Changes, `column "SSN" added (text)`)
	assert.Equal(t, []*string{ptr("555")}, e.texts(t, `SELECT "SSN" FROM raw.patient WHERE "PatNum" = 3`))

	// a new key rehashes everything instead of mixing two keys' hashes
	r = byName(e.run(t, cfg, Options{HashKey: mustKey(t, otherKey)}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode)
	assert.Contains(t, r.Changes, "hash key changed (PIPELINE_HASH_KEY): hashed columns rehashed")
	assert.Equal(t, []*string{ptr(mac(otherKey, "José"))}, e.texts(t, `SELECT "LName" FROM raw.patient WHERE "PatNum" = 1`))
}

func TestColumnPoliciesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t, "CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), DateTStamp timestamp NOT NULL DEFAULT current_timestamp()) ENGINE=InnoDB",
		"INSERT INTO patient VALUES (1, 'José', '2024-01-01 10:00:00')", changeSeq("patient", 1))
	for name, c := range map[string]struct {
		policies map[string]tables.ColumnPolicy
		key      *policy.Key
		want     string
	}{
		"no key":         {map[string]tables.ColumnPolicy{"LName": tables.Hash}, nil, "column_policies hash needs a key: patient.LName; set PIPELINE_HASH_KEY"},
		"unknown column": {map[string]tables.ColumnPolicy{"SSN": tables.Drop}, nil, `names column "SSN", which the replica table does not have`},
		"key column":     {map[string]tables.ColumnPolicy{"patnum": tables.Hash}, mustKey(t, testKey), "PatNum is a primary key column and must be kept"},
	} {
		r := byName(e.run(t, policyConfig(c.policies), Options{HashKey: c.key}), "patient")
		assert.Equal(t, StatusFailed, r.Status, name)
		assert.Contains(t, r.Error, c.want, name)
		assert.NotContains(t, r.Error, testKey, name)
	}
	var exists bool
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT to_regclass('raw.patient') IS NOT NULL").Scan(&exists))
	assert.False(t, exists, "nothing was loaded")
}
