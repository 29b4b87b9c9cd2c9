package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// message is the webhook body: Slack shows text and ignores the rest; any
// other receiver can read the whole result from report.
type message struct {
	Text   string         `json:"text"`
	Report *report.Report `json:"report"`
}

// Body is the JSON posted for r.
func Body(r *report.Report) ([]byte, error) {
	return json.Marshal(message{Text: Summary(r), Report: r})
}

// maxListed bounds the problem lines in a summary: the report has them all.
const maxListed = 5

// Summary is a short human account of r: outcome, which tables failed and
// why, rows moved, duration.
func Summary(r *report.Report) string {
	var b strings.Builder
	t := r.Totals
	fmt.Fprintf(&b, "pipeline %s: %s (exit %d) after %s", r.Command, headline(r), r.ExitCode, roundDuration(r.DurationSeconds))
	if t.Tables > 0 {
		fmt.Fprintf(&b, ", %d tables", t.Tables)
		if bad := t.TablesFailed + t.TablesDiffer; bad > 0 {
			fmt.Fprintf(&b, ", %d not ok", bad)
		}
	}
	b.WriteString("\n")
	if r.Error != "" {
		fmt.Fprintf(&b, "%s\n", clip(r.Error))
	}
	problems := r.Problems()
	for i, p := range problems {
		if i == maxListed {
			fmt.Fprintf(&b, "… and %d more (see the report)\n", len(problems)-maxListed)
			break
		}
		why := p.Error
		if why == "" && p.Status == report.TableDiffers {
			why = "differs"
		}
		fmt.Fprintf(&b, "• %s (%s): %s\n", p.Table, p.Phase, clip(why))
	}
	fmt.Fprintf(&b, "rows: %d read, %d written, %d deleted", t.RowsRead, t.RowsWritten, t.RowsDeleted)
	if t.Conversions > 0 {
		fmt.Fprintf(&b, "; %d values converted", t.Conversions)
	}
	if t.SchemaChanges > 0 {
		fmt.Fprintf(&b, "; %d schema changes", t.SchemaChanges)
	}
	fmt.Fprintf(&b, "\nrun %s", r.RunID)
	return b.String()
}

func headline(r *report.Report) string {
	switch r.Status {
	case report.StatusOK:
		return "ok"
	case report.StatusStoppedByWindow:
		return "stopped by the run window, resumes next run"
	case report.StatusInterrupted:
		return "INTERRUPTED, resumes next run"
	case report.StatusStale:
		return "STALE tables"
	}
	return strings.ToUpper(strings.ReplaceAll(string(r.Status), "_", " "))
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		return string(r[:200]) + "…"
	}
	return s
}

func roundDuration(seconds float64) time.Duration {
	d := time.Duration(seconds * float64(time.Second))
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
