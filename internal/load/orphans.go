package load

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// Orphan is a raw table the pipeline loaded whose table is no longer to be
// loaded: gone from tables.yml (discover removes a table dropped at the
// source) or excluded there, or — without a tables.yml — gone from the
// replica. It is kept, and reported, until Options.DropOrphans.
type Orphan struct {
	Table  string `json:"table"`
	Target string `json:"target"`
}

// Orphans lists the orphaned raw tables, from the load state (for
// `pipeline check`; a load reports them in its Result).
func (l *Loader) Orphans(ctx context.Context) ([]Orphan, error) { return l.orphans(ctx) }

// orphans lists the orphaned raw tables, from the load state.
func (l *Loader) orphans(ctx context.Context) ([]Orphan, error) {
	states, err := States(ctx, l.raw)
	if err != nil || len(states) == 0 {
		return nil, err
	}
	loaded := map[string]bool{}
	if l.cfg != nil && len(l.cfg.Tables) > 0 {
		for _, t := range l.cfg.Ordered() {
			loaded[t.Name] = true
		}
	} else {
		names, err := replicaTables(ctx, l.replica)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			loaded[n] = true
		}
	}
	var out []Orphan
	for name, st := range states {
		if !loaded[name] {
			out = append(out, Orphan{Table: name, Target: st.Target})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out, nil
}

// dropOrphans drops each orphan's raw table and forgets its load state, in
// one transaction per table that checks the run still holds the warehouse
// lock. A table that cannot be dropped (views depend on it) is reported and
// kept.
func (l *Loader) dropOrphans(ctx context.Context, run0 runStart, res *Result) {
	for _, o := range res.Orphans {
		if err := l.dropOrphan(ctx, run0, o); err != nil {
			res.Failed++
			res.OrphanErrors = append(res.OrphanErrors, err.Error())
			l.log.Error("drop orphaned raw table", "table", o.Table, "error", err)
			continue
		}
		l.log.Warn("orphaned raw table dropped (no longer loaded)", "table", o.Table, "target", o.Target)
		res.DroppedOrphans = append(res.DroppedOrphans, o.Table)
	}
}

func (l *Loader) dropOrphan(ctx context.Context, run0 runStart, o Orphan) error {
	tx, err := l.raw.Begin(ctx)
	if err != nil {
		return fmt.Errorf("drop orphaned raw table %s: %w", o.Target, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+qualified(o.Target)); err != nil {
		return fmt.Errorf("drop orphaned raw table %s.%s (drop the views on it first, dbt rebuilds them): %w", Schema, typemap.QuotePG(o.Target), err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+statusTable+" WHERE table_name = $1", o.Table); err != nil {
		return fmt.Errorf("forget orphaned raw table %s: %w", o.Table, err)
	}
	if err := run0.fence.check(ctx, tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// OrphanNote says which raw tables are orphaned and what became of them;
// "" when none.
func (r *Result) OrphanNote() string {
	if len(r.Orphans) == 0 {
		return ""
	}
	names := make([]string, len(r.Orphans))
	for i, o := range r.Orphans {
		names[i] = o.Table
	}
	if len(r.DroppedOrphans) == len(r.Orphans) {
		return fmt.Sprintf("%d orphaned raw tables dropped (no longer in tables.yml): %s", len(names), strings.Join(names, ", "))
	}
	note := fmt.Sprintf("%d raw tables are orphaned (no longer in tables.yml, or excluded; kept): %s — `pipeline load --drop-orphans` drops them",
		len(names), strings.Join(names, ", "))
	if len(r.OrphanErrors) > 0 {
		note += "; not dropped: " + strings.Join(r.OrphanErrors, "; ")
	}
	return note
}
