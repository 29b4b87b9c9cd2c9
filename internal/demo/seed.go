// Package demo creates and mutates a synthetic OpenDental database: all 408
// tables of 24.3, filled in proportion to a real clinic's table sizes with
// keys that join, plausible dates, money, CDT codes and non-ASCII text, and
// a "day of clinic activity" for incremental runs. Output is deterministic
// for a given seed.
//
// The demo writes to the database the pipeline treats as its read-only
// source: it is the one place in the project that opens a writable
// connection there, and it refuses any database that is not a demo.
package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/opendental-pipeline/pipeline/internal/opendental"
)

// ErrNotDemo is returned when the target database looks like real data.
var ErrNotDemo = errors.New("database is not a demo database")

// Conn is where the demo writes. The password is never printed.
type Conn struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
}

// String describes the connection without the password.
func (c Conn) String() string {
	return fmt.Sprintf("mysql://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Open returns a writable handle on c's database (created if missing when
// create is set), with UTC session time and OpenDental's empty sql_mode.
func Open(ctx context.Context, c Conn, create bool) (*sql.DB, error) {
	if create {
		admin, err := open(c, "")
		if err != nil {
			return nil, err
		}
		_, err = admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+strings.ReplaceAll(c.Database, "`", "``")+"` CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci")
		admin.Close()
		if err != nil {
			return nil, fmt.Errorf("create database %s: %w", c, err)
		}
	}
	db, err := open(c, c.Database)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", c, err)
	}
	return db, nil
}

func open(c Conn, name string) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = fmt.Sprintf("%s:%d", c.Host, c.Port)
	mc.User = c.User
	mc.Passwd = c.Password
	mc.DBName = name
	mc.Collation = "utf8mb4_general_ci"
	mc.Timeout = 10 * time.Second
	mc.Params = map[string]string{"sql_mode": "''", "time_zone": "'+00:00'"}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("configure connection to %s: %w", c, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// Options controls Seed.
type Options struct {
	Scale   float64      // fraction of the clinic's volumes; 1 ≈ 20 M rows
	Seed    int64        // same seed, same data
	MinRows int64        // every table gets at least this many rows
	Workers int          // tables generated at once
	Force   bool         // seed even a database that does not look like a demo
	Log     *slog.Logger // progress; nil is silent

	// LegacyValues writes zero dates, partial dates and NUL bytes into a
	// few columns (see legacyColumns), as old clinic databases hold them.
	// Off by default: a stock MySQL→PostgreSQL pipe cannot carry them.
	LegacyValues bool
}

// DefaultScale seeds ≈ 200 k rows: a laptop minute.
const DefaultScale = 0.01

func (o *Options) defaults() {
	if o.Scale <= 0 {
		o.Scale = DefaultScale
	}
	if o.MinRows <= 0 {
		o.MinRows = 5
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Report says what Seed or Mutate did.
type Report struct {
	Database string
	Tables   int
	Rows     int64 // rows written (seed) or inserted (mutate)
	Updated  int64
	Deleted  int64
	Legacy   int64 // legacy values written (seed with LegacyValues)
	Elapsed  time.Duration
}

// RowsPerSecond is the write rate of the run.
func (r Report) RowsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Rows+r.Updated+r.Deleted) / r.Elapsed.Seconds()
}

// Guard refuses a database that is not a demo: its name must contain "demo"
// or it must hold no tables, unless force.
func Guard(ctx context.Context, db *sql.DB, force bool) (string, error) {
	var name sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&name); err != nil {
		return "", fmt.Errorf("read database name: %w", err)
	}
	if !name.Valid || name.String == "" {
		return "", fmt.Errorf("no database selected: name the demo database (e.g. --db opendental_demo)")
	}
	if force || strings.Contains(strings.ToLower(name.String), "demo") {
		return name.String, nil
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&n); err != nil {
		return "", fmt.Errorf("count tables of %s: %w", name.String, err)
	}
	if n > 0 {
		return "", fmt.Errorf("%w: %s holds %d tables and its name does not contain \"demo\"; use a demo database (e.g. opendental_demo) or pass --force if you really mean to overwrite it", ErrNotDemo, name.String, n)
	}
	return name.String, nil
}

// PlannedRows returns how many rows Seed writes into each of the 408 tables.
func PlannedRows(scale float64, minRows int64) (map[string]int64, error) {
	vols, err := opendental.Volumes()
	if err != nil {
		return nil, fmt.Errorf("read table volumes: %w", err)
	}
	out := map[string]int64{}
	for _, d := range opendental.Full408() {
		n := int64(math.Round(float64(vols[d.Name].Rows) * scale))
		out[d.Name] = max(n, minRows)
	}
	return out, nil
}

