package manager

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"
)

// Attempt describes one run of a Do function, reported to Options.Observe.
type Attempt struct {
	Number         int           // 1 for the first try
	Err            error         // nil on success
	ConnectionLost bool          // the connection was discarded (lost, or cut by cancellation); the next try takes a fresh one
	Retry          bool          // another attempt follows
	Backoff        time.Duration // wait before that attempt
}

// do is the retry, backoff and rate-limit loop behind Do.
func (m *Manager) do(ctx context.Context, fn func(context.Context, *sql.Conn) error) error {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for the connection: %w", ctx.Err())
	}
	defer func() { <-m.sem }()

	for attempt := 1; ; attempt++ {
		if err := m.pace(ctx); err != nil {
			return fmt.Errorf("wait for the rate limit: %w", err)
		}
		err := m.try(ctx, fn)
		a := m.judge(ctx, attempt, err)
		if m.opts.Observe != nil {
			m.opts.Observe(a)
		}
		switch {
		case err == nil:
			return nil
		case !a.Retry && attempt == 1:
			return err
		case !a.Retry:
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		m.log.Warn("retrying", "attempt", attempt, "max_attempts", m.opts.MaxRetries+1,
			"backoff", a.Backoff, "connection_lost", a.ConnectionLost, "err", err)
		if cerr := sleep(ctx, a.Backoff); cerr != nil {
			return fmt.Errorf("stop retrying after %d attempts: %w; last error: %w", attempt, cerr, err)
		}
	}
}

func (m *Manager) try(ctx context.Context, fn func(context.Context, *sql.Conn) error) error {
	m.attempts.Add(1)
	if err := m.acquire(ctx); err != nil {
		return err
	}
	return fn(ctx, m.conn)
}

// judge decides what follows attempt's err: drop the connection when it is
// lost (or cut by cancellation), retry when the error is retryable and
// retries are left.
func (m *Manager) judge(ctx context.Context, attempt int, err error) Attempt {
	a := Attempt{Number: attempt, Err: err}
	if err == nil {
		return a
	}
	if ConnectionLost(err) || isContext(err) {
		a.ConnectionLost = true
		m.drop(true)
	}
	a.Retry = Retryable(err) && attempt <= m.opts.MaxRetries && ctx.Err() == nil
	if a.Retry {
		a.Backoff = backoff(m.opts, attempt)
	}
	return a
}

// pace waits until RateLimit has passed since the previous attempt started.
func (m *Manager) pace(ctx context.Context) error {
	if m.opts.RateLimit > 0 && !m.last.IsZero() {
		if err := sleep(ctx, m.opts.RateLimit-time.Since(m.last)); err != nil {
			return err
		}
	}
	m.last = time.Now()
	return nil
}

// backoff is BaseBackoff·2^(attempt-1) capped at MaxBackoff, with equal
// jitter: half fixed, half random, so retries from parallel workers spread.
func backoff(o Options, attempt int) time.Duration {
	d := o.BaseBackoff
	for i := 1; i < attempt && (o.MaxBackoff <= 0 || d < o.MaxBackoff); i++ {
		d *= 2
	}
	if o.MaxBackoff > 0 && d > o.MaxBackoff {
		d = o.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
