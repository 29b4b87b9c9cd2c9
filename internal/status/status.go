// Package status is the read model of `pipeline status` and of the
// metrics' freshness gauges: per table, what the run history
// (internal/history), the replica's copy status (internal/state) and raw's
// load state say about it — never the source. It builds the status report
// (internal/report, command status) and its human table.
package status

import (
	"context"
	"database/sql"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/metrics"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// Sources are the pipeline's own databases status reads.
type Sources struct {
	History *history.Store
	Replica *sql.DB       // the replica's copy status; nil: not read (no watermark, no lag)
	Raw     *pgxpool.Pool // raw's load state; nil: not read (no lag)
}

// Table is what is known about one table.
type Table struct {
	Name    string
	History history.TableStatus // zero value: no history
	Replica *state.Row          // nil: never replicated (or not read)
	Load    *load.State         // nil: never loaded (or not read)
}

// Read reads the tables named (every table any source knows when names is
// nil), sorted by name. A named table nothing knows is returned empty: it
// was never confirmed current.
func Read(ctx context.Context, src Sources, names []string) ([]Table, error) {
	hist, err := src.History.Tables(ctx, names)
	if err != nil {
		return nil, err
	}
	replica := map[string]*state.Row{}
	if src.Replica != nil {
		if replica, err = state.ReadAll(ctx, src.Replica); err != nil {
			return nil, err
		}
	}
	loads := map[string]load.State{}
	if src.Raw != nil {
		if loads, err = load.States(ctx, src.Raw); err != nil {
			return nil, err
		}
	}
	byName := map[string]*Table{}
	get := func(name string) *Table {
		if byName[name] == nil {
			byName[name] = &Table{Name: name}
		}
		return byName[name]
	}
	for _, n := range names {
		get(n)
	}
	for _, h := range hist {
		get(h.Table).History = h
	}
	for name, row := range replica {
		if names == nil || byName[name] != nil {
			get(name).Replica = row
		}
	}
	for name, st := range loads {
		if names == nil || byName[name] != nil {
			get(name).Load = &st
		}
	}
	out := make([]Table, 0, len(byName))
	for _, t := range byName {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Behind is how far raw lags the replica: the replica commits (change_seq)
// raw does not hold yet, and the time from the start of the load raw holds
// to the end of the replica's last copy (0 when raw holds every commit).
// Either is nil when unknown (no replica state; lag: never loaded).
func (t Table) Behind() (changes *int64, lag *time.Duration) {
	if t.Replica == nil {
		return nil, nil
	}
	var loaded int64
	if t.Load != nil && t.Load.ChangeSeq != nil {
		loaded = *t.Load.ChangeSeq
	}
	n := max(t.Replica.ChangeSeq-loaded, 0)
	asOf, ok := t.loadedAsOf()
	if !ok {
		return &n, nil
	}
	d := time.Duration(0)
	if end, ok := replicaTime(t.Replica.LastRunEnd); n > 0 && ok && end.After(asOf) {
		d = end.Sub(asOf)
	}
	return &n, &d
}

// loadedAsOf is when the load raw holds started (it read the replica then).
func (t Table) loadedAsOf() (time.Time, bool) {
	if e, ok := t.History.LastSuccess[report.PhaseLoad]; ok {
		return e.StartedAt, true
	}
	if t.Load != nil && t.Load.Status == load.StatusOK && t.Load.StartedAt != nil {
		return *t.Load.StartedAt, true
	}
	return time.Time{}, false
}

// replicaTime parses a DATETIME(6) of the copy status (UTC).
func replicaTime(s sql.NullString) (time.Time, bool) {
	if !s.Valid {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s.String, time.UTC)
	return t, err == nil
}

// Metrics is the table's freshness for the metrics file.
func (t Table) Metrics() metrics.TableState {
	ms := metrics.TableState{Table: t.Name, LastSuccess: map[report.Phase]time.Time{}, ConfirmedCurrent: t.History.ConfirmedCurrent}
	for phase, e := range t.History.LastSuccess {
		ms.LastSuccess[phase] = e.FinishedAt
	}
	_, ms.Lag = t.Behind()
	return ms
}
