package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// printLoad writes the plan (dry run) or the summary of the load phase.
func printLoad(w io.Writer, res *load.Result, dryRun bool) {
	if dryRun {
		printLoadPlan(w, res)
		return
	}
	printLoadTables(w, res)
	printLoadNotes(w, res)
	for _, t := range res.Tables {
		switch t.Status {
		case load.StatusFailed:
			fmt.Fprintf(w, "FAILED %s: %s\n", t.Table, t.Error)
		case load.StatusSkipped:
			fmt.Fprintf(w, "SKIPPED %s: %s\n", t.Table, t.Reason)
		}
	}
	printLoadTotals(w, res)
	if note := res.OrphanNote(); note != "" {
		fmt.Fprintln(w, note)
	}
}

// printLoadPlan: per table the mode and why, schema changes, DDL and the
// type decision of every column.
func printLoadPlan(w io.Writer, res *load.Result) {
	for _, t := range res.Tables {
		fmt.Fprintf(w, "== %s → %s.%s: %s (%s)\n", t.Table, load.Schema, typemap.QuotePG(t.Target), t.Mode, t.Reason)
		if t.Error != "" {
			fmt.Fprintf(w, "   ERROR: %s\n", t.Error)
			continue
		}
		for _, c := range t.Changes {
			fmt.Fprintf(w, "   change: %s\n", c)
		}
		for _, d := range t.DDL {
			fmt.Fprintf(w, "   %s;\n", strings.ReplaceAll(d, "\n", "\n   "))
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range t.Columns {
			fmt.Fprintf(tw, "   %s\t%s\t→ %s\t%s\n", c.Column, c.Source, c.Type, c.Reason)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "%d tables planned, %d with errors; nothing was changed\n", len(res.Tables), res.Failed)
}

// printLoadTables: one line per table.
func printLoadTables(w io.Writer, res *load.Result) {
	const row = "%-28s %-11s %-6s %10v %10v %8v %11v %8v %9v\n"
	fmt.Fprintf(w, row, "TABLE", "MODE", "STATUS", "READ", "WRITTEN", "DELETED", "CONVERSIONS", "SECONDS", "ROWS/S")
	for _, t := range res.Tables {
		fmt.Fprintf(w, row, t.Table, t.Mode, t.Status, t.RowsRead, t.RowsWritten, t.RowsDeleted, t.ConversionTotal(),
			fmt.Sprintf("%.2f", t.Duration.Seconds()), fmt.Sprintf("%.0f", t.RowsPerSecond()))
	}
}

// printLoadTotals: the last line of the summary.
func printLoadTotals(w io.Writer, res *load.Result) {
	var read, written, deleted, conv int64
	for _, t := range res.Tables {
		read, written, deleted, conv = read+t.RowsRead, written+t.RowsWritten, deleted+t.RowsDeleted, conv+t.ConversionTotal()
	}
	fmt.Fprintf(w, "load: %d tables, %d failed or skipped; rows read %d, written %d, deleted %d, values converted %d in %.2fs\n",
		len(res.Tables), res.Failed, read, written, deleted, conv, res.Duration.Seconds())
}

// printLoadNotes: schema changes and value conversions, per table and column.
func printLoadNotes(w io.Writer, res *load.Result) {
	for _, t := range res.Tables {
		for _, c := range t.Changes {
			fmt.Fprintf(w, "schema change %s: %s\n", t.Table, c)
		}
		for _, col := range sortedKeys(t.Conversions) {
			kinds := t.Conversions[col]
			parts := make([]string, 0, len(kinds))
			for _, k := range sortedKeys(kinds) {
				parts = append(parts, fmt.Sprintf("%s=%d", k, kinds[k]))
			}
			fmt.Fprintf(w, "converted %s.%s: %s\n", t.Table, col, strings.Join(parts, " "))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
