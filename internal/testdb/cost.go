package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// Measuring what code costs the source server.
//
// MariaDB 10.11 here has performance_schema off (turning it on needs a
// restart) and the slow query log off (turning it on, or sending it to a
// table, is a global change that would touch every other test). What it
// offers without either is the user-statistics plugin: after
// SET GLOBAL userstat=1 (harmless: in-memory counters) the server keeps, per
// user, information_schema.USER_STATISTICS (SELECT_COMMANDS, OTHER_COMMANDS,
// UPDATE_COMMANDS, ROWS_READ, ROWS_SENT, …) and, per table over all users,
// TABLE_STATISTICS (ROWS_READ, ROWS_CHANGED) and INDEX_STATISTICS. The
// counters are merged into those tables at the end of every statement, so a
// user that exists only for one test measures exactly what that test's code
// cost the server:
//
//   - ROWS_READ counts the rows the storage engines handed the server (the
//     rows a statement examined: a full scan of 10 000 rows reads 10 000, a
//     primary-key range with LIMIT 100 reads 100, MAX() of an indexed column
//     reads 1, a MyISAM COUNT(*) reads 0). Reads of internal temporary tables
//     and of information_schema are not counted.
//   - SELECT_COMMANDS counts SELECT statements; OTHER_COMMANDS counts SET, DO
//     and the like; SHOW statements are not counted at all.
//
// SourceUser creates such a user (SELECT only, like the clinic's; ReplicaUser
// one with every privilege on one database), UserCost reads its totals and TableCosts the per-table ones. Meter (meter.go) goes
// down to single statements.
//
// Caveats: FLUSH USER_STATISTICS or SET GLOBAL userstat=0 by someone else
// would reset or stop the counters; nothing in this repository does either.

// SourceUser creates a fresh MariaDB user that may only SELECT from the
// database of db (a config from MySQL), and returns a source config
// (read-only sessions) that logs in as it. The user is dropped when the test
// ends. It also turns on the server's user statistics (userstat=1).
func SourceUser(t testing.TB, db providers.DBConfig) providers.DBConfig {
	t.Helper()
	cfg := MySQLConfig(db.Name, catalog.DatabaseSource)
	cfg.User, cfg.Password = newUser(t, db.Name, "SELECT")
	return cfg
}

// ReplicaUser creates a fresh MariaDB user with every privilege on the
// database of db only, and returns a replication config that logs in as it:
// a user of its own, so UserCost and Metered see exactly what the code
// under test did to the replica. Dropped when the test ends.
func ReplicaUser(t testing.TB, db providers.DBConfig) providers.DBConfig {
	t.Helper()
	cfg := MySQLConfig(db.Name, catalog.DatabaseReplication)
	cfg.User, cfg.Password = newUser(t, db.Name, "ALL PRIVILEGES")
	return cfg
}

// newUser creates a user granted privileges on database, with userstat on.
func newUser(t testing.TB, database, privileges string) (user, password string) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	user = "pipeline_test_u" + hex.EncodeToString(b)
	password = "pw" + hex.EncodeToString(b)
	admin := adminMySQL(t)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, stmt := range []string{
		"SET GLOBAL userstat = 1",
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, password),
		fmt.Sprintf("GRANT %s ON `%s`.* TO '%s'@'%%'", privileges, strings.ReplaceAll(database, "`", "``"), user),
	} {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("testdb: create user %s: %v", user, err)
		}
	}
	t.Cleanup(func() {
		a := adminMySQL(t)
		defer a.Close()
		if _, err := a.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)); err != nil {
			t.Errorf("testdb: drop user %s: %v", user, err)
		}
	})
	return user, password
}

// adminMySQL is a root connection to the test server (no database).
func adminMySQL(t testing.TB) *sql.DB {
	t.Helper()
	a, err := OpenMySQL(MySQLConfig("", catalog.DatabaseReplication))
	if err != nil {
		t.Fatalf("testdb: open MariaDB: %v; %s", err, howToStart)
	}
	a.SetMaxOpenConns(1)
	return a
}

