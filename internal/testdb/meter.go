package testdb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// Meter measures single statements: the rows each statement of one user
// examined and sent. It is a small TCP proxy in front of the test MariaDB;
// the code under test connects to it (Metered returns the config to use)
// and never knows. The proxy reads the MySQL protocol's packet headers only:
// a client packet with sequence number 0 starts a command. Before it passes
// a command on, it waits until the server has finished the connection's
// previous command (information_schema.PROCESSLIST shows the thread in
// Sleep: MariaDB merges a statement's counters into USER_STATISTICS after
// sending the result and before that), reads the user's USER_STATISTICS and
// charges the difference since the previous command started to that
// command. Nothing is set on the server or in the measured sessions.
//
// The figures are exact while the user runs one statement at a time (one
// source connection: the production default). When statements of two
// connections overlap, each is charged everything that ran meanwhile (an
// upper bound) and marked Overlapped.
//
// The proxy clears the TLS capability from the server's greeting, so a
// client that prefers TLS talks plain text to it; one that requires TLS
// cannot be metered. Compressed protocol is not supported.
type Meter struct {
	t     testing.TB
	user  string
	admin *sql.DB
	ln    net.Listener

	mu   sync.Mutex
	open map[*meterConn]*openStatement
	done []openStatement
	seq  int
	err  error
	wg   sync.WaitGroup
}

// Statement is one command the metered user ran and what it cost.
type Statement struct {
	Conn       uint32 // server connection id
	Command    string // Query, Execute, Prepare, …
	Query      string // the SQL text (of the prepared statement, for Execute)
	RowsRead   int64  // rows examined
	RowsSent   int64  // rows returned
	Overlapped bool   // another connection's statement ran at the same time: the figures are an upper bound
}

// Excess is how many more rows the statement examined than it returned.
func (s Statement) Excess() int64 { return s.RowsRead - s.RowsSent }

func (s Statement) String() string {
	o := ""
	if s.Overlapped {
		o = " (overlapped: upper bound)"
	}
	return fmt.Sprintf("%s %q: %d rows examined, %d sent%s", s.Command, s.Query, s.RowsRead, s.RowsSent, o)
}

type openStatement struct {
	Statement
	start   Cost
	queryID int64 // the thread's QUERY_ID before the command was passed on
	seq     int   // order of start
}

type meterConn struct {
	client, server net.Conn
	id             uint32

	mu        sync.Mutex
	prepared  map[uint32]string // statement id → SQL
	preparing string            // text of a COM_STMT_PREPARE awaiting its answer
}

// Metered starts a metering proxy for user (a config from SourceUser) and
// returns the config the code under test should use (same user and
// database, the proxy's address) and the Meter. The proxy stops when the
// test ends.
func Metered(t testing.TB, user providers.DBConfig) (providers.DBConfig, *Meter) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testdb: meter: listen: %v", err)
	}
	m := &Meter{t: t, user: user.User, admin: adminMySQL(t), ln: ln, open: map[*meterConn]*openStatement{}}
	m.wg.Add(1)
	go m.accept(user.Addr())
	t.Cleanup(func() {
		ln.Close()
		m.wg.Wait()
		m.admin.Close()
	})
	cfg := user
	cfg.Host = "127.0.0.1"
	cfg.Port = ln.Addr().(*net.TCPAddr).Port
	return cfg, m
}

// Statements returns the statements run so far, in the order they started.
// Call it when the code under test has returned (every statement has its
// answer). It fails the test if the meter could not measure.
func (m *Meter) Statements() []Statement {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for c := range m.open { // the caller has every answer: let the server finish
		if err := m.settle(c); err != nil {
			m.fail(err)
		}
	}
	if len(m.open) > 0 && m.err == nil {
		snap, threads, err := m.snapshot()
		if err != nil {
			m.fail(err)
		} else {
			m.finishIdle(nil, snap, threads)
		}
	}
	if m.err != nil {
		m.t.Fatalf("testdb: meter: %v", m.err)
	}
	out := make([]Statement, len(m.done))
	for i, o := range m.done {
		out[i] = o.Statement
	}
	return out
}

// Largest returns the statement that examined the most rows.
func (m *Meter) Largest() Statement {
	m.t.Helper()
	return pick(m.Statements(), func(s Statement) int64 { return s.RowsRead })
}

