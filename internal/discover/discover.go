// Package discover builds tables.yml from the source's information schema:
// keys, watermark candidates, strategy, batch size, importance and
// estimates, merged with an existing file so that the user's edits survive.
package discover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Tables above this many rows are copied incrementally in key chunks.
const chunkedRows = 1_000_000

// critical are the core clinical and financial tables.
var critical = map[string]bool{
	"patient": true, "appointment": true, "procedurelog": true, "claim": true, "claimproc": true, "claimpayment": true,
	"payment": true, "paysplit": true, "adjustment": true, "insplan": true, "inssub": true, "patplan": true,
	"procedurecode": true, "fee": true, "payplan": true, "payplancharge": true, "statement": true, "treatplan": true,
	"proctp": true, "carrier": true, "benefit": true, "recall": true, "commlog": true, "document": true,
}

// reference are small lookup tables.
var reference = map[string]bool{
	"definition": true, "provider": true, "clinic": true, "operatory": true, "userod": true, "usergroup": true,
	"feesched": true, "preference": true, "schoolclass": true, "employee": true, "zipcode": true, "site": true,
	"apptview": true, "apptviewitem": true, "covcat": true, "covspan": true, "insfilingcode": true, "sheetdef": true,
	"sheetfielddef": true, "programproperty": true, "program": true, "displayfield": true, "language": true,
}

// Importance guesses a table's importance from its name and size.
func Importance(name string, rows int64) tables.Importance {
	n := strings.ToLower(name)
	switch {
	case critical[n]:
		return tables.Critical
	case strings.HasPrefix(n, "securitylog") || strings.HasSuffix(n, "log") && !strings.HasPrefix(n, "procedure") && n != "commlog",
		strings.HasPrefix(n, "etrans") || strings.HasSuffix(n, "hist") || strings.HasSuffix(n, "history"):
		return tables.Audit
	case reference[n] || strings.HasSuffix(n, "def") || strings.HasSuffix(n, "type") || strings.HasSuffix(n, "cat"):
		return tables.Reference
	case strings.HasPrefix(n, "pat") || strings.HasPrefix(n, "proc") || strings.HasPrefix(n, "claim") ||
		strings.HasPrefix(n, "ins") || strings.HasPrefix(n, "pay") || strings.HasPrefix(n, "appt") ||
		strings.HasPrefix(n, "treat") || strings.HasPrefix(n, "perio") || strings.HasPrefix(n, "rx"):
		return tables.Important
	}
	return tables.Standard
}

