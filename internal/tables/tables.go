// Package tables is the tables.yml model: how each source table is extracted,
// replicated and loaded. discover writes it; replicate and load read it.
//
// Format (every key but extraction_strategy optional; unknown keys are errors):
//
//	tables:
//	  patient:
//	    primary_key: [PatNum]             # discovered; paging and upsert key
//	    watermark_columns: [DateTStamp]   # first one is paged on (TIMESTAMP … ON UPDATE, or an append-only key)
//	    extraction_strategy: incremental  # full_table | incremental | incremental_chunked
//	    batch_size: 10000                 # rows per source query (default 10000)
//	    importance: critical              # critical | important | standard | audit | reference: run order
//	    estimated_rows: 120000            # discovered
//	    estimated_size_mb: 35.2           # discovered; larger tables run first within an importance
//	    exclude: false                    # true: neither replicated nor loaded
//	    detect_deletes: true              # default true: rows deleted at the source are removed
//	    lookback_seconds: 0               # re-read this far behind the last watermark
//	    column_types: {Note: text}        # column -> PostgreSQL type in raw (the loader's override)
//	    column_policies: {SSN: drop, LName: hash}  # column -> keep | drop | hash in raw (patient data)
//	    columns: [PatNum, LName, …]       # discovered; lets discover report added/dropped columns
//
// Incremental strategies need watermark_columns and primary_key.
package tables

import (
	"fmt"
	"sort"
	"strings"
)

// Strategy is how a table's changes are found.
type Strategy string

const (
	FullTable          Strategy = "full_table"          // copy everything each run
	Incremental        Strategy = "incremental"         // rows with watermark > last
	IncrementalChunked Strategy = "incremental_chunked" // same, in key chunks (large append-only)
)

// StrategyValues lists every strategy in file order.
func StrategyValues() []Strategy { return []Strategy{FullTable, Incremental, IncrementalChunked} }

// Valid reports whether s is a known strategy.
func (s Strategy) Valid() bool {
	for _, v := range StrategyValues() {
		if s == v {
			return true
		}
	}
	return false
}

func (s Strategy) String() string { return string(s) }

// IsIncremental reports whether the strategy follows a watermark.
func (s Strategy) IsIncremental() bool { return s == Incremental || s == IncrementalChunked }

// ParseStrategy returns the strategy named s or an error listing the allowed values.
func ParseStrategy(s string) (Strategy, error) {
	if v := Strategy(s); v.Valid() {
		return v, nil
	}
	return "", fmt.Errorf("unknown extraction_strategy %q; allowed: %s", s, joinValues(StrategyValues()))
}

// Importance orders work: critical tables run first.
type Importance string

const (
	Critical  Importance = "critical"
	Important Importance = "important"
	Standard  Importance = "standard"
	Audit     Importance = "audit"
	Reference Importance = "reference"
)

// ImportanceValues lists every importance, most important first.
func ImportanceValues() []Importance {
	return []Importance{Critical, Important, Standard, Audit, Reference}
}

// Valid reports whether i is a known importance.
func (i Importance) Valid() bool { return i.Rank() >= 0 }

func (i Importance) String() string { return string(i) }

// Rank is the run order: 0 for critical; -1 when unknown.
func (i Importance) Rank() int {
	for n, v := range ImportanceValues() {
		if i == v {
			return n
		}
	}
	return -1
}

// ParseImportance returns the importance named s or an error listing the allowed values.
func ParseImportance(s string) (Importance, error) {
	if v := Importance(s); v.Valid() {
		return v, nil
	}
	return "", fmt.Errorf("unknown importance %q; allowed: %s", s, joinValues(ImportanceValues()))
}

// ColumnPolicy is what the load does with one column's values in raw
// (tables.yml column_policies); the replica always keeps the column.
type ColumnPolicy string

const (
	Keep ColumnPolicy = "keep" // loaded as it is (the default)
	Drop ColumnPolicy = "drop" // left out of raw
	Hash ColumnPolicy = "hash" // keyed HMAC-SHA256 of the value, lowercase hex (internal/policy)
)

// ColumnPolicyValues lists every policy.
func ColumnPolicyValues() []ColumnPolicy { return []ColumnPolicy{Keep, Drop, Hash} }

// Valid reports whether p is a known policy.
func (p ColumnPolicy) Valid() bool { return p == Keep || p == Drop || p == Hash }

func (p ColumnPolicy) String() string { return string(p) }

// ParseColumnPolicy returns the policy named s or an error listing the allowed values.
func ParseColumnPolicy(s string) (ColumnPolicy, error) {
	if v := ColumnPolicy(s); v.Valid() {
		return v, nil
	}
	return "", fmt.Errorf("unknown column policy %q; allowed: %s", s, joinValues(ColumnPolicyValues()))
}

