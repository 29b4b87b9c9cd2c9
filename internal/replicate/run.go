// Package replicate copies the OpenDental source MySQL into the replication
// MySQL: creates and follows each table's definition, copies in short
// primary-key chunks (full, incremental on a watermark, or whole via a shadow
// table when there is no key), removes rows deleted at the source, and keeps
// its state in the replica (internal/state: _pipeline_copy_status,
// _pipeline_deleted_rows).
//
// The source is only ever read: every source query runs through the manager
// (rate limit, retries) on at most Options.SourceConns connections.
package replicate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Doer runs fn on a source connection; *manager.Manager is one.
type Doer interface {
	Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error
}

// Deps are the databases and configuration a run works on.
type Deps struct {
	Source  *sql.DB // read-only source (factory-built: read-only sessions)
	Replica *sql.DB
	Tables  *tables.Config
	Log     *slog.Logger
}

// Options tune a run. The zero value is a normal incremental run.
type Options struct {
	Tables      []string // only these tables (default: every table not excluded)
	FullRefresh bool     // copy every selected table in full again
	DryRun      bool     // report what would be done; write nothing
	Workers     int      // tables copied in parallel; default DefaultWorkers()
	SourceConns int      // concurrent source connections; default 1
	Manager     *manager.Options
	// NewDoer builds the source runner per source connection; default manager.New.
	NewDoer func(db *sql.DB) Doer
	// OnChunk is called after each committed chunk, from the table's worker
	// goroutine (concurrently across tables): progress; tests use it to interrupt a run.
	OnChunk func(table string, rows int)
}

// ErrConfig marks a run that could not start because of bad options or
// configuration; nothing was written.
var ErrConfig = errors.New("replicate configuration")

// ErrLocked is returned when another replicate run holds the replica.
var ErrLocked = errors.New("another pipeline replicate is running against this replica")

// lockQuery takes the server-wide lock that keeps two runs off one replica.
const lockQuery = "SELECT GET_LOCK(CONCAT('pipeline_replicate:', DATABASE()), 0)"

// TableResult is the outcome for one table.
type TableResult struct {
	Table       string
	Mode        string // full | incremental | shadow | unchanged; the plan in a dry run
	Plan        string // what was (or would be) done, for humans
	Changes     []Change
	RowsRead    int64
	RowsWritten int64
	RowsDeleted int64
	Chunks      int
	Resumed     bool
	Duration    time.Duration
	Err         error
}

// Summary is the outcome of a run, one entry per table in run order.
type Summary struct {
	Tables   []*TableResult
	Duration time.Duration
	DryRun   bool
	Unlisted []string // source tables tables.yml does not list (not copied), sorted
	Reserved []string // source tables named with state.Prefix, which cannot be copied, sorted
}

// Failed counts the tables that failed.
func (s Summary) Failed() int {
	n := 0
	for _, t := range s.Tables {
		if t.Err != nil {
			n++
		}
	}
	return n
}

// Write prints one line per table and a total line.
func (s Summary) Write(w io.Writer) {
	var read, written, deleted int64
	fmt.Fprintf(w, "%-28s %-12s %10s %10s %8s %9s %10s  %s\n", "TABLE", "MODE", "READ", "WRITTEN", "DELETED", "SECONDS", "ROWS/S", "NOTE")
	for _, t := range s.Tables {
		note := t.Plan
		if t.Err != nil {
			note = "FAILED: " + t.Err.Error()
		}
		for _, c := range t.Changes {
			note += "; " + c.String()
		}
		rate := 0.0
		if secs := t.Duration.Seconds(); secs > 0 {
			rate = float64(t.RowsRead) / secs
		}
		fmt.Fprintf(w, "%-28s %-12s %10d %10d %8d %9.2f %10.0f  %s\n", t.Table, t.Mode, t.RowsRead, t.RowsWritten, t.RowsDeleted, t.Duration.Seconds(), rate, note)
		read, written, deleted = read+t.RowsRead, written+t.RowsWritten, deleted+t.RowsDeleted
	}
	fmt.Fprintf(w, "%d tables, %d failed; rows read %d, written %d, deleted %d in %.2fs\n",
		len(s.Tables), s.Failed(), read, written, deleted, s.Duration.Seconds())
	if len(s.Unlisted) > 0 {
		fmt.Fprintf(w, "%d source tables not in tables.yml, not copied (run `pipeline discover`): %s\n", len(s.Unlisted), strings.Join(s.Unlisted, ", "))
	}
	if len(s.Reserved) > 0 {
		fmt.Fprintf(w, "%d source tables not copied: names starting with %s are reserved for the pipeline's own tables in the replica (rename them at the source): %s\n",
			len(s.Reserved), state.Prefix, strings.Join(s.Reserved, ", "))
	}
}