// LargestExcess returns the statement that examined the most rows beyond
// those it returned.
func (m *Meter) LargestExcess() Statement {
	m.t.Helper()
	return pick(m.Statements(), Statement.Excess)
}

func pick(all []Statement, by func(Statement) int64) Statement {
	sort.SliceStable(all, func(i, j int) bool { return by(all[i]) > by(all[j]) })
	if len(all) == 0 {
		return Statement{}
	}
	return all[0]
}

func (m *Meter) fail(err error) {
	if m.err == nil {
		m.err = err
	}
}

func (m *Meter) accept(addr string) {
	defer m.wg.Done()
	for {
		client, err := m.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", addr)
		if err != nil {
			client.Close()
			m.mu.Lock()
			m.fail(fmt.Errorf("dial %s: %w", addr, err))
			m.mu.Unlock()
			continue
		}
		c := &meterConn{client: client, server: server, prepared: map[uint32]string{}}
		if err := c.greet(); err != nil {
			client.Close()
			server.Close()
			continue
		}
		m.wg.Add(2)
		go func() { defer m.wg.Done(); c.serverToClient() }()
		go func() { defer m.wg.Done(); m.clientToServer(c) }()
	}
}

// readPacket reads one MySQL packet: 4-byte header (3-byte length, sequence
// number) and payload.
func readPacket(r io.Reader) (hdr [4]byte, payload []byte, err error) {
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return hdr, nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return hdr, payload, err
}