// DefaultBatchSize is used when a table sets none.
const DefaultBatchSize = 10000

// Table is one entry of tables.yml. Field yaml names are the file format.
type Table struct {
	Name               string                  `yaml:"-"`
	PrimaryKey         []string                `yaml:"primary_key,omitempty,flow"`
	WatermarkColumns   []string                `yaml:"watermark_columns,omitempty,flow"` // ordered; first is primary
	Strategy           Strategy                `yaml:"extraction_strategy"`
	BatchSize          int                     `yaml:"batch_size"`
	Importance         Importance              `yaml:"importance"`
	EstimatedRows      int64                   `yaml:"estimated_rows"`
	EstimatedSizeMB    float64                 `yaml:"estimated_size_mb"`
	Exclude            bool                    `yaml:"exclude,omitempty"`
	DetectDeletes      *bool                   `yaml:"detect_deletes,omitempty"`   // nil = default true
	LookbackSeconds    int                     `yaml:"lookback_seconds,omitempty"` // re-read window behind the watermark
	ColumnTypeOverride map[string]string       `yaml:"column_types,omitempty"`     // column -> PostgreSQL type for raw
	ColumnPolicies     map[string]ColumnPolicy `yaml:"column_policies,omitempty"`  // column -> keep | drop | hash in raw
	Columns            []string                `yaml:"columns,omitempty,flow"`     // as last discovered; lets discover report drift
}

// DeletesEnabled is the effective per-table delete detection (default on).
func (t Table) DeletesEnabled() bool { return t.DetectDeletes == nil || *t.DetectDeletes }

// Watermark is the column incremental paging follows ("" when none).
func (t Table) Watermark() string {
	if len(t.WatermarkColumns) == 0 {
		return ""
	}
	return t.WatermarkColumns[0]
}

// Policy is the policy of column (matched case-insensitively, as MySQL
// names columns): Keep unless column_policies says otherwise.
func (t Table) Policy(column string) ColumnPolicy {
	if p, ok := t.ColumnPolicies[column]; ok {
		return p
	}
	for c, p := range t.ColumnPolicies {
		if strings.EqualFold(c, column) {
			return p
		}
	}
	return Keep
}

// Hashes reports whether any table (not excluded) hashes a column: then
// the load and verify need the hash key.
func (c *Config) Hashes() bool {
	for _, t := range c.Tables {
		if t.Exclude {
			continue
		}
		for _, p := range t.ColumnPolicies {
			if p == Hash {
				return true
			}
		}
	}
	return false
}

// Config is the whole of tables.yml.
type Config struct {
	Tables map[string]*Table `yaml:"tables"`
}

// Names returns the table names sorted alphabetically.
func (c *Config) Names() []string {
	out := make([]string, 0, len(c.Tables))
	for n := range c.Tables {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Ordered returns the tables that are not excluded, most important first,
// then largest first, then by name: the order replicate and load run them.
func (c *Config) Ordered() []*Table {
	out := make([]*Table, 0, len(c.Tables))
	for _, t := range c.Tables {
		if !t.Exclude {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := a.Importance.Rank(), b.Importance.Rank(); ra != rb {
			return ra < rb
		}
		if a.EstimatedSizeMB != b.EstimatedSizeMB {
			return a.EstimatedSizeMB > b.EstimatedSizeMB
		}
		if a.EstimatedRows != b.EstimatedRows {
			return a.EstimatedRows > b.EstimatedRows
		}
		return a.Name < b.Name
	})
	return out
}

// Select returns the tables a phase runs, in run order: every table not
// excluded (Ordered), or the named ones, excluded ones included after the
// others by name. Names are exact (a name may have spaces around it); ""
// is skipped. A name tables.yml does not list is an error that names the
// fix; the phase wraps it in its own configuration error.
func (c *Config) Select(names []string) ([]*Table, error) {
	if len(names) == 0 {
		return c.Ordered(), nil
	}
	want := map[string]bool{}
	var unknown []string
	for _, n := range names {
		if n == "" {
			continue
		}
		if _, ok := c.Tables[n]; !ok {
			unknown = append(unknown, n)
		}
		want[n] = true
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("--tables names %s, not in tables.yml; run `pipeline discover` or fix the name", strings.Join(unknown, ", "))
	}
	var out []*Table
	for _, t := range c.Ordered() {
		if want[t.Name] {
			out = append(out, t)
		}
	}
	for _, n := range c.Names() { // an explicitly named table runs even when excluded
		if t := c.Tables[n]; t.Exclude && want[n] {
			out = append(out, t)
		}
	}
	return out, nil
}

func joinValues[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