type runner struct {
	deps   Deps
	opts   Options
	log    *slog.Logger
	pool   chan *sourceSlot
	srcNow string
}

type sourceSlot struct {
	d Doer
}

// source runs fn on a source connection, waiting for a free one. The
// factory set the session up (read-only, UTC, values as stored).
func (r *runner) source(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	var s *sourceSlot
	select {
	case s = <-r.pool:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { r.pool <- s }()
	return s.d.Do(ctx, fn)
}

// lenientSQLMode is the replica's session mode without STRICT_ALL_TABLES,
// for applying schema drift (see syncSchema).
const lenientSQLMode = "ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"

// DefaultWorkers is the default number of tables copied in parallel.
func DefaultWorkers() int { return max(2, min(4, 2*runtime.NumCPU())) }

// Run replicates the configured tables. It returns an error only when the
// run could not start (ErrConfig, or a database that cannot be read); one
// table's failure is reported in its TableResult and never stops the others.
func Run(ctx context.Context, deps Deps, opts Options) (Summary, error) {
	start := time.Now()
	if deps.Source == nil || deps.Replica == nil || deps.Tables == nil {
		return Summary{}, fmt.Errorf("%w: source, replica and tables config are required", ErrConfig)
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "replicate")
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers()
	}
	if opts.SourceConns <= 0 {
		opts.SourceConns = 1
	}
	if opts.NewDoer == nil {
		mo := manager.DefaultOptions()
		if opts.Manager != nil {
			mo = *opts.Manager
		}
		opts.NewDoer = func(db *sql.DB) Doer { return manager.New(db, mo) }
	}
	selected, err := selectTables(deps.Tables, opts.Tables)
	if err != nil {
		return Summary{}, err
	}
	r := &runner{deps: deps, opts: opts, log: log, pool: make(chan *sourceSlot, opts.SourceConns)}
	for range opts.SourceConns {
		d := opts.NewDoer(deps.Source)
		if c, ok := d.(io.Closer); ok {
			defer c.Close()
		}
		r.pool <- &sourceSlot{d: d}
	}

	var src *schema.Database
	if err := r.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		var err error
		src, err = schema.Read(ctx, c)
		return err
	}); err != nil {
		return Summary{}, fmt.Errorf("read source schema: %w", err)
	}
	r.srcNow = src.Now.Format(schema.TimeLayout)
	if !opts.DryRun {
		lock, err := deps.Replica.Conn(ctx)
		if err != nil {
			return Summary{}, fmt.Errorf("open replica connection: %w", err)
		}
		defer lock.Close() // closing the session releases the lock
		var got sql.NullInt64
		if err := scanOne(ctx, lock, lockQuery, &got); err != nil {
			return Summary{}, fmt.Errorf("take the replicate lock: %w", err)
		}
		if got.Int64 != 1 {
			return Summary{}, fmt.Errorf("%w; wait for it to finish (or stop it) and run again", ErrLocked)
		}
		defer func() {
			_, _ = lock.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(CONCAT('pipeline_replicate:', DATABASE()))")
		}()
		if err := state.Ensure(ctx, deps.Replica); err != nil {
			return Summary{}, err
		}
	}
	rep, err := schema.Read(ctx, deps.Replica)
	if err != nil {
		return Summary{}, fmt.Errorf("read replica schema: %w", err)
	}
	states, err := state.ReadAll(ctx, deps.Replica)
	if err != nil {
		return Summary{}, err
	}

	sum := Summary{DryRun: opts.DryRun}
	for name := range src.Tables {
		switch _, listed := deps.Tables.Tables[name]; {
		case state.Reserved(name) && !listed:
			sum.Reserved = append(sum.Reserved, name)
		case !listed:
			sum.Unlisted = append(sum.Unlisted, name)
		}
	}
	sort.Strings(sum.Unlisted)
	sort.Strings(sum.Reserved)
	if len(sum.Reserved) > 0 {
		log.Warn("source tables named with the reserved prefix "+state.Prefix+" cannot be replicated; rename them at the source", "tables", sum.Reserved)
	}
	if len(sum.Unlisted) > 0 {
		log.Warn("source tables not in tables.yml are not copied; run `pipeline discover`", "count", len(sum.Unlisted))
	}
	var jobs []*plan
	for _, t := range selected {
		res := &TableResult{Table: t.Name}
		sum.Tables = append(sum.Tables, res)
		p := r.plan(t, src.Tables[t.Name], rep.Tables[t.Name], states[t.Name], res)
		if p != nil {
			jobs = append(jobs, p)
		}
	}
	if !opts.DryRun {
		var unchanged []string
		for _, res := range sum.Tables {
			if res.Mode == state.ModeSkip && res.Err == nil {
				unchanged = append(unchanged, res.Table)
			}
		}
		if err := state.MarkUnchanged(ctx, deps.Replica, unchanged, time.Now()); err != nil {
			return Summary{}, err
		}
		r.runAll(ctx, jobs)
	}
	sum.Duration = time.Since(start)
	for _, t := range sum.Tables {
		if t.Err != nil {
			log.Error("table failed", "table", t.Table, "err", t.Err)
		}
	}
	return sum, nil
}

