package window_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/window"
)

var chicago = mustZone("America/Chicago")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// ct is a wall-clock time in Chicago; utc an instant given in UTC (for the
// hours DST makes ambiguous or skips).
func ct(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, chicago)
}
func utc(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

func TestWindow(t *testing.T) {
	never := time.Time{}
	tests := []struct {
		name   string
		spec   string
		now    time.Time
		open   bool
		closes time.Time // zero when closed
		next   time.Time
	}{
		// 21:00-06:00 crosses midnight.
		{"before the evening start", "21:00-06:00", ct(2025, 6, 10, 20, 59), false, never, ct(2025, 6, 10, 21, 0)},
		{"at the start: open", "21:00-06:00", ct(2025, 6, 10, 21, 0), true, ct(2025, 6, 11, 6, 0), ct(2025, 6, 11, 21, 0)},
		{"after midnight: yesterday's window", "21:00-06:00", ct(2025, 6, 11, 3, 0), true, ct(2025, 6, 11, 6, 0), ct(2025, 6, 11, 21, 0)},
		{"at the end: closed", "21:00-06:00", ct(2025, 6, 11, 6, 0), false, never, ct(2025, 6, 11, 21, 0)},
		{"midday", "21:00-06:00", ct(2025, 6, 11, 12, 0), false, never, ct(2025, 6, 11, 21, 0)},
		{"now given in UTC", "21:00-06:00", utc(2025, 6, 11, 3, 0), true, ct(2025, 6, 11, 6, 0), ct(2025, 6, 11, 21, 0)}, // 22:00 CDT
		{"month and year boundary", "21:00-06:00", ct(2025, 12, 31, 23, 0), true, ct(2026, 1, 1, 6, 0), ct(2026, 1, 1, 21, 0)},
		// A daytime window and one ending at 24:00.
		{"daytime inside", "09:00-17:00", ct(2025, 6, 10, 16, 59), true, ct(2025, 6, 10, 17, 0), ct(2025, 6, 11, 9, 0)},
		{"daytime after", "09:00-17:00", ct(2025, 6, 10, 17, 0), false, never, ct(2025, 6, 11, 9, 0)},
		{"daytime early morning", "09:00-17:00", ct(2025, 6, 10, 1, 0), false, never, ct(2025, 6, 10, 9, 0)},
		{"until midnight", "18:00-24:00", ct(2025, 6, 10, 23, 59), true, ct(2025, 6, 11, 0, 0), ct(2025, 6, 11, 18, 0)},
		{"just after midnight", "18:00-24:00", ct(2025, 6, 11, 0, 0), false, never, ct(2025, 6, 11, 18, 0)},

		// Spring forward, Sunday 2025-03-09: 02:00 CST jumps to 03:00 CDT.
		// The night 21:00-06:00 keeps its wall-clock ends and is 8 h long.
		{"spring night, before the jump", "21:00-06:00", ct(2025, 3, 9, 1, 59), true, ct(2025, 3, 9, 6, 0), ct(2025, 3, 9, 21, 0)},
		{"spring night, after the jump", "21:00-06:00", ct(2025, 3, 9, 5, 59), true, ct(2025, 3, 9, 6, 0), ct(2025, 3, 9, 21, 0)},
		{"spring, closes at 06:00 CDT = 11:00 UTC", "21:00-06:00", utc(2025, 3, 9, 11, 0), false, never, ct(2025, 3, 9, 21, 0)},
		// A start in the skipped hour opens when the clocks jump (03:00 CDT = 08:00 UTC).
		{"start in the skipped hour: before", "02:30-05:00", utc(2025, 3, 9, 7, 59), false, never, utc(2025, 3, 9, 8, 0)},
		{"start in the skipped hour: at the jump", "02:30-05:00", utc(2025, 3, 9, 8, 0), true, ct(2025, 3, 9, 5, 0), ct(2025, 3, 10, 2, 30)},
		{"end in the skipped hour", "22:00-02:30", ct(2025, 3, 9, 1, 59), true, utc(2025, 3, 9, 8, 0), ct(2025, 3, 9, 22, 0)},

		// Fall back, Sunday 2025-11-02: 02:00 CDT returns to 01:00 CST, so
		// 01:00-01:59 happens twice (06:00-06:59 UTC as CDT, 07:00-07:59 as CST).
		// The night 21:00-06:00 is 10 h long.
		{"fall night, first 01:30", "21:00-06:00", utc(2025, 11, 2, 6, 30), true, ct(2025, 11, 2, 6, 0), ct(2025, 11, 2, 21, 0)},
		{"fall night, second 01:30", "21:00-06:00", utc(2025, 11, 2, 7, 30), true, ct(2025, 11, 2, 6, 0), ct(2025, 11, 2, 21, 0)},
		{"fall, closes at 06:00 CST = 12:00 UTC", "21:00-06:00", utc(2025, 11, 2, 11, 59), true, utc(2025, 11, 2, 12, 0), ct(2025, 11, 2, 21, 0)},
		// A start in the repeated hour opens at its first occurrence.
		{"start in the repeated hour", "01:30-04:00", utc(2025, 11, 2, 6, 30), true, ct(2025, 11, 2, 4, 0), ct(2025, 11, 3, 1, 30)},
		{"start in the repeated hour, second pass", "01:30-04:00", utc(2025, 11, 2, 7, 15), true, ct(2025, 11, 2, 4, 0), ct(2025, 11, 3, 1, 30)},
		// An end in the repeated hour closes at its first occurrence: the
		// second 01:15 is after it.
		{"end in the repeated hour", "22:00-01:30", utc(2025, 11, 2, 6, 29), true, utc(2025, 11, 2, 6, 30), ct(2025, 11, 2, 22, 0)},
		{"end in the repeated hour, second 01:15", "22:00-01:30", utc(2025, 11, 2, 7, 15), false, never, ct(2025, 11, 2, 22, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := window.Parse(tt.spec, "America/Chicago")
			require.NoError(t, err)
			assert.Equal(t, tt.open, w.Open(tt.now), "open")
			assert.True(t, tt.closes.Equal(w.Closes(tt.now)), "closes: want %s, got %s", tt.closes, w.Closes(tt.now))
			assert.True(t, tt.next.Equal(w.Next(tt.now)), "next: want %s, got %s", tt.next, w.Next(tt.now))
		})
	}
}

func TestNightLengthAcrossDST(t *testing.T) {
	w, err := window.Parse("21:00-06:00", "America/Chicago")
	require.NoError(t, err)
	length := func(evening time.Time) time.Duration { return w.Closes(evening).Sub(evening) }
	assert.Equal(t, 9*time.Hour, length(ct(2025, 6, 10, 21, 0)))
	assert.Equal(t, 8*time.Hour, length(ct(2025, 3, 8, 21, 0)), "spring forward night")
	assert.Equal(t, 10*time.Hour, length(ct(2025, 11, 1, 21, 0)), "fall back night")
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ spec, zone, want string }{
		{"9pm-6am", "America/Chicago", `start "9pm" is not HH:MM`},
		{"21:00", "America/Chicago", `window "21:00" is not HH:MM-HH:MM`},
		{"2100-0600", "America/Chicago", `is not HH:MM`},
		{"21:0-06:00", "America/Chicago", `start "21:0" is not HH:MM`},
		{"21:60-06:00", "America/Chicago", `start "21:60" is not HH:MM`},
		{"24:00-06:00", "America/Chicago", `only an end may be 24:00`},
		{"21:00-24:30", "America/Chicago", `only an end may be 24:00`},
		{"21:00-21:00", "America/Chicago", "starts when it ends: remove schedule.window"},
		{"00:00-24:00", "America/Chicago", "starts when it ends"},
		{"21:00-06:00", "", `needs time_zone`},
		{"21:00-06:00", "Chicago", `time_zone "Chicago" is not an IANA time zone name`},
	}
	for _, tt := range tests {
		t.Run(tt.spec+" "+tt.zone, func(t *testing.T) {
			_, err := window.Parse(tt.spec, tt.zone)
			require.ErrorIs(t, err, window.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	w, err := window.Parse(" 21:00 - 06:00 ", "UTC")
	require.NoError(t, err)
	assert.Equal(t, "21:00-06:00 UTC", w.String())
}
