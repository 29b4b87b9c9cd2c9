package manager

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type countingRunner struct {
	queries int64
	closed  *int
}

func (c *countingRunner) Queries() int64 { return c.queries }
func (c *countingRunner) Close() error   { *c.closed++; return nil }

// A Pool lends each runner to one caller at a time, gives up when ctx ends
// while none is free, and sums and closes what its runners count and hold.
func TestPool(t *testing.T) {
	closed := 0
	made := 0
	p := NewPool(2, func() *countingRunner {
		made++
		return &countingRunner{queries: int64(made), closed: &closed}
	})
	require.Equal(t, 2, made)
	seen := map[*countingRunner]bool{}
	err := p.Use(context.Background(), func(a *countingRunner) error {
		seen[a] = true
		return p.Use(context.Background(), func(b *countingRunner) error {
			seen[b] = true
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return p.Use(ctx, func(*countingRunner) error {
				t.Error("a third runner was lent from a pool of two")
				return nil
			})
		})
	})
	assert.ErrorIs(t, err, context.Canceled, "both runners taken: the third caller waits for ctx")
	assert.Len(t, seen, 2, "two callers at once get two different runners")
	require.NoError(t, p.Use(context.Background(), func(*countingRunner) error { return nil }), "runners are free again after use")
	assert.Equal(t, int64(1+2), p.Queries())
	p.Close()
	assert.Equal(t, 2, closed)
}
