package load

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Guard tells whether this run still holds the warehouse lock (see
// Options.Guard); *lock.WarehouseLock is one.
type Guard interface {
	Check(ctx context.Context, tx pgx.Tx) error
}

// fence is a run's Guard and its first failure: once the lock is lost the
// run writes nothing more (another run may be loading).
type fence struct {
	guard Guard
	mu    sync.Mutex
	lost  error
}

// check asks the Guard inside tx; the first failure is kept.
func (f *fence) check(ctx context.Context, tx pgx.Tx) error {
	if f == nil || f.guard == nil {
		return nil
	}
	err := f.guard.Check(ctx, tx)
	if err != nil {
		f.mu.Lock()
		if f.lost == nil {
			f.lost = err
		}
		f.mu.Unlock()
	}
	return err
}

// failed is the Guard's failure, once it failed.
func (f *fence) failed() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lost
}

// commit commits a table's write transaction (what it was, for errors)
// once the run has checked, inside it, that it still holds the warehouse
// lock.
func (tl *tableLoad) commit(ctx context.Context, ptx pgx.Tx, what string) error {
	if err := tl.run0.fence.check(ctx, ptx); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("commit %s load of %s: %w", what, tl.p.target, err)
	}
	return nil
}