// Cost is what one user has cost the server so far (USER_STATISTICS).
type Cost struct {
	Selects     int64 // SELECT statements
	Others      int64 // other statements but SHOW (SET, DO, …)
	Updates     int64 // writing statements (a SELECT-only user has none)
	RowsRead    int64 // rows examined
	RowsSent    int64 // rows returned
	Connections int64 // connections opened
}

// Queries counts every statement the server counted (SHOW is not counted).
func (c Cost) Queries() int64 { return c.Selects + c.Others + c.Updates }

// Sub is c minus before: the cost of what happened in between.
func (c Cost) Sub(before Cost) Cost {
	return Cost{
		Selects: c.Selects - before.Selects, Others: c.Others - before.Others,
		Updates: c.Updates - before.Updates, RowsRead: c.RowsRead - before.RowsRead,
		RowsSent: c.RowsSent - before.RowsSent, Connections: c.Connections - before.Connections,
	}
}

// String is a one-line summary for test messages.
func (c Cost) String() string {
	return fmt.Sprintf("%d queries (%d SELECT, %d other, %d writing), %d rows examined, %d sent, %d connections",
		c.Queries(), c.Selects, c.Others, c.Updates, c.RowsRead, c.RowsSent, c.Connections)
}

// UserCost reads the cost of user (a config from SourceUser) since it was
// created. Take it before and after the code under test and Sub the two.
// Call it once the code under test has returned. The server merges a
// statement's counters just after the client has its answer, so UserCost
// first waits until every connection of the user is idle (Sleep).
func UserCost(t testing.TB, user providers.DBConfig) Cost {
	t.Helper()
	admin := adminMySQL(t)
	defer admin.Close()
	for i := 0; ; i++ {
		c, threads, err := snapshot(admin, user.User)
		if err != nil {
			t.Fatalf("testdb: read cost of %s: %v", user.User, err)
		}
		busy := 0
		for _, th := range threads {
			if !th.sleeping {
				busy++
			}
		}
		if busy == 0 {
			return c
		}
		if i == 10000 {
			t.Fatalf("testdb: read cost of %s: %d of its connections are still running a statement", user.User, busy)
		}
		time.Sleep(time.Millisecond) // polling the server, not ordering test events
	}
}

func readUserCost(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, user string) (Cost, error) {
	var c Cost
	err := q.QueryRowContext(ctx, `SELECT SELECT_COMMANDS, OTHER_COMMANDS, UPDATE_COMMANDS, ROWS_READ, ROWS_SENT, TOTAL_CONNECTIONS
		FROM information_schema.USER_STATISTICS WHERE USER = '`+user+`'`).
		Scan(&c.Selects, &c.Others, &c.Updates, &c.RowsRead, &c.RowsSent, &c.Connections)
	if err == sql.ErrNoRows { // not connected yet
		return Cost{}, nil
	}
	return c, err
}

// TableCost is what one table has cost the server (TABLE_STATISTICS).
type TableCost struct {
	RowsRead    int64 // rows examined, by every user
	RowsChanged int64 // rows written
}

// TableCosts reads the per-table statistics of the database of db, by table
// name. They count every user's reads, the test's own fixture queries
// included: take them before and after the code under test.
func TableCosts(t testing.TB, db providers.DBConfig) map[string]TableCost {
	t.Helper()
	admin := adminMySQL(t)
	defer admin.Close()
	rows, err := admin.Query(`SELECT TABLE_NAME, ROWS_READ, ROWS_CHANGED FROM information_schema.TABLE_STATISTICS
		WHERE TABLE_SCHEMA = '` + strings.ReplaceAll(db.Name, "'", "''") + `'`)
	if err != nil {
		t.Fatalf("testdb: read table statistics of %s: %v", db.Name, err)
	}
	defer rows.Close()
	out := map[string]TableCost{}
	for rows.Next() {
		var name string
		var c TableCost
		if err := rows.Scan(&name, &c.RowsRead, &c.RowsChanged); err != nil {
			t.Fatalf("testdb: read table statistics of %s: %v", db.Name, err)
		}
		out[name] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("testdb: read table statistics of %s: %v", db.Name, err)
	}
	return out
}
