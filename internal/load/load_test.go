package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

type env struct {
	my      *sql.DB // writes the test's replica data
	replica *sql.DB // what the loader reads through: factory-built, as the CLI opens it
	pg      *pgxpool.Pool
	cfg     providers.DBConfig // the replica database's connection settings
}

func newEnv(t *testing.T) *env {
	t.Helper()
	my, cfg := testdb.MySQL(t, "load")
	replica, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { replica.Close() })
	pg, _ := testdb.Postgres(t, "load")
	return &env{my: my, replica: replica, pg: pg, cfg: cfg}
}

func (e *env) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		// one multi-statement call keeps the session settings for the insert
		_, err := e.my.Exec("SET sql_mode = '', time_zone = '+00:00'; " + s)
		require.NoError(t, err, s)
	}
}

func (e *env) loader(cfg *tables.Config) *Loader {
	return New(connections.ReplicationDB{DB: e.replica}, connections.AnalyticsRawDB{Pool: e.pg}, cfg, slog.New(slog.DiscardHandler))
}

func (e *env) run(t *testing.T, cfg *tables.Config, opts Options) *Result {
	t.Helper()
	res, err := e.loader(cfg).Run(context.Background(), opts)
	require.NoError(t, err)
	return res
}

// texts reads one raw row as the text PostgreSQL prints for each column (nil = NULL).
func (e *env) texts(t *testing.T, query string, args ...any) []*string {
	t.Helper()
	rows, err := e.pg.Query(context.Background(), query, args...)
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next(), "no row for %s", query)
	vals, err := rows.Values()
	require.NoError(t, err)
	out := make([]*string, len(vals))
	for i, v := range vals {
		if v != nil {
			s := v.(string)
			out[i] = &s
		}
	}
	return out
}

func ptr(s string) *string { return &s }

func byName(res *Result, name string) TableResult {
	for _, r := range res.Tables {
		if r.Table == name {
			return r
		}
	}
	return TableResult{}
}

const edgeDDL = "CREATE TABLE edge (" +
	"id bigint unsigned NOT NULL PRIMARY KEY, d_null date NULL, d_nn date NOT NULL, dt_nn datetime NOT NULL," +
	"dt6 datetime(6) NULL, ts timestamp NULL DEFAULT NULL, txt varchar(50) CHARACTER SET utf8mb4, lat varchar(20) CHARACTER SET latin1," +
	"u3 varchar(20) CHARACTER SET utf8mb3, dec65 decimal(65,30), tm time, b1 bit(1), b64 bit(64), flag tinyint(1)," +
	"yr year, en enum('a','b c'), st set('x','y','z'), js json, bl blob, geo geometry NULL, fl float, db double," +
	"`select` int, `Mixed Case` varchar(10), `with space` int, ui int unsigned, si smallint unsigned," +
	"u4 text CHARACTER SET utf8mb4) ENGINE=InnoDB"

func TestLoadEdgeValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.exec(t, edgeDDL,
		"INSERT INTO edge VALUES (18446744073709551615, '0000-00-00', '2019-00-00', '0000-00-00 00:00:00', '2019-05-00 10:00:00.5', NULL,"+
			" 'a\\0b', 'café', UNHEX('41EDA08042'), '12345678901234567890123456789012345.123456789012345678901234567890',"+
			" '838:59:59', b'1', b'1111111111111111111111111111111111111111111111111111111111111111', 4, 2019, 'b c', 'x,z',"+
			" '{\"b\": 1, \"a\": [1.0e2], \"b\": 2}', UNHEX('00FF5C0A'), ST_GeomFromText('POINT(1 2)'), 1.23456789, 1.2345678901234567,"+
			" 1, 'M', 2, 4294967295, 65535, UNHEX('F09F9880EDBFBF'))",
		"INSERT INTO edge VALUES (0, '0001-01-01', '2020-02-29', '2019-12-31 23:59:59', '2020-01-01 00:00:00.000001', '2020-06-01 12:00:00',"+
			" '😀 tab\there\nnew\\\\ end', 'Ünïcödé', 'ok', '-0.000000000000000000000000000001', '-838:59:59', b'0',"+
			" b'1000000000000000000000000000000000000000000000000000000000000001', 0, 0, 'a', '', '[]', '', NULL, -3.4e38, -1e-300,"+
			" NULL, '', -1, 0, 0, 'ok 😀')",
	)
	res := e.run(t, nil, Options{})
	require.Len(t, res.Tables, 1)
	r := res.Tables[0]
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode)
	assert.EqualValues(t, 2, r.RowsRead)
	assert.EqualValues(t, 2, r.RowsWritten)
	assert.EqualValues(t, 2, r.RawRows)
	assert.Equal(t, map[string]map[string]int64{
		"d_null": {"zero_date": 1}, "d_nn": {"zero_date": 1}, "dt_nn": {"zero_date": 1}, "dt6": {"zero_date": 1},
		"txt": {"nul_byte": 1}, "u3": {"invalid_utf8": 1}, "u4": {"invalid_utf8": 1},
	}, r.Conversions)

	cols := `d_null::text, d_nn::text, dt_nn::text, dt6::text, (ts AT TIME ZONE 'UTC')::text, txt, lat, u3, dec65::text, tm::text,
		b1::text, b64::text, flag::text, yr::text, en, st, js, bl::text, geo::text, fl::text, db::text,
		"select"::text, "Mixed Case", "with space"::text, ui::text, si::text, id::text, u4`
	want := map[string][]*string{
		"18446744073709551615": {nil, nil, nil, nil, nil, ptr("ab"), ptr("café"), ptr("A\uFFFDB"),
			ptr("12345678901234567890123456789012345.123456789012345678901234567890"), ptr("838:59:59"),
			ptr("1"), ptr(strings.Repeat("1", 64)), ptr("4"), ptr("2019"), ptr("b c"), ptr("x,z"),
			ptr(`{"b": 1, "a": [1.0e2], "b": 2}`), ptr(`\x00ff5c0a`), ptr(`\x000000000101000000000000000000f03f0000000000000040`),
			ptr("1.2345679"), ptr("1.2345678901234567"), ptr("1"), ptr("M"), ptr("2"), ptr("4294967295"), ptr("65535"),
			ptr("18446744073709551615"), ptr("😀\uFFFD")},
		"0": {ptr("0001-01-01"), ptr("2020-02-29"), ptr("2019-12-31 23:59:59"), ptr("2020-01-01 00:00:00.000001"),
			ptr("2020-06-01 12:00:00"), ptr("😀 tab\there\nnew\\ end"), ptr("Ünïcödé"), ptr("ok"),
			ptr("-0.000000000000000000000000000001"), ptr("-838:59:59"), ptr("0"),
			ptr("1" + strings.Repeat("0", 62) + "1"), ptr("0"), ptr("0"), ptr("a"), ptr(""), ptr("[]"), ptr(`\x`), nil,
			ptr("-3.4e+38"), ptr("-1e-300"), nil, ptr(""), ptr("-1"), ptr("0"), ptr("0"), ptr("0"), ptr("ok 😀")},
	}
	for id, w := range want {
		t.Run("row "+id, func(t *testing.T) {
			got := e.texts(t, "SELECT "+cols+" FROM raw.edge WHERE id = $1::numeric", id)
			names := strings.Split(cols, ",")
			for i := range w {
				assert.Equal(t, w[i], got[i], "column %s", strings.TrimSpace(names[i]))
			}
		})
	}

	// Types come from the definition: unsigned bigint is numeric(20,0), tinyint(1) smallint, …
	types := map[string]string{}
	rows, err := e.pg.Query(context.Background(), `SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
		WHERE attrelid = 'raw.edge'::regclass AND attnum > 0 AND NOT attisdropped`)
	require.NoError(t, err)
	for rows.Next() {
		var n, ty string
		var notNull bool
		require.NoError(t, rows.Scan(&n, &ty, &notNull))
		types[n] = ty
		assert.Equal(t, n == "id", notNull, "only the key is NOT NULL: %s", n)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, "numeric(20,0)", types["id"])
	assert.Equal(t, "smallint", types["flag"])
	assert.Equal(t, "numeric(65,30)", types["dec65"])
	assert.Equal(t, "interval", types["tm"])
	assert.Equal(t, "bit(64)", types["b64"])
	assert.Equal(t, "bigint", types["ui"])
	assert.Equal(t, "integer", types["si"])
	assert.Equal(t, "timestamp with time zone", types["ts"])

	// The counts are in the load state too.
	var conv []byte
	var status string
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT status, conversions::text FROM pipeline.etl_load_status WHERE table_name = 'edge'").Scan(&status, &conv))
	assert.Equal(t, StatusOK, status)
	var stored map[string]map[string]int64
	require.NoError(t, json.Unmarshal(conv, &stored))
	assert.Equal(t, r.Conversions, stored)
}
