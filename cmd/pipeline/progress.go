package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows per-table progress: a redrawn bar line on a terminal,
// a structured log line every few seconds otherwise. It needs no library:
// a terminal is a character device, and one line redrawn with \r is enough.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	log   *slog.Logger
	tty   bool
	last  time.Time
	table string
	drawn bool
	// started is when each table running now was last logged (no terminal).
	started map[string]time.Time
}

func newProgress(w io.Writer, log *slog.Logger) *progress {
	p := &progress{w: w, log: log, started: map[string]time.Time{}}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(table string, rows, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.tty { // per table: tables load in parallel
		started, ok := p.started[table]
		switch {
		case rows == total: // finished: the loader logs the table's result
			delete(p.started, table)
		case !ok:
			p.started[table] = now
		case now.Sub(started) >= 5*time.Second:
			p.started[table] = now
			p.log.Info("loading", "table", table, "rows", rows, "of", total)
		}
		return
	}
	if table == p.table && rows != total && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.table, p.last = table, now
	const width = 30
	bar := strings.Repeat("?", width)
	pct := ""
	if total > 0 {
		n := int(min(rows, total) * width / total)
		bar = strings.Repeat("#", n) + strings.Repeat(".", width-n)
		pct = fmt.Sprintf(" %3d%%", rows*100/total)
	}
	fmt.Fprintf(p.w, "\r%-28.28s [%s] %d rows%s\033[K", table, bar, rows, pct)
	p.drawn = rows != total
	if !p.drawn {
		fmt.Fprintln(p.w) // the table is done: keep its bar, start a fresh line
	}
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
