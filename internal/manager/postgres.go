package manager

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/internal/factory"
)

// Postgres holds one reused *pgxpool.Conn and behaves like Manager.
type Postgres struct {
	core *core[*pgxpool.Conn]
}

// NewPostgres returns a Postgres manager on pool. It takes a connection lazily.
func NewPostgres(pool *pgxpool.Pool, opts Options) *Postgres {
	acquire := func(ctx context.Context) (*pgxpool.Conn, error) {
		return factory.AcquirePostgres(ctx, pool, opts.PoolTimeout)
	}
	release := func(c *pgxpool.Conn, broken bool) {
		if broken && !c.Conn().IsClosed() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.Conn().Close(ctx)
			cancel()
		}
		c.Release() // the pool destroys a closed connection
	}
	// pgx closes the connection itself after fatal errors it cannot name.
	broken := func(c *pgxpool.Conn, _ error) bool { return c.Conn().IsClosed() }
	return &Postgres{core: newCore(opts, acquire, release, broken)}
}

// Do runs fn on the reused connection like Manager.Do.
func (p *Postgres) Do(ctx context.Context, fn func(ctx context.Context, conn *pgxpool.Conn) error) error {
	return p.core.do(ctx, fn)
}

// ExecuteWithRetry runs one statement through Do.
func (p *Postgres) ExecuteWithRetry(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := p.Do(ctx, func(ctx context.Context, conn *pgxpool.Conn) error {
		var err error
		tag, err = conn.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// Close returns the reused connection to the pool. It waits for a running Do.
func (p *Postgres) Close() error {
	p.core.close()
	return nil
}
