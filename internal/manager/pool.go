package manager

import (
	"context"
	"io"
)

// Pool caps a run's source connections: one runner (a *Manager, or a
// test's wrapper of one) per connection, each lent to one caller at a
// time, so taking one is the connection cap. replicate and verify share it.
type Pool[D any] struct {
	free chan D
	all  []D
}

// NewPool builds n runners with newDoer.
func NewPool[D any](n int, newDoer func() D) *Pool[D] {
	p := &Pool[D]{free: make(chan D, n)}
	for range n {
		d := newDoer()
		p.all = append(p.all, d)
		p.free <- d
	}
	return p
}

// Use waits for a free runner (or ctx's end) and calls use with it; the
// runner is free again when use returns.
func (p *Pool[D]) Use(ctx context.Context, use func(D) error) error {
	var d D
	select {
	case d = <-p.free:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { p.free <- d }()
	return use(d)
}

// Queries sums Queries over the runners that count them (*Manager does).
func (p *Pool[D]) Queries() int64 {
	var n int64
	for _, d := range p.all {
		if q, ok := any(d).(interface{ Queries() int64 }); ok {
			n += q.Queries()
		}
	}
	return n
}

// Close closes the runners that are io.Closers, returning their connections.
func (p *Pool[D]) Close() {
	for _, d := range p.all {
		if c, ok := any(d).(io.Closer); ok {
			c.Close()
		}
	}
}
