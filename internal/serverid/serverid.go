// Package serverid tells whether two MySQL/MariaDB connections reach the same
// server, whatever host name, address or port each was given, and refuses a
// replica database that is the source database itself: replicating into it
// would create our state tables in the clinic's database and REPLACE every
// row onto itself.
//
// A server is identified by what it says about itself, never by the address
// the client used: @@hostname, @@port (the server's main port, also when
// reached through extra_port or a forwarded port), @@datadir, @@server_id,
// the moment it started (UNIX_TIMESTAMP() minus the Uptime status), and
// @@server_uuid where the server has one (MySQL ≥ 5.6; MariaDB 10.11 has
// none). Two instances on one machine differ in port or data directory; two
// machines (or containers) differ in host name or start time, so a cloned
// machine with a copied server_uuid is not taken for its original. Every
// value is read with SHOW VARIABLES, SHOW GLOBAL STATUS and SELECT, which a
// SELECT-only account may run; nothing is written or locked.
//
// Database names are compared by the server's rules: exactly under
// lower_case_table_names = 0, case-insensitively under 1 or 2.
package serverid

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// ID is what a server says about itself, and the database the connection
// uses.
type ID struct {
	UUID      string // @@server_uuid; "" on MariaDB
	Hostname  string
	Port      int
	Datadir   string
	ServerID  int64
	Started   int64 // Unix seconds: UNIX_TIMESTAMP() - Uptime, ±1 s
	LowerCase int   // @@lower_case_table_names
	Database  string
}

// Querier is a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Read asks the server behind q who it is.
func Read(ctx context.Context, q Querier) (ID, error) {
	vars, err := showPairs(ctx, q, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('server_uuid', 'hostname', 'port', 'datadir', 'server_id', 'lower_case_table_names')")
	if err != nil {
		return ID{}, fmt.Errorf("read server variables: %w", err)
	}
	status, err := showPairs(ctx, q, "SHOW GLOBAL STATUS WHERE Variable_name = 'Uptime'")
	if err != nil {
		return ID{}, fmt.Errorf("read server uptime: %w", err)
	}
	var db sql.NullString
	var now int64
	if err := q.QueryRowContext(ctx, "SELECT DATABASE(), UNIX_TIMESTAMP()").Scan(&db, &now); err != nil {
		return ID{}, fmt.Errorf("read current database: %w", err)
	}
	id := ID{UUID: vars["server_uuid"], Hostname: vars["hostname"], Datadir: vars["datadir"], Database: db.String}
	id.Port, _ = strconv.Atoi(vars["port"])
	id.ServerID, _ = strconv.ParseInt(vars["server_id"], 10, 64)
	id.LowerCase, _ = strconv.Atoi(vars["lower_case_table_names"])
	uptime, err := strconv.ParseInt(status["uptime"], 10, 64)
	if err != nil {
		return ID{}, fmt.Errorf("read server uptime: %q is not a number", status["uptime"])
	}
	id.Started = now - uptime
	return id, nil
}

// showPairs runs a SHOW … returning (name, value) rows, by lower-case name.
func showPairs(ctx context.Context, q Querier, query string) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[strings.ToLower(k.String)] = v.String
	}
	return out, rows.Err()
}

// SameServer reports whether a and b were read from one server.
func (a ID) SameServer(b ID) bool {
	if a.UUID != "" && b.UUID != "" && a.UUID != b.UUID {
		return false
	}
	d := a.Started - b.Started
	return a.Hostname == b.Hostname && a.Port == b.Port && a.Datadir == b.Datadir &&
		a.ServerID == b.ServerID && d >= -2 && d <= 2
}

// SameDatabase reports whether a and b use one database of one server.
func (a ID) SameDatabase(b ID) bool {
	if !a.SameServer(b) || a.Database == "" || b.Database == "" {
		return false
	}
	if a.LowerCase != 0 {
		return strings.EqualFold(a.Database, b.Database)
	}
	return a.Database == b.Database
}

// Server describes the server for messages.
func (a ID) Server() string {
	return fmt.Sprintf("server %s, port %d, data directory %s", a.Hostname, a.Port, a.Datadir)
}
