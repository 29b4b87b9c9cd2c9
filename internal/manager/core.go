package manager

import (
	"context"
	"fmt"
	"log/slog"
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

// core is the retry, backoff and rate-limit loop shared by the MySQL and
// PostgreSQL managers; C is the driver's connection type.
type core[C any] struct {
	opts    Options
	log     *slog.Logger
	acquire func(ctx context.Context) (C, error)
	release func(conn C, broken bool)
	broken  func(conn C, err error) bool // connection unusable after err

	sem  chan struct{} // one Do at a time: the connection is not shared
	conn C
	have bool
	last time.Time // start of the previous attempt
}

func newCore[C any](opts Options, acquire func(context.Context) (C, error), release func(C, bool), broken func(C, error) bool) *core[C] {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &core[C]{opts: opts, log: log, acquire: acquire, release: release, broken: broken, sem: make(chan struct{}, 1)}
}

func (s *core[C]) do(ctx context.Context, fn func(context.Context, C) error) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for the connection: %w", ctx.Err())
	}
	defer func() { <-s.sem }()

	for attempt := 1; ; attempt++ {
		if err := s.pace(ctx); err != nil {
			return fmt.Errorf("wait for the rate limit: %w", err)
		}
		err := s.try(ctx, fn)
		a := Attempt{Number: attempt, Err: err}
		if err != nil {
			a.ConnectionLost = ConnectionLost(err)
			if a.ConnectionLost || isContext(err) || (s.have && s.broken(s.conn, err)) {
				a.ConnectionLost = true
				s.drop(true)
			}
			a.Retry = Retryable(err) && attempt <= s.opts.MaxRetries && ctx.Err() == nil
			if a.Retry {
				a.Backoff = s.backoff(attempt)
			}
		}
		if s.opts.Observe != nil {
			s.opts.Observe(a)
		}
		switch {
		case err == nil:
			return nil
		case !a.Retry && attempt == 1:
			return err
		case !a.Retry:
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		s.log.Warn("retrying", "attempt", attempt, "max_attempts", s.opts.MaxRetries+1,
			"backoff", a.Backoff, "connection_lost", a.ConnectionLost, "err", err)
		if cerr := sleep(ctx, a.Backoff); cerr != nil {
			return fmt.Errorf("stop retrying after %d attempts: %w; last error: %w", attempt, cerr, err)
		}
	}
}

func (s *core[C]) try(ctx context.Context, fn func(context.Context, C) error) error {
	if !s.have {
		conn, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		s.conn, s.have = conn, true
	}
	return fn(ctx, s.conn)
}

// pace waits until RateLimit has passed since the previous attempt started.
func (s *core[C]) pace(ctx context.Context) error {
	if s.opts.RateLimit > 0 && !s.last.IsZero() {
		if err := sleep(ctx, s.opts.RateLimit-time.Since(s.last)); err != nil {
			return err
		}
	}
	s.last = time.Now()
	return nil
}

// backoff is BaseBackoff·2^(attempt-1) capped at MaxBackoff, with equal
// jitter: half fixed, half random, so retries from parallel workers spread.
func (s *core[C]) backoff(attempt int) time.Duration {
	d := s.opts.BaseBackoff
	for i := 1; i < attempt && (s.opts.MaxBackoff <= 0 || d < s.opts.MaxBackoff); i++ {
		d *= 2
	}
	if s.opts.MaxBackoff > 0 && d > s.opts.MaxBackoff {
		d = s.opts.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func (s *core[C]) drop(broken bool) {
	if s.have {
		s.release(s.conn, broken)
		var zero C
		s.conn, s.have = zero, false
	}
}

// close returns the connection; it waits for a running Do to finish.
func (s *core[C]) close() {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	s.drop(false)
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
