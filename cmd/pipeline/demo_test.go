package main

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

func demoArgs(mode, host string, port int, user, db string, extra ...string) []string {
	return append([]string{"demo", mode, "--host", host, "--port", strconv.Itoa(port), "--user", user, "--db", db}, extra...)
}

func TestDemoCommandRejectsBadUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no mode", []string{"demo"}, "usage: pipeline demo seed|mutate"},
		{"unknown mode", []string{"demo", "grow"}, "usage: pipeline demo seed|mutate"},
		{"zero scale", []string{"demo", "seed", "--scale", "0"}, "--scale must be in (0, 10]"},
		{"fraction above one", []string{"demo", "mutate", "--fraction", "2"}, "--fraction in (0, 1]"},
		{"stray argument", []string{"demo", "seed", "opendental"}, `unexpected arguments ["opendental"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			assert.Equal(t, exitConfig, dispatch(context.Background(), tt.args, &out, &errb))
			assert.Contains(t, errb.String(), tt.want)
		})
	}
}

func TestDemoCommandSeedsAndMutates(t *testing.T) {
	db, cfg := testdb.MySQL(t, "demo_cli")
	t.Setenv("DEMO_MYSQL_PASSWORD", cfg.Password)
	ctx := context.Background()

	var out, errb bytes.Buffer
	code := dispatch(ctx, demoArgs("seed", cfg.Host, cfg.Port, cfg.User, cfg.Name, "--scale", "0.00001", "--min-rows", "2", "--legacy-values"), &out, &errb)
	require.Equal(t, exitOK, code, errb.String())
	assert.Contains(t, out.String(), "seeded "+cfg.Name+": 408 tables")
	// Two rows a table: row 1 of each of the seven legacy columns.
	assert.Contains(t, out.String(), "with 7 legacy values")
	var zero int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM procedurelog WHERE CAST(DateTP AS CHAR) = '0000-00-00'").Scan(&zero))
	assert.Equal(t, 1, zero, "--legacy-values reaches the seed")

	out.Reset()
	code = dispatch(ctx, demoArgs("mutate", cfg.Host, cfg.Port, cfg.User, cfg.Name, "--fraction", "0.5"), &out, &errb)
	require.Equal(t, exitOK, code, errb.String())
	assert.Regexp(t, `^mutated `+cfg.Name+`: [1-9][0-9]* inserted, [0-9]+ updated, [0-9]+ deleted`, out.String())
}

func TestDemoCommandRefusesARealDatabase(t *testing.T) {
	db, cfg := testdb.MySQL(t, "clinic_cli")
	_, err := db.Exec("CREATE TABLE patient (PatNum BIGINT PRIMARY KEY)")
	require.NoError(t, err)
	t.Setenv("DEMO_MYSQL_PASSWORD", cfg.Password)
	for _, mode := range []string{"seed", "mutate"} {
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), demoArgs(mode, cfg.Host, cfg.Port, cfg.User, cfg.Name), &out, &errb)
		assert.Equal(t, exitConfig, code, mode)
		assert.Contains(t, errb.String(), "not a demo database", mode)
		assert.Contains(t, errb.String(), "--force", mode)
	}
	var n int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&n))
	assert.Equal(t, 1, n, "nothing was created")
}