func selectTables(cfg *tables.Config, names []string) ([]*tables.Table, error) {
	if len(names) == 0 {
		return cfg.Ordered(), nil
	}
	want := map[string]bool{}
	var unknown []string
	for _, n := range names { // exact: a name may have spaces around it
		if n == "" {
			continue
		}
		if _, ok := cfg.Tables[n]; !ok {
			unknown = append(unknown, n)
		}
		want[n] = true
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%w: --tables names %s, not in tables.yml; run `pipeline discover` or fix the name", ErrConfig, strings.Join(unknown, ", "))
	}
	var out []*tables.Table
	for _, t := range cfg.Ordered() {
		if want[t.Name] {
			out = append(out, t)
		}
	}
	for _, n := range cfg.Names() { // an explicitly named table runs even when excluded
		if t := cfg.Tables[n]; t.Exclude && want[n] {
			out = append(out, t)
		}
	}
	return out, nil
}

// plan is one table's work as decided from the schemas and state in memory.
type plan struct {
	cfg    *tables.Table
	src    *schema.Table
	rep    *schema.Table
	st     *state.Row
	res    *TableResult
	create bool
	alter  bool
	mode   string // full | incremental | shadow | unchanged-check

	srcCreate string // the source's SHOW CREATE TABLE, once read in this run
}

// plan decides what to do with a table without touching any database, so
// that unchanged tables cost nothing beyond the run's three schema queries.
func (r *runner) plan(t *tables.Table, src, rep *schema.Table, st *state.Row, res *TableResult) *plan {
	if err := state.CheckName(t.Name); err != nil {
		res.Err = err
		res.Plan = "reserved name"
		return nil
	}
	if src == nil {
		res.Err = fmt.Errorf("table %s is in tables.yml but not in the source database; remove it or set exclude: true", t.Name)
		res.Plan = "missing at source"
		return nil
	}
	if w := src.Column(t.Watermark()); t.Strategy.IsIncremental() && w != nil && w.Nullable {
		res.Err = fmt.Errorf("watermark column %s of %s is nullable: rows where it is NULL would never be copied;"+
			" in tables.yml name a NOT NULL column in watermark_columns or set extraction_strategy: full_table", w.Name, t.Name)
		res.Plan = "nullable watermark"
		return nil
	}
	p := &plan{cfg: t, src: src, rep: rep, st: st, res: res}
	var notes []string
	switch {
	case rep == nil:
		p.create = true
		notes = append(notes, "create replica table")
	case needsDDL(src, rep):
		p.alter = true
		notes = append(notes, "apply schema drift")
	}
	hasKey := len(src.PrimaryKey) > 0 && src.KeyTravels()
	incremental := t.Strategy.IsIncremental() && hasKey && src.Column(t.Watermark()) != nil
	switch {
	case len(src.PrimaryKey) == 0:
		p.mode = state.ModeShadow
		notes = append(notes, "whole copy into a shadow table (no primary key)")
	case !hasKey:
		p.mode = state.ModeShadow
		notes = append(notes, "whole copy into a shadow table (primary key text is not UTF-8: cannot page on it)")
	case r.opts.FullRefresh || p.create || p.alter || st == nil:
		p.mode = state.ModeFull
		notes = append(notes, "full copy in key chunks")
	case unfinishedFull(st):
		p.mode = state.ModeFull
		if st.LastKey.Valid {
			notes = append(notes, "resume full copy after key "+st.LastKey.String)
		} else {
			notes = append(notes, "restart interrupted full copy")
		}
	case unchanged(src, st):
		p.mode = state.ModeSkip
		notes = append(notes, "unchanged since last run")
	case incremental:
		p.mode = state.ModeIncremental
		notes = append(notes, fmt.Sprintf("incremental on %s from %s", t.Watermark(), st.Watermark.String))
	case len(src.PrimaryKey) == 1 && src.Rows > int64(batchSize(t)):
		p.mode = state.ModeDiff
		notes = append(notes, "compare key ranges by checksum, copy those that differ")
	default:
		p.mode = state.ModeFull
		notes = append(notes, "full copy in key chunks (upsert)")
	}
	if hasKey && t.DeletesEnabled() && p.mode != state.ModeSkip && !p.create {
		notes = append(notes, "detect deletes")
	}
	if t.Strategy.IsIncremental() && !incremental && hasKey {
		notes = append(notes, fmt.Sprintf("watermark %q not in source: copied in full", t.Watermark()))
	}
	res.Mode = p.mode
	res.Plan = strings.Join(notes, "; ")
	if p.mode == state.ModeSkip {
		return nil
	}
	return p
}

