// Package tables is the tables.yml model: how each source table is extracted,
// replicated and loaded. discover writes it; replicate and load read it.
package tables

// Strategy is how a table's changes are found.
type Strategy string

const (
	FullTable          Strategy = "full_table"          // copy everything each run
	Incremental        Strategy = "incremental"         // rows with watermark > last
	IncrementalChunked Strategy = "incremental_chunked" // same, in key chunks (large append-only)
)

// Importance orders work: critical tables run first.
type Importance string

const (
	Critical  Importance = "critical"
	Important Importance = "important"
	Standard  Importance = "standard"
	Audit     Importance = "audit"
	Reference Importance = "reference"
)

// Table is one entry of tables.yml. Field yaml names are the file format.
type Table struct {
	Name               string            `yaml:"-"`
	PrimaryKey         []string          `yaml:"primary_key,omitempty"`
	WatermarkColumns   []string          `yaml:"watermark_columns,omitempty"` // ordered; first is primary
	Strategy           Strategy          `yaml:"extraction_strategy"`
	BatchSize          int               `yaml:"batch_size"`
	Importance         Importance        `yaml:"importance"`
	EstimatedRows      int64             `yaml:"estimated_rows"`
	EstimatedSizeMB    float64           `yaml:"estimated_size_mb"`
	Exclude            bool              `yaml:"exclude,omitempty"`
	DetectDeletes      *bool             `yaml:"detect_deletes,omitempty"`   // nil = default true
	LookbackSeconds    int               `yaml:"lookback_seconds,omitempty"` // re-read window behind the watermark
	ColumnTypeOverride map[string]string `yaml:"column_types,omitempty"`     // column -> PostgreSQL type for raw
}

// DeletesEnabled is the effective per-table delete detection (default on).
func (t Table) DeletesEnabled() bool { return t.DetectDeletes == nil || *t.DetectDeletes }

// Config is the whole of tables.yml.
type Config struct {
	Tables map[string]*Table `yaml:"tables"`
}