// Seed (re)creates all 408 OpenDental tables in db and fills them.
func Seed(ctx context.Context, db *sql.DB, opts Options) (Report, error) {
	opts.defaults()
	start := time.Now()
	name, err := Guard(ctx, db, opts.Force)
	if err != nil {
		return Report{}, err
	}
	plan, err := PlannedRows(opts.Scale, opts.MinRows)
	if err != nil {
		return Report{}, err
	}
	if err := createTables(ctx, db); err != nil {
		return Report{}, err
	}
	tables, err := readTables(ctx, db)
	if err != nil {
		return Report{}, err
	}
	w, total := plannedWorld(tables, plan)
	opts.Log.Info("seeding demo database", "database", name, "tables", len(tables), "rows", total, "scale", opts.Scale, "seed", opts.Seed)

	var written atomic.Int64
	stop := logProgress(opts.Log, &written, total)
	err = forEach(ctx, sortedNames(tables), opts.Workers, func(ctx context.Context, tn string) error {
		t := tables[tn]
		g := newGen(rngFor(opts.Seed, tn), t, w, time.Time{}, "")
		if opts.LegacyValues {
			g.legacy = legacyColumns[tn]
		}
		return writer{db: db, t: t, g: g, written: &written}.insert(ctx, 1, t.Rows)
	})
	stop()
	if err != nil {
		return Report{}, err
	}
	if err := alignPatients(ctx, db, tables); err != nil {
		return Report{}, err
	}
	rep := Report{Database: name, Tables: len(tables), Rows: written.Load(), Elapsed: time.Since(start)}
	if opts.LegacyValues {
		rep.Legacy = legacyTotal(tables)
	}
	opts.Log.Info("seeded demo database", "database", name, "tables", rep.Tables, "rows", rep.Rows, "legacy_values", rep.Legacy,
		"seconds", rep.Elapsed.Seconds(), "rows_per_sec", int(rep.RowsPerSecond()))
	return rep, nil
}

// plannedWorld numbers each table's rows 1..plan and returns the keys the
// generator draws foreign keys from, and the total.
func plannedWorld(tables map[string]*table, plan map[string]int64) (*world, int64) {
	w := &world{keyName: map[string]string{}, maxKey: map[string]int64{}}
	var total int64
	for n, t := range tables {
		t.Rows = plan[n]
		total += t.Rows
		if len(t.PK) > 0 {
			w.keyName[n] = t.PK[0]
		}
		w.maxKey[n] = t.Rows
	}
	return w, total
}

// logProgress logs the rows written so far every 5 seconds until stopped.
func logProgress(log *slog.Logger, written *atomic.Int64, total int64) (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				n := written.Load()
				log.Info("seeding", "rows", n, "of", total, "rows_per_sec", int(float64(n)/time.Since(start).Seconds()))
			}
		}
	}()
	return func() { close(done) }
}

// legacyTotal is the number of legacy values a seed with LegacyValues writes.
func legacyTotal(tables map[string]*table) int64 {
	var n int64
	for tn, cols := range legacyColumns {
		for cn := range cols {
			if t := tables[tn]; t != nil && hasColumn(t, cn) {
				n += LegacyCount(t.Rows)
			}
		}
	}
	return n
}

// maxStatement bounds one multi-row INSERT, well under the 16 MiB default
// max_allowed_packet.
const maxStatement = 2 << 20

// writer writes one table's generated rows.
type writer struct {
	db      *sql.DB
	t       *table
	g       *gen
	written *atomic.Int64 // rows inserted, across tables
	// Mutate's edits:
	maxKey int64     // the highest key before the day
	wm     string    // the change column, "" when none
	now    time.Time // the change stamp
}

// insert writes rows first..last of t in multi-row INSERTs. Large MyISAM
// tables build their secondary indexes once at the end.
func (tw writer) insert(ctx context.Context, first, last int64) error {
	if last < first {
		return nil
	}
	db, t, g, written := tw.db, tw.t, tw.g, tw.written
	bulk := last-first >= 20000
	if bulk {
		if _, err := db.ExecContext(ctx, "ALTER TABLE `"+t.Name+"` DISABLE KEYS"); err != nil {
			return fmt.Errorf("disable keys of %s: %w", t.Name, err)
		}
	}
	head := insertHead(t)
	buf := make([]byte, 0, maxStatement+64<<10)
	buf = append(buf, head...)
	rows := int64(0)
	flush := func() error {
		if rows == 0 {
			return nil
		}
		if _, err := db.ExecContext(ctx, string(buf)); err != nil {
			return fmt.Errorf("insert into %s: %w", t.Name, err)
		}
		written.Add(rows)
		buf = append(buf[:0], head...)
		rows = 0
		return nil
	}
	for k := first; k <= last; k++ {
		if rows > 0 {
			buf = append(buf, ',')
		}
		buf = g.row(buf, k)
		rows++
		if len(buf) >= maxStatement {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if bulk {
		if _, err := db.ExecContext(ctx, "ALTER TABLE `"+t.Name+"` ENABLE KEYS"); err != nil {
			return fmt.Errorf("enable keys of %s: %w", t.Name, err)
		}
	}
	return nil
}

func insertHead(t *table) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO `" + t.Name + "` (")
	for i, c := range t.Columns {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("`" + c.Name + "`")
	}
	sb.WriteString(") VALUES ")
	return sb.String()
}

// forEach runs fn for every name on workers goroutines and returns the first error.
func forEach(ctx context.Context, names []string, workers int, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := fn(ctx, n); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		work <- n
	}
	close(work)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// itoa keeps call sites short.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