// unchanged reports whether the source table has not been written since the
// last successful run: its UPDATE_TIME (kept exactly by MyISAM) is the one
// recorded then, and that time was already past when the copy began, so no
// later write can share its second.
func unchanged(src *schema.Table, st *state.Row) bool {
	return st.Status == state.StatusOK && src.UpdateTime != "" && st.SourceUpdateTime.Valid && st.SourceStartedAt.Valid &&
		sameTime(src.UpdateTime, st.SourceUpdateTime.String) && st.SourceUpdateTime.String < st.SourceStartedAt.String
}

// unfinishedFull reports whether the last full copy of a table did not
// complete: it is continued (or, killed before its first chunk, restarted)
// as a full copy, whose end also builds the indexes left out at creation.
func unfinishedFull(st *state.Row) bool {
	return st != nil && st.Mode == state.ModeFull && st.Status != state.StatusOK
}

func batchSize(t *tables.Table) int {
	if t.BatchSize > 0 {
		return t.BatchSize
	}
	return tables.DefaultBatchSize
}

func sameTime(a, b string) bool {
	return strings.TrimSuffix(a, ".000000") == strings.TrimSuffix(b, ".000000")
}

func (r *runner) runAll(ctx context.Context, jobs []*plan) {
	ch := make(chan *plan)
	var wg sync.WaitGroup
	for range min(r.opts.Workers, max(1, len(jobs))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				r.runTable(ctx, p)
			}
		}()
	}
	for _, p := range jobs {
		ch <- p
	}
	close(ch)
	wg.Wait()
}

// runTable runs one table's plan and records its outcome; it never panics the run.
func (r *runner) runTable(ctx context.Context, p *plan) {
	start := time.Now()
	j := newTableJob(r, p.cfg, p.src, p.st, p.res)
	defer func() {
		if v := recover(); v != nil {
			p.res.Err = fmt.Errorf("replicate %s: unexpected panic: %v", p.cfg.Name, v)
			j.fail(ctx, p.res.Err)
		}
		p.res.Duration = time.Since(start)
	}()
	if err := ctx.Err(); err != nil {
		p.res.Err = err
		return
	}
	conn, err := r.deps.Replica.Conn(ctx)
	if err != nil {
		p.res.Err = fmt.Errorf("open replica connection for %s: %w", p.cfg.Name, err)
		return
	}
	defer conn.Close()
	j.conn = conn
	if err := r.runJob(ctx, j, p); err != nil {
		p.res.Err = err
		j.fail(ctx, err)
		return
	}
	r.log.Info("table replicated", "table", p.cfg.Name, "mode", p.res.Mode, "rows", p.res.RowsWritten,
		"deleted", p.res.RowsDeleted, "seconds", time.Since(start).Seconds())
}

func (r *runner) runJob(ctx context.Context, j *tableJob, p *plan) error {
	if p.create || p.alter {
		changes, err := r.syncSchema(ctx, j.conn, p)
		p.res.Changes = changes
		if err != nil {
			return err
		}
		for _, c := range changes {
			r.log.Info("schema change", "table", p.cfg.Name, "change", c.String())
		}
	}
	var err error
	switch p.mode {
	case state.ModeShadow:
		err = j.shadowCopy(ctx)
	case state.ModeDiff:
		err = j.diffCopy(ctx)
	case state.ModeIncremental:
		err = j.incremental(ctx)
	default:
		err = j.fullCopy(ctx, r.opts.FullRefresh || p.create || p.alter)
	}
	if err != nil {
		return err
	}
	if p.mode == state.ModeFull && (p.create || p.alter || unfinishedFull(p.st)) {
		if err := r.ensureIndexes(ctx, j.conn, p); err != nil {
			return err
		}
	}
	if p.mode != state.ModeShadow && p.mode != state.ModeDiff && p.cfg.DeletesEnabled() && !p.create { // diff removes deletes itself
		if err := j.detectDeletes(ctx); err != nil {
			return err
		}
	}
	return j.finish(ctx)
}