func writePacket(w io.Writer, hdr [4]byte, payload []byte) error {
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// greet passes the server's greeting on, noting the connection id and
// clearing the TLS capability (protocol 10: version, NUL, id, 8 bytes of
// scramble, filler, capability flags).
func (c *meterConn) greet() error {
	hdr, p, err := readPacket(c.server)
	if err != nil {
		return err
	}
	if len(p) > 0 && p[0] == 10 {
		if i := bytes.IndexByte(p[1:], 0); i >= 0 && len(p) >= 1+i+1+4+9+2 {
			at := 1 + i + 1
			c.id = binary.LittleEndian.Uint32(p[at:])
			capAt := at + 4 + 9
			p[capAt+1] &^= 0x08 // CLIENT_SSL = 0x0800
		}
	}
	return writePacket(c.client, hdr, p)
}

// serverToClient copies the server's packets, noting the statement id a
// COM_STMT_PREPARE answer carries.
func (c *meterConn) serverToClient() {
	defer c.client.Close()
	for {
		hdr, p, err := readPacket(c.server)
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.preparing != "" && hdr[3] == 1 && len(p) >= 5 && p[0] == 0 {
			c.prepared[binary.LittleEndian.Uint32(p[1:])] = c.preparing
			c.preparing = ""
		}
		c.mu.Unlock()
		if writePacket(c.client, hdr, p) != nil {
			return
		}
	}
}

func (m *Meter) clientToServer(c *meterConn) {
	defer func() {
		c.server.Close()
		m.mu.Lock()
		m.closed(c)
		m.mu.Unlock()
	}()
	for {
		hdr, p, err := readPacket(c.client)
		if err != nil {
			return
		}
		if hdr[3] == 0 && len(p) > 0 {
			m.mu.Lock()
			m.command(c, p)
			m.mu.Unlock()
		}
		if writePacket(c.server, hdr, p) != nil {
			return
		}
	}
}

// MySQL command bytes the meter names or treats specially.
const (
	comQuit        = 0x01
	comInitDB      = 0x02
	comQuery       = 0x03
	comPing        = 0x0e
	comStmtPrepare = 0x16
	comStmtExecute = 0x17
	comStmtSend    = 0x18
	comStmtClose   = 0x19
	comStmtReset   = 0x1a
)

// command charges the connection's previous command and opens the next one.
// It runs with m.mu held, before the command reaches the server.
func (m *Meter) command(c *meterConn, p []byte) {
	snap, threads, ok := m.charge(c)
	if !ok {
		return
	}
	s, ok := c.describe(p)
	if !ok {
		return
	}
	m.seq++
	o := &openStatement{Statement: s, start: snap, queryID: threads[c.id].queryID, seq: m.seq}
	for _, other := range m.open {
		other.Overlapped, o.Overlapped = true, true
	}
	m.open[c] = o
}

// describe names a command; ok is false for commands without an answer or
// a cost (quit, ping, closing a prepared statement).
func (c *meterConn) describe(p []byte) (Statement, bool) {
	s := Statement{Conn: c.id}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch p[0] {
	case comQuery:
		s.Command, s.Query = "Query", string(p[1:])
	case comStmtPrepare:
		s.Command, s.Query = "Prepare", string(p[1:])
		c.preparing = s.Query
	case comStmtExecute:
		s.Command = "Execute"
		if len(p) >= 5 {
			s.Query = c.prepared[binary.LittleEndian.Uint32(p[1:])]
		}
	case comInitDB:
		s.Command, s.Query = "Init DB", string(p[1:])
	case comQuit, comPing, comStmtSend, comStmtClose, comStmtReset:
		if p[0] == comStmtClose && len(p) >= 5 {
			delete(c.prepared, binary.LittleEndian.Uint32(p[1:]))
		}
		return s, false
	default:
		s.Command = "command 0x" + strconv.FormatUint(uint64(p[0]), 16)
	}
	return s, true
}

// closed charges a closing connection's last command.
func (m *Meter) closed(c *meterConn) {
	if m.open[c] == nil {
		return
	}
	m.charge(c)
}

// charge settles c's previous command and charges what ran since, returning
// the snapshot it took; ok is false after a failure (recorded with fail).
func (m *Meter) charge(c *meterConn) (snap Cost, threads map[uint32]thread, ok bool) {
	if err := m.settle(c); err != nil {
		m.fail(err)
		return Cost{}, nil, false
	}
	snap, threads, err := m.snapshot()
	if err != nil {
		m.fail(err)
		return Cost{}, nil, false
	}
	m.finishIdle(c, snap, threads)
	return snap, threads, true
}

type thread struct {
	sleeping bool
	queryID  int64
}

// settle waits until the server has finished c's previous command: the
// client has its whole answer, but the server merges the statement's
// counters only afterwards, then puts the thread to Sleep (or ends it).
func (m *Meter) settle(c *meterConn) error {
	if m.open[c] == nil {
		return nil
	}
	for i := 0; ; i++ {
		_, threads, err := m.snapshot()
		if err != nil {
			return err
		}
		if th, ok := threads[c.id]; !ok || th.sleeping {
			return nil
		}
		if i == 10000 {
			return fmt.Errorf("connection %d did not finish its statement", c.id)
		}
		time.Sleep(time.Millisecond) // polling the server, not ordering test events
	}
}

// finishIdle charges every open statement whose thread has finished it (c's
// has: it was settled) with the cost since it started.
func (m *Meter) finishIdle(c *meterConn, snap Cost, threads map[uint32]thread) {
	for oc, o := range m.open {
		th, alive := threads[oc.id]
		if oc != c && alive && (!th.sleeping || th.queryID == o.queryID) {
			continue // still running, or not started yet
		}
		d := snap.Sub(o.start)
		o.RowsRead, o.RowsSent = d.RowsRead, d.RowsSent
		m.done = append(m.done, *o)
		delete(m.open, oc)
	}
	sort.SliceStable(m.done, func(i, j int) bool { return m.done[i].seq < m.done[j].seq })
}

// snapshot reads the state of the user's threads, then its counters: a
// thread seen sleeping has merged its last statement's counters before, so
// they are in the counters read after.
func (m *Meter) snapshot() (Cost, map[uint32]thread, error) {
	return snapshot(m.admin, m.user)
}

func snapshot(admin *sql.DB, user string) (Cost, map[uint32]thread, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := admin.QueryContext(ctx, "SELECT ID, COMMAND, QUERY_ID FROM information_schema.PROCESSLIST WHERE USER = '"+user+"'")
	if err != nil {
		return Cost{}, nil, fmt.Errorf("read process list: %w", err)
	}
	defer rows.Close()
	threads := map[uint32]thread{}
	for rows.Next() {
		var id uint32
		var cmd string
		var qid int64
		if err := rows.Scan(&id, &cmd, &qid); err != nil {
			return Cost{}, nil, err
		}
		threads[id] = thread{sleeping: cmd == "Sleep", queryID: qid}
	}
	if err := rows.Err(); err != nil {
		return Cost{}, nil, err
	}
	cost, err := readUserCost(ctx, admin, user)
	if err != nil {
		return Cost{}, nil, fmt.Errorf("read user statistics: %w", err)
	}
	return cost, threads, nil
}
