// Package window is pipeline.yml's run window (schedule.window in
// schedule.time_zone): the daily wall-clock hours in which `run` and
// `replicate` may read the clinic's server. It answers "is it open now",
// "when does it close" and "when does it open next" for an injected instant.
//
// All arithmetic is done in the window's zone on calendar days, so a window
// keeps its wall-clock hours across daylight-saving changes (the night it
// spans is an hour shorter or longer). A start or end that falls in the hour
// skipped in spring takes effect when the clocks jump; one that falls in the
// hour repeated in autumn takes effect at its first occurrence.
package window

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	// The zone database is compiled in, as a fallback for machines without
	// /usr/share/zoneinfo (slim containers, Windows servers at a clinic):
	// a window must not change meaning, or fail, with the host it runs on.
	// It costs ≈ 450 kB of binary; the system's database is still preferred.
	_ "time/tzdata"
)

// ErrInvalid marks a window or time zone that cannot be parsed.
var ErrInvalid = errors.New("invalid run window")

// Window is a daily run window. The zero value is not usable; see Parse.
type Window struct {
	spec       string
	start, end int // minutes after local midnight; end may be 24*60
	loc        *time.Location
}

// Parse reads a window such as "21:00-06:00" (24-hour HH:MM-HH:MM; an end at
// or before the start crosses midnight; "24:00" is allowed as an end) in an
// IANA time zone such as "America/Chicago". A start equal to the end is
// refused: it could mean "never" or "always", and "always" is written by
// leaving the window out.
func Parse(spec, timeZone string) (*Window, error) {
	from, to, ok := strings.Cut(spec, "-")
	if !ok {
		return nil, fmt.Errorf("%w: window %q is not HH:MM-HH:MM (24-hour clock, in time_zone), e.g. \"21:00-06:00\"", ErrInvalid, spec)
	}
	start, err := clock(from, false)
	if err != nil {
		return nil, fmt.Errorf("%w: window %q: start %v", ErrInvalid, spec, err)
	}
	end, err := clock(to, true)
	if err != nil {
		return nil, fmt.Errorf("%w: window %q: end %v", ErrInvalid, spec, err)
	}
	if start == end || (start == 0 && end == 24*60) {
		return nil, fmt.Errorf("%w: window %q starts when it ends: remove schedule.window to allow runs at any time, or give a shorter window", ErrInvalid, spec)
	}
	if strings.TrimSpace(timeZone) == "" {
		return nil, fmt.Errorf("%w: window %q needs time_zone, the clinic's IANA zone such as \"America/Chicago\" (or \"UTC\", or \"Local\" for this machine's)", ErrInvalid, spec)
	}
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		return nil, fmt.Errorf("%w: time_zone %q is not an IANA time zone name such as \"America/Chicago\" or \"UTC\"", ErrInvalid, timeZone)
	}
	return &Window{spec: strings.TrimSpace(from) + "-" + strings.TrimSpace(to), start: start, end: end, loc: loc}, nil
}

// clock parses "HH:MM" strictly into minutes after midnight.
func clock(s string, isEnd bool) (int, error) {
	s = strings.TrimSpace(s)
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM (two digits each, 24-hour clock)", s)
	}
	hh, errH := strconv.Atoi(h)
	mm, errM := strconv.Atoi(m)
	if errH != nil || errM != nil || hh < 0 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not HH:MM (two digits each, 24-hour clock)", s)
	}
	if hh > 23 && !(isEnd && hh == 24 && mm == 0) {
		return 0, fmt.Errorf("%q is past 23:59 (only an end may be 24:00)", s)
	}
	return hh*60 + mm, nil
}

// String is the window as configured, with its zone.
func (w *Window) String() string { return w.spec + " " + w.loc.String() }

// Location is the window's time zone.
func (w *Window) Location() *time.Location { return w.loc }

// occurrence is the window that opens on the local calendar day of day
// (any instant on it) shifted by k days.
func (w *Window) occurrence(day time.Time, k int) (open, close time.Time) {
	y, m, d := day.In(w.loc).Date()
	open = w.at(y, m, d+k, w.start)
	endDay := d + k
	if w.end <= w.start {
		endDay++
	}
	return open, w.at(y, m, endDay, w.end)
}

// at is the instant the wall clock in w's zone shows minutes after midnight
// on the given day (normalised, so d may overflow the month). In the hour
// skipped in spring it is the instant the clocks jump; in the repeated hour
// it is the first occurrence (what time.Date picks).
func (w *Window) at(y int, mo time.Month, d, minutes int) time.Time {
	t := time.Date(y, mo, d, minutes/60, minutes%60, 0, 0, w.loc)
	if minutes == 24*60 || t.Hour()*60+t.Minute() == minutes {
		return t
	}
	from, to := t.ZoneBounds() // the wall time does not exist: t is beside the jump
	if t.Hour()*60+t.Minute() < minutes {
		return to
	}
	return from
}

// Open reports whether now is inside the window (the opening instant is
// inside, the closing one outside).
func (w *Window) Open(now time.Time) bool {
	return !w.Closes(now).IsZero()
}

// Closes is the instant the window that is open at now closes, or the zero
// time when now is outside the window.
func (w *Window) Closes(now time.Time) time.Time {
	for _, k := range []int{-1, 0} {
		open, close := w.occurrence(now, k)
		if !now.Before(open) && now.Before(close) {
			return close
		}
	}
	return time.Time{}
}

// Next is the first opening of the window after now (strictly: when now is
// an opening instant, the next day's).
func (w *Window) Next(now time.Time) time.Time {
	for _, k := range []int{-1, 0, 1, 2} {
		if open, _ := w.occurrence(now, k); open.After(now) {
			return open
		}
	}
	panic("window: no opening within two days") // unreachable: one opens every calendar day
}