// watermarks lists a table's change-stamp columns: NOT NULL TIMESTAMP …
// ON UPDATE columns, the usual OpenDental names first. A nullable one is
// left out: rows inserted without it stay NULL and no watermark finds them.
func watermarks(m *schema.Table) []string {
	var out []string
	for _, c := range m.Columns {
		if strings.EqualFold(c.DataType, "timestamp") && !c.Nullable && strings.Contains(strings.ToLower(c.Extra), "on update") {
			out = append(out, c.Name)
		}
	}
	rank := func(s string) int {
		switch strings.ToLower(s) {
		case "secdatetedit":
			return 0
		case "datetstamp":
			return 1
		}
		return 2
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// BatchSize aims at about 8 MB per chunk: short source locks, few round trips.
func BatchSize(avgRowLen int64) int {
	if avgRowLen <= 0 {
		avgRowLen = 200
	}
	n := int(8<<20/avgRowLen) / 1000 * 1000
	return min(max(n, 1000), 50000)
}

// Table builds one table's discovered entry.
func Table(m *schema.Table) *tables.Table {
	t := &tables.Table{
		Name:            m.Name,
		PrimaryKey:      slices.Clone(m.PrimaryKey),
		Strategy:        tables.FullTable,
		BatchSize:       BatchSize(m.AvgRowLen),
		Importance:      Importance(m.Name, m.Rows),
		EstimatedRows:   m.Rows,
		EstimatedSizeMB: math.Round(float64(m.DataBytes)/(1<<20)*100) / 100,
	}
	for _, c := range m.Columns {
		t.Columns = append(t.Columns, c.Name)
	}
	wm := watermarks(m)
	switch {
	case len(m.PrimaryKey) == 0 || !m.KeyTravels():
		// no key, or one replicate cannot page on: copied whole each time
	case len(wm) > 0:
		t.WatermarkColumns = wm
		t.Strategy = tables.Incremental
		if m.Rows > chunkedRows {
			t.Strategy = tables.IncrementalChunked
		}
	case t.Importance == tables.Audit && len(m.PrimaryKey) == 1 && autoInc(m, m.PrimaryKey[0]):
		// append-only log: new rows have higher keys
		t.WatermarkColumns = []string{m.PrimaryKey[0]}
		t.Strategy = tables.IncrementalChunked
	}
	return t
}

func autoInc(m *schema.Table, col string) bool {
	c := m.Column(col)
	return c != nil && strings.Contains(strings.ToLower(c.Extra), "auto_increment")
}

// Build returns the discovered configuration of every base table, except
// those named in the pipeline's reserved namespace (see Refused).
func Build(s *schema.Database) *tables.Config {
	cfg := &tables.Config{Tables: map[string]*tables.Table{}}
	for name, m := range s.Tables {
		if !state.Reserved(name) {
			cfg.Tables[name] = Table(m)
		}
	}
	return cfg
}

// Refused explains, per source table Build leaves out, why and what to do,
// in name order.
func Refused(s *schema.Database) []string {
	var out []string
	for name := range s.Tables {
		if err := state.CheckName(name); err != nil {
			out = append(out, "refused "+err.Error())
		}
	}
	sort.Strings(out)
	return out
}

// Merge refreshes old with the discovered facts (keys, columns, estimates)
// while keeping every setting the user may have edited (strategy,
// watermarks, batch size, importance, exclude, deletes, lookback, column
// types). It returns the merged config and what changed, for humans.
func Merge(old, found *tables.Config) (*tables.Config, []string) {
	out := &tables.Config{Tables: map[string]*tables.Table{}}
	var changes []string
	for _, name := range found.Names() {
		f := found.Tables[name]
		o, ok := old.Tables[name]
		if !ok {
			changes = append(changes, fmt.Sprintf("new table %s (%s, %d rows)", name, f.Strategy, f.EstimatedRows))
			out.Tables[name] = f
			continue
		}
		m := *o
		if !slices.Equal(o.PrimaryKey, f.PrimaryKey) {
			changes = append(changes, fmt.Sprintf("%s: primary key changed from %s to %s (replicate and load rebuild the table)", name, keyText(o.PrimaryKey), keyText(f.PrimaryKey)))
		}
		m.PrimaryKey, m.Columns = f.PrimaryKey, f.Columns
		m.EstimatedRows, m.EstimatedSizeMB = f.EstimatedRows, f.EstimatedSizeMB
		if len(o.Columns) > 0 {
			for _, c := range f.Columns {
				if !slices.Contains(o.Columns, c) {
					changes = append(changes, fmt.Sprintf("new column %s.%s", name, c))
				}
			}
			for _, c := range o.Columns {
				if !slices.Contains(f.Columns, c) {
					changes = append(changes, fmt.Sprintf("dropped column %s.%s", name, c))
				}
			}
		}
		var keep []string
		for _, w := range m.WatermarkColumns {
			if slices.Contains(f.Columns, w) {
				keep = append(keep, w)
			} else {
				changes = append(changes, fmt.Sprintf("%s: watermark column %s no longer exists", name, w))
			}
		}
		m.WatermarkColumns = keep
		m.ColumnPolicies, changes = keepPolicies(name, m.ColumnPolicies, f.Columns, changes)
		if m.Strategy.IsIncremental() && (len(keep) == 0 || len(m.PrimaryKey) == 0) {
			changes = append(changes, fmt.Sprintf("%s: strategy reset to %s (no usable watermark or key)", name, f.Strategy))
			m.Strategy, m.WatermarkColumns = f.Strategy, f.WatermarkColumns
		}
		out.Tables[name] = &m
	}
	for _, name := range old.Names() {
		if _, ok := found.Tables[name]; !ok {
			changes = append(changes, "dropped table "+name)
		}
	}
	return out, changes
}

// keepPolicies keeps the column policies of columns that still exist
// (matched case-insensitively), reporting those dropped with their column.
func keepPolicies(table string, policies map[string]tables.ColumnPolicy, columns []string, changes []string) (map[string]tables.ColumnPolicy, []string) {
	if len(policies) == 0 {
		return policies, changes
	}
	out := map[string]tables.ColumnPolicy{}
	var gone []string
	for c, p := range policies {
		if slices.ContainsFunc(columns, func(x string) bool { return strings.EqualFold(x, c) }) {
			out[c] = p
		} else {
			gone = append(gone, fmt.Sprintf("%s: column_policies entry for %s removed (the column no longer exists)", table, c))
		}
	}
	sort.Strings(gone)
	return out, append(changes, gone...)
}

// keyText shows a key for humans: "(a, b)", or "(none)".
func keyText(cols []string) string {
	if len(cols) == 0 {
		return "(none)"
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

var header = []string{
	"tables.yml: how each source table is replicated and loaded.",
	"Written by `pipeline discover`; re-running it refreshes primary_key, columns and estimates",
	"and keeps your edits to every other field. Fields per table:",
	"  primary_key, watermark_columns (first one is paged on), extraction_strategy",
	"  (full_table | incremental | incremental_chunked), batch_size, importance",
	"  (critical | important | standard | audit | reference), estimated_rows, estimated_size_mb,",
	"  exclude, detect_deletes (default true), lookback_seconds, column_types, column_policies",
	"  (column: keep | drop | hash, for patient data; discover suggests them in a comment, never",
	"  switches them on), columns.",
}

// Doer runs fn on a source connection; *manager.Manager is one (rate limit, retries).
type Doer interface {
	Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error
}

// Run reads the source's information schema through src (three queries),
// merges with the file at path if it exists, writes the result, and returns
// what changed (and which tables were refused, see Refused) and how many
// tables the file lists.
func Run(ctx context.Context, src Doer, path string) ([]string, int, error) {
	var s *schema.Database
	if err := src.Do(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var err error
		s, err = schema.Read(ctx, conn)
		return err
	}); err != nil {
		return nil, 0, fmt.Errorf("discover source schema: %w", err)
	}
	found := Build(s)
	old := &tables.Config{Tables: map[string]*tables.Table{}}
	oldData, err := os.ReadFile(path)
	switch {
	case err == nil:
		if old, err = tables.Parse(path, oldData); err != nil {
			return nil, 0, fmt.Errorf("read existing %s (fix it or move it away): %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		oldData = nil
	default:
		return nil, 0, fmt.Errorf("read existing tables config: %w", err)
	}
	merged, changes := Merge(old, found)
	changes = append(changes, Refused(s)...)
	data, err := tables.Marshal(merged, header)
	if err != nil {
		return nil, 0, err
	}
	if len(oldData) > 0 {
		if data, err = render(oldData, merged); err != nil {
			return nil, 0, err
		}
	}
	if data, err = addSuggestions(data, s); err != nil {
		return nil, 0, err
	}
	if _, err := tables.Parse(path, data); err != nil {
		return nil, 0, fmt.Errorf("discover produced an invalid file (a bug): %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, 0, fmt.Errorf("write tables config: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return nil, 0, fmt.Errorf("write tables config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, 0, fmt.Errorf("write tables config: %w", err)
	}
	return changes, len(merged.Tables), nil
}

// render writes merged into the existing file's YAML tree, so the user's
// comments and table order survive: each table's values are replaced in
// place (a value's line comment kept), dropped tables removed, new tables
// appended in name order.
func render(oldData []byte, merged *tables.Config) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(oldData, &doc); err != nil || len(doc.Content) == 0 {
		return tables.Marshal(merged, header)
	}
	root := doc.Content[0]
	var tbls *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "tables" {
			tbls = root.Content[i+1]
		}
	}
	if tbls == nil || tbls.Kind != yaml.MappingNode {
		return tables.Marshal(merged, header)
	}
	fresh := tables.EncodeTable
	seen := map[string]bool{}
	var content []*yaml.Node
	for i := 0; i+1 < len(tbls.Content); i += 2 {
		k, v := tbls.Content[i], tbls.Content[i+1]
		t, ok := merged.Tables[k.Value]
		if !ok {
			continue // dropped at the source
		}
		seen[k.Value] = true
		f, err := fresh(t)
		if err != nil {
			return nil, err
		}
		content = append(content, k, mergeMapping(v, f))
	}
	for _, name := range merged.Names() {
		if seen[name] {
			continue
		}
		f, err := fresh(merged.Tables[name])
		if err != nil {
			return nil, err
		}
		content = append(content, tables.NameNode(name), f)
	}
	tbls.Content = content
	return tables.EncodeNode(&doc)
}

// mergeMapping returns old's keys (with their comments) carrying fresh's
// values, without the keys fresh lacks, plus fresh's new keys at the end.
func mergeMapping(old, fresh *yaml.Node) *yaml.Node {
	if old.Kind != yaml.MappingNode {
		return fresh
	}
	val := map[string]*yaml.Node{}
	for i := 0; i+1 < len(fresh.Content); i += 2 {
		val[fresh.Content[i].Value] = fresh.Content[i+1]
	}
	out := *old
	out.Content = nil
	done := map[string]bool{}
	for i := 0; i+1 < len(old.Content); i += 2 {
		k, v := old.Content[i], old.Content[i+1]
		nv, ok := val[k.Value]
		if !ok {
			continue
		}
		if sameValue(v, nv) {
			nv = v // unchanged: the user's node as written (flow or block style, comments)
		} else {
			nv.LineComment, nv.HeadComment, nv.FootComment = v.LineComment, v.HeadComment, v.FootComment
		}
		out.Content = append(out.Content, k, nv)
		done[k.Value] = true
	}
	for i := 0; i+1 < len(fresh.Content); i += 2 {
		if !done[fresh.Content[i].Value] {
			out.Content = append(out.Content, fresh.Content[i], fresh.Content[i+1])
		}
	}
	return &out
}

// sameValue reports whether two YAML nodes hold the same data.
func sameValue(a, b *yaml.Node) bool {
	var x, y any
	if a.Decode(&x) != nil || b.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