// syncSchema creates the replica table from the source's SHOW CREATE TABLE,
// or alters it to the source's columns, and reports each change.
func (r *runner) syncSchema(ctx context.Context, conn *sql.Conn, p *plan) ([]Change, error) {
	name := p.cfg.Name
	create, err := r.sourceCreate(ctx, p)
	if err != nil {
		return nil, err
	}
	if p.create {
		full := replicaDDL(create)
		ddl := full
		if p.mode == state.ModeFull {
			ddl, _ = splitIndexes(full) // built after the copy by ensureIndexes
		}
		_, err := conn.ExecContext(ctx, ddl)
		if err != nil && ddl != full {
			// e.g. an AUTO_INCREMENT column indexed only by a plain KEY: keep every index
			_, err = conn.ExecContext(ctx, full)
		}
		if err != nil && isRowSizeError(err) {
			// MyISAM allows rows InnoDB's strict mode refuses to plan for; the
			// values still fit (long columns go off-page), so relax the check.
			if _, serr := conn.ExecContext(ctx, "SET SESSION innodb_strict_mode=OFF"); serr == nil {
				_, err = conn.ExecContext(ctx, full)
				_, _ = conn.ExecContext(ctx, "SET SESSION innodb_strict_mode=DEFAULT")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("create replica table %s: %w", name, err)
		}
		return []Change{{Table: name, Kind: "create_table"}}, nil
	}
	clauses, changes, err := diffColumns(name, p.src, p.rep, columnDefs(create))
	if err != nil {
		return nil, err
	}
	if len(clauses) == 0 {
		return nil, nil
	}
	// The source changed existing values as it altered (e.g. NULL to '' for a
	// new NOT NULL); the replica's rows are re-copied right after, so the
	// ALTER may convert them the same lenient way.
	if _, err := conn.ExecContext(ctx, "SET @pipeline_sql_mode = @@SESSION.sql_mode, SESSION sql_mode = '"+lenientSQLMode+"'"); err != nil {
		return nil, fmt.Errorf("relax replica sql_mode: %w", err)
	}
	_, err = conn.ExecContext(ctx, "ALTER TABLE "+quoteIdent(name)+" "+strings.Join(clauses, ", "))
	if _, rerr := conn.ExecContext(ctx, "SET SESSION sql_mode = @pipeline_sql_mode"); rerr != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // never pool a session left lenient
		if err == nil {
			err = rerr
		}
	}
	if err != nil {
		return changes, fmt.Errorf("apply schema drift to replica %s (%d changes): %w", name, len(changes), err)
	}
	return changes, nil
}

func isRowSizeError(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1118
}

// sourceCreate returns the source's SHOW CREATE TABLE, reading it once per run.
func (r *runner) sourceCreate(ctx context.Context, p *plan) (string, error) {
	if p.srcCreate != "" {
		return p.srcCreate, nil
	}
	var n, create string
	if err := r.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		return scanOne(ctx, c, "SHOW CREATE TABLE "+quoteIdent(p.cfg.Name), &n, &create)
	}); err != nil {
		return "", fmt.Errorf("read source definition of %s: %w", p.cfg.Name, err)
	}
	p.srcCreate = create
	return create, nil
}

// ensureIndexes adds to the replica table the indexes of the source it lacks
// (those left out to speed up the first copy, or new at the source), all in
// one ALTER so each is built once from sorted data.
func (r *runner) ensureIndexes(ctx context.Context, conn *sql.Conn, p *plan) error {
	name := p.cfg.Name
	srcCreate, err := r.sourceCreate(ctx, p)
	if err != nil {
		return err
	}
	var repCreate, n string
	if err := scanOne(ctx, conn, "SHOW CREATE TABLE "+quoteIdent(name), &n, &repCreate); err != nil {
		return fmt.Errorf("read replica definition of %s: %w", name, err)
	}
	have := map[string]bool{}
	for _, d := range indexDefs(repCreate) {
		have[d] = true
	}
	var add []string
	for _, d := range indexDefs(srcCreate) {
		if !have[d] {
			add = append(add, "ADD "+d)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "ALTER TABLE "+quoteIdent(name)+" "+strings.Join(add, ", ")); err != nil {
		return fmt.Errorf("build indexes of replica %s: %w", name, err)
	}
	return nil
}
