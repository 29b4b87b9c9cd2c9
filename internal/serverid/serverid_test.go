package serverid_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/serverid"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

func open(t *testing.T, cfg providers.DBConfig) *sql.DB {
	t.Helper()
	db, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// settings holds the test environment's variables for source and replica.
func settings(src, repl providers.DBConfig) *providers.Settings {
	vars := map[string]string{}
	for prefix, c := range map[string]providers.DBConfig{"TEST_OPENDENTAL_SOURCE": src, "TEST_MYSQL_REPLICATION": repl} {
		vars[prefix+"_HOST"], vars[prefix+"_PORT"], vars[prefix+"_DB"] = c.Host, fmt.Sprint(c.Port), c.Name
		vars[prefix+"_USER"], vars[prefix+"_PASSWORD"] = c.User, c.Password
	}
	return providers.NewTestSettings(nil, nil, vars)
}

// The source database given again as the replica is refused however the
// server is addressed — another host name, another port (a forwarding
// proxy) — and only by reading: neither user wrote or locked anything.
func TestReplicaThatIsTheSourceIsRefused(t *testing.T) {
	fixture, dbCfg := testdb.MySQL(t, "serverid_same")
	_, err := fixture.Exec("CREATE TABLE patient (PatNum BIGINT PRIMARY KEY)")
	require.NoError(t, err)
	src := testdb.SourceUser(t, dbCfg) // 127.0.0.1:3306
	viaName := testdb.ReplicaUser(t, dbCfg)
	viaName.Host = "localhost"
	viaPort, meter := testdb.Metered(t, testdb.ReplicaUser(t, dbCfg)) // 127.0.0.1:<another port>
	require.NotEqual(t, src.Port, viaPort.Port)

	for name, repl := range map[string]providers.DBConfig{"another host name": viaName, "another port": viaPort} {
		t.Run(name, func(t *testing.T) {
			err := serverid.CheckReplica(context.Background(), settings(src, repl), open(t, src), open(t, repl))
			require.Error(t, err)
			assert.ErrorIs(t, err, serverid.ErrReplicaIsSource)
			assert.ErrorIs(t, err, providers.ErrInvalidConfig, "a configuration error: exit 2")
			msg := err.Error()
			for _, want := range []string{"TEST_MYSQL_REPLICATION_DB=\"" + dbCfg.Name + "\" at " + repl.Addr(),
				"TEST_OPENDENTAL_SOURCE_DB=\"" + dbCfg.Name + "\" at " + src.Addr(),
				"Set TEST_MYSQL_REPLICATION_DB to a separate database", "Nothing was written"} {
				assert.Contains(t, msg, want)
			}
			assert.NotContains(t, msg, src.Password)
			assert.NotContains(t, msg, repl.Password)
			for _, u := range []providers.DBConfig{src, repl} {
				assert.Zero(t, testdb.UserCost(t, u).Updates, "%s wrote nothing", u.User)
			}
		})
	}
	seen := meter.Statements()
	require.NotEmpty(t, seen)
	for _, s := range seen { // the replica side, statement by statement
		q := strings.ToUpper(s.Query)
		assert.True(t, strings.HasPrefix(q, "SHOW ") || strings.HasPrefix(q, "SELECT DATABASE()") || strings.HasPrefix(q, "SET "), "only reads: %s", s)
		assert.NotContains(t, q, "LOCK", s.String())
	}
	var tables int
	require.NoError(t, fixture.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&tables))
	assert.Equal(t, 1, tables, "no table created in the source")
}

// A different database on the same server is the normal development setup,
// and is accepted; so is one whose name differs only in case where the
// server tells case apart (lower_case_table_names = 0).
func TestDifferentDatabaseOnTheSameServerIsAccepted(t *testing.T) {
	_, srcCfg := testdb.MySQL(t, "serverid_src")
	_, replCfg := testdb.MySQL(t, "serverid_repl")
	src, repl := testdb.SourceUser(t, srcCfg), testdb.ReplicaUser(t, replCfg)
	require.NoError(t, serverid.CheckReplica(context.Background(), settings(src, repl), open(t, src), open(t, repl)))

	a, err := serverid.Read(context.Background(), open(t, src))
	require.NoError(t, err)
	b, err := serverid.Read(context.Background(), open(t, repl))
	require.NoError(t, err)
	assert.True(t, a.SameServer(b))
	assert.False(t, a.SameDatabase(b))
	assert.Equal(t, srcCfg.Name, a.Database)
	assert.NotEmpty(t, a.Hostname)
	assert.NotZero(t, a.Port)
	assert.NotEmpty(t, a.Datadir)
	assert.Empty(t, a.UUID, "MariaDB 10.11 has no server_uuid")
}

func TestSameServerAndDatabaseRules(t *testing.T) {
	base := serverid.ID{Hostname: "db1", Port: 3306, Datadir: "/var/lib/mysql/", ServerID: 1, Started: 1000, Database: "opendental"}
	with := func(f func(*serverid.ID)) serverid.ID { id := base; f(&id); return id }
	for _, c := range []struct {
		name       string
		other      serverid.ID
		server, db bool
	}{
		{"identical", base, true, true},
		{"start read a second apart", with(func(i *serverid.ID) { i.Started = 1001 }), true, true},
		{"started at another time: another machine", with(func(i *serverid.ID) { i.Started = 5000 }), false, false},
		{"another host", with(func(i *serverid.ID) { i.Hostname = "db2" }), false, false},
		{"another port: another instance", with(func(i *serverid.ID) { i.Port = 3307 }), false, false},
		{"another data directory", with(func(i *serverid.ID) { i.Datadir = "/srv/mysql2/" }), false, false},
		{"another server_id", with(func(i *serverid.ID) { i.ServerID = 2 }), false, false},
		{"another database", with(func(i *serverid.ID) { i.Database = "opendental_replica" }), true, false},
		{"case differs, case-sensitive server", with(func(i *serverid.ID) { i.Database = "OpenDental" }), true, false},
		{"one server_uuid only (MySQL vs MariaDB fields)", with(func(i *serverid.ID) { i.UUID = "u1" }), true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.server, base.SameServer(c.other))
			assert.Equal(t, c.db, base.SameDatabase(c.other))
		})
	}
	ci := with(func(i *serverid.ID) { i.LowerCase = 1 })
	assert.True(t, ci.SameDatabase(with(func(i *serverid.ID) { i.LowerCase = 1; i.Database = "OpenDental" })), "lower_case_table_names=1: one database")
	u1, u2 := with(func(i *serverid.ID) { i.UUID = "u1" }), with(func(i *serverid.ID) { i.UUID = "u2" })
	assert.False(t, u1.SameServer(u2), "different server_uuid: different servers")
	assert.True(t, u1.SameServer(u1))
}
