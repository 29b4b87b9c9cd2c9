package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// Write prints rep (a status report) for a person: the header line, one
// line per table, then each current failure's error.
func Write(w io.Writer, rep *report.Report) {
	fmt.Fprintln(w, header(rep))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSTATUS\tCONFIRMED CURRENT\tAGE\tREPLICATED\tLOADED\tWATERMARK\tBEHIND\tLAG\tCONVERSIONS\tVERIFIED")
	for _, t := range rep.Tables {
		f := t.Freshness
		if f == nil {
			f = &report.Freshness{}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.Table, t.Status, stamp(f.ConfirmedCurrentAt), age(f.AgeSeconds),
			phaseCell(f.LastReplicate), phaseCell(f.LastLoad), orDash(f.Watermark), count(f.ChangesBehind), seconds(f.LagSeconds),
			t.ConversionTotal(), verifyCell(f.LastVerify))
	}
	tw.Flush()
	for _, t := range rep.Tables {
		if f := t.Freshness; f != nil && f.Failing && f.LastFailure != nil {
			fmt.Fprintf(w, "FAILING %s (%s, %s): %s\n", t.Table, f.LastFailure.Phase, f.LastFailure.StartedAt.Format(layout), f.LastFailure.Error)
		}
	}
}

const layout = "2006-01-02 15:04 MST"

// header: the last run and its result, the tables' verdicts and the oldest.
func header(rep *report.Report) string {
	var b strings.Builder
	if r := rep.LastRun; r != nil {
		fmt.Fprintf(&b, "last run: %s %s at %s: %s (exit %d, %s)", r.Command, r.RunID, r.StartedAt.Format(layout), r.Status, r.ExitCode,
			r.FinishedAt.Sub(r.StartedAt).Round(time.Second))
	} else {
		b.WriteString("last run: none recorded yet")
	}
	n := map[report.TableStatus]int{}
	for _, e := range rep.Tables {
		n[e.Status]++
	}
	fmt.Fprintf(&b, "; %d tables: %d ok, %d stale, %d failing", len(rep.Tables), n[report.TableOK], n[report.TableStale], n[report.TableFailed])
	for _, e := range rep.Tables {
		if e.Table == rep.OldestTable && e.Freshness != nil {
			fmt.Fprintf(&b, "; oldest: %s (confirmed current %s)", e.Table, sinceText(e.Freshness))
		}
	}
	fmt.Fprintf(&b, "; stale after %s", time.Duration(rep.StaleAfterSeconds*float64(time.Second)))
	return b.String()
}

func sinceText(f *report.Freshness) string {
	if f.ConfirmedCurrentAt == nil {
		return "never"
	}
	return f.ConfirmedCurrentAt.Format(layout) + ", " + age(f.AgeSeconds) + " ago"
}

func stamp(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(layout)
}

// age is a duration for people: 45s, 12m, 5h10m, 3d4h.
func age(secs *float64) string {
	if secs == nil {
		return "-"
	}
	d := time.Duration(*secs * float64(time.Second))
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func phaseCell(p *report.PhaseRun) string {
	if p == nil {
		return "never"
	}
	return fmt.Sprintf("%s %s %d rows", p.FinishedAt.UTC().Format("01-02 15:04"), p.Mode, p.RowsWritten)
}

func verifyCell(p *report.PhaseRun) string {
	if p == nil {
		return "never"
	}
	return fmt.Sprintf("%s %s", p.StartedAt.UTC().Format("01-02 15:04"), p.Status)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func count(n *int64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

func seconds(s *float64) string {
	if s == nil {
		return "-"
	}
	return time.Duration(*s * float64(time.Second)).Round(time.Second).String()
}
