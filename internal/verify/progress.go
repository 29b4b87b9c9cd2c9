package verify

import (
	"context"

	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Progress remembers, per table, where a verification pass stopped.
type Progress struct{}

// resume is where tv's pass continues (nil: from the first key).
func (r *runner) resume(ctx context.Context, tv *tableVerify) ([]string, error) { return nil, nil }

// saveProgress records that tv's pass has compared up to lo (complete: the
// whole table).
func (r *runner) saveProgress(ctx context.Context, tv *tableVerify, lo []string, complete bool) error {
	return nil
}

// order is the order the selected tables are verified in.
func (r *runner) order(ctx context.Context, selected []*tables.Table) ([]*tables.Table, error) {
	return selected, nil
}
