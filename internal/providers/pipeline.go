package providers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
)

// PipelineConfig is pipeline.yml. Every key is optional; unknown keys are
// errors. Example (see config/pipeline.yml):
//
//	connections:          # per catalogue database: source, replication, analytics
//	  source:
//	    connect_timeout: 10     # seconds, or a Go duration such as "1m30s"
//	    read_timeout: 300
//	    write_timeout: 300
//	    pool_size: 5            # connections kept open
//	    max_overflow: 10        # extra connections allowed under load
//	    pool_timeout: 30        # wait for a free connection
//	    pool_recycle: 1800      # close connections older than this
//	    application_name: pipeline
//	replication:
//	  workers: 2                # tables replicated at once
//	  source_connections: 1     # connections open on the source at most (default 1: one reader on the clinic's server)
//	  rate_limit_ms: 100        # minimum gap between source queries; 0 disables
//	  max_retries: 3            # retries of a retryable source error
//	load:
//	  workers: 2                # tables loaded into PostgreSQL at once
//	  loaded_at_column: _loaded_at  # per-row marker: when the row was inserted or really changed (default off)
//	verify:
//	  enabled: false            # true: `pipeline run` ends with a verification
//	  budget: 10m               # its time budget (0: the whole warehouse); the next run resumes where it stopped
//	  repair: false             # true: re-copy the rows it finds different
//
// and the operator's sections schedule, notify, metrics, history and status
// (operations.go).
type PipelineConfig struct {
	Connections map[catalog.DatabaseType]ConnectionConfig `yaml:"connections"`
	Replication ReplicationOptions                        `yaml:"replication"`
	Load        LoadOptions                               `yaml:"load"`
	Verify      VerifyOptions                             `yaml:"verify"`
	Schedule    ScheduleOptions                           `yaml:"schedule"`
	Notify      NotifyOptions                             `yaml:"notify"`
	Metrics     MetricsOptions                            `yaml:"metrics"`
	History     HistoryOptions                            `yaml:"history"`
	Status      StatusOptions                             `yaml:"status"`
}

// ConnectionConfig overrides one database's pool and timeouts; nil keeps
// the default (see PoolConfig defaults). Analytics settings apply to every
// schema pool.
type ConnectionConfig struct {
	ConnectTimeout  *Duration `yaml:"connect_timeout"`
	ReadTimeout     *Duration `yaml:"read_timeout"`
	WriteTimeout    *Duration `yaml:"write_timeout"`
	PoolSize        *int      `yaml:"pool_size"`
	MaxOverflow     *int      `yaml:"max_overflow"`
	PoolTimeout     *Duration `yaml:"pool_timeout"`
	PoolRecycle     *Duration `yaml:"pool_recycle"`
	ApplicationName *string   `yaml:"application_name"`
}

// ReplicationOptions are the replicate command's run options.
type ReplicationOptions struct {
	Workers           int `yaml:"workers"`
	SourceConnections int `yaml:"source_connections"`
	RateLimitMS       int `yaml:"rate_limit_ms"`
	MaxRetries        int `yaml:"max_retries"`
}

// RateLimit is RateLimitMS as a duration.
func (o ReplicationOptions) RateLimit() time.Duration {
	return time.Duration(o.RateLimitMS) * time.Millisecond
}

// LoadOptions are the load command's run options.
type LoadOptions struct {
	Workers int `yaml:"workers"`
	// LoadedAtColumn names the timestamptz marker every raw table gets, set
	// when its row was inserted or really changed ("" = off, the default).
	LoadedAtColumn string `yaml:"loaded_at_column"`
}

// VerifyOptions switch on a verification at the end of `pipeline run`.
type VerifyOptions struct {
	Enabled bool     `yaml:"enabled"`
	Budget  Duration `yaml:"budget"` // stop starting new key ranges after this long; 0: verify everything
	Repair  bool     `yaml:"repair"` // re-copy the rows found different
}

// Defaults of the settings not covered by the pool defaults in config.go.
const (
	DefaultConnectTimeout  = 10 * time.Second
	DefaultReadTimeout     = 5 * time.Minute
	DefaultWriteTimeout    = 5 * time.Minute
	DefaultApplicationName = "pipeline"
)

// Defaults of the run options: the one place they are decided. The phases
// use them for a zero option, the manager for its rate limit and retries.
const (
	DefaultReplicationWorkers = 2   // replication.workers: tables copied at once
	DefaultSourceConnections  = 1   // replication.source_connections: the clinic's server is busy
	DefaultRateLimitMS        = 100 // replication.rate_limit_ms: gap between source queries per connection
	DefaultMaxRetries         = 3   // replication.max_retries: retries of a retryable source error
	DefaultLoadWorkers        = 2   // load.workers: tables loaded at once
)

// DefaultVerifyBudget is verify.budget: a run's verification step stops
// starting key ranges after this long, and the next run resumes there.
const DefaultVerifyBudget = 10 * time.Minute

// DefaultPipelineConfig is the configuration of an empty pipeline.yml.
func DefaultPipelineConfig() *PipelineConfig {
	return &PipelineConfig{
		Connections: map[catalog.DatabaseType]ConnectionConfig{},
		Replication: ReplicationOptions{Workers: DefaultReplicationWorkers, SourceConnections: DefaultSourceConnections,
			RateLimitMS: DefaultRateLimitMS, MaxRetries: DefaultMaxRetries},
		Load:    LoadOptions{Workers: DefaultLoadWorkers},
		Verify:  VerifyOptions{Budget: Duration(DefaultVerifyBudget)},
		Notify:  NotifyOptions{Timeout: Duration(DefaultNotifyTimeout), Retries: DefaultNotifyRetries},
		History: HistoryOptions{RetentionDays: DefaultRetentionDays},
		Status:  StatusOptions{StaleAfter: Duration(DefaultStaleAfter)},
	}
}

// Pool returns db's pool configuration: the defaults with pipeline.yml's
// overrides applied.
func (p *PipelineConfig) Pool(db catalog.DatabaseType) PoolConfig {
	pc := PoolConfig{
		ConnectTimeout: DefaultConnectTimeout, ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultWriteTimeout,
		PoolSize: DefaultPoolSize, MaxOverflow: DefaultMaxOverflow,
		PoolTimeout: DefaultPoolTimeout, PoolRecycle: DefaultPoolRecycle,
		ApplicationName: DefaultApplicationName,
	}
	if p == nil {
		return pc
	}
	c := p.Connections[db]
	setDur := func(dst *time.Duration, src *Duration) {
		if src != nil {
			*dst = time.Duration(*src)
		}
	}
	setDur(&pc.ConnectTimeout, c.ConnectTimeout)
	setDur(&pc.ReadTimeout, c.ReadTimeout)
	setDur(&pc.WriteTimeout, c.WriteTimeout)
	setDur(&pc.PoolTimeout, c.PoolTimeout)
	setDur(&pc.PoolRecycle, c.PoolRecycle)
	if c.PoolSize != nil {
		pc.PoolSize = *c.PoolSize
	}
	if c.MaxOverflow != nil {
		pc.MaxOverflow = *c.MaxOverflow
	}
	if c.ApplicationName != nil {
		pc.ApplicationName = *c.ApplicationName
	}
	return pc
}

// Duration is a YAML duration: an integer number of seconds (as in the
// original design) or a Go duration string such as "90s" or "5m".
type Duration time.Duration

// UnmarshalYAML accepts seconds or a duration string, never a negative one.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration (seconds or e.g. \"90s\"), got a %s", n.Line, kindName(n.Kind))
	}
	var v time.Duration
	if n.Tag == "!!int" {
		var secs int64
		if err := n.Decode(&secs); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		v = time.Duration(secs) * time.Second
	} else {
		parsed, err := time.ParseDuration(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %q is not a duration: write seconds (30) or a Go duration (\"30s\", \"5m\")", n.Line, n.Value)
		}
		v = parsed
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %s is negative", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	default:
		return "document"
	}
}

// ErrInvalidConfig marks every configuration error (files, environment
// variables, --env); the CLI exits with code 2 on it.
var ErrInvalidConfig = errors.New("invalid configuration")

// ParsePipeline decodes pipeline.yml strictly (unknown keys are errors),
// applies the defaults and checks every value. name is the file's path,
// used in messages together with the line.
func ParsePipeline(name string, data []byte) (*PipelineConfig, error) {
	cfg := DefaultPipelineConfig()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrInvalidConfig, name, err)
	}
	if err := checkDatabaseNames(name, &root); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrInvalidConfig, name, err)
	}
	if cfg.Connections == nil { // "connections:" with nothing under it
		cfg.Connections = map[catalog.DatabaseType]ConnectionConfig{}
	}
	var problems []string
	bad := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	}
	checkConnections(&root, cfg, bad)
	checkRunOptions(&root, cfg, bad)
	checkOperations(&root, cfg, bad)
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("%w: %s:\n  - %s", ErrInvalidConfig, name, strings.Join(problems, "\n  - "))
	}
	return cfg, nil
}

// checkDatabaseNames checks the database names under connections from the
// node tree, before the strict decode, so the message has the line (the
// decode would reject them without one).
func checkDatabaseNames(name string, root *yaml.Node) error {
	_, conns := keyAt(root, "connections")
	if conns == nil || conns.Kind != yaml.MappingNode {
		return nil
	}
	var unknown []string
	for i := 0; i+1 < len(conns.Content); i += 2 {
		k := conns.Content[i]
		if _, err := catalog.ParseDatabaseType(k.Value); err != nil {
			unknown = append(unknown, fmt.Sprintf("%s:%d: connections: %v", name, k.Line, err))
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w: %s:\n  - %s", ErrInvalidConfig, name, strings.Join(unknown, "\n  - "))
	}
	return nil
}

// checkConnections reports each out-of-range connections value to bad.
func checkConnections(root *yaml.Node, cfg *PipelineConfig, bad func(line int, format string, args ...any)) {
	for db, c := range cfg.Connections {
		if c.PoolSize != nil && *c.PoolSize < 1 {
			bad(lineOf(root, "connections", string(db), "pool_size"), "connections.%s.pool_size must be at least 1, got %d", db, *c.PoolSize)
		}
		if c.MaxOverflow != nil && *c.MaxOverflow < 0 {
			bad(lineOf(root, "connections", string(db), "max_overflow"), "connections.%s.max_overflow must be 0 or more, got %d", db, *c.MaxOverflow)
		}
		if c.ConnectTimeout != nil && *c.ConnectTimeout == 0 {
			bad(lineOf(root, "connections", string(db), "connect_timeout"), "connections.%s.connect_timeout must be more than 0", db)
		}
		if c.ApplicationName != nil && strings.TrimSpace(*c.ApplicationName) == "" {
			bad(lineOf(root, "connections", string(db), "application_name"), "connections.%s.application_name must not be empty", db)
		}
	}
}

// checkRunOptions reports each out-of-range replication and load option to
// bad.
func checkRunOptions(root *yaml.Node, cfg *PipelineConfig, bad func(line int, format string, args ...any)) {
	atLeast := func(key string, v, min int) {
		if v < min {
			parts := strings.Split(key, ".")
			bad(lineOf(root, parts...), "%s must be at least %d, got %d", key, min, v)
		}
	}
	atLeast("replication.workers", cfg.Replication.Workers, 1)
	atLeast("replication.source_connections", cfg.Replication.SourceConnections, 1)
	atLeast("replication.rate_limit_ms", cfg.Replication.RateLimitMS, 0)
	atLeast("replication.max_retries", cfg.Replication.MaxRetries, 0)
	atLeast("load.workers", cfg.Load.Workers, 1)
	if c := cfg.Load.LoadedAtColumn; c != "" && !plainIdent(c) {
		bad(lineOf(root, "load", "loaded_at_column"), "load.loaded_at_column %q must be a plain lower-case PostgreSQL name of at most 63 bytes (letters, digits, _; not starting with a digit), e.g. _loaded_at", c)
	}
}

// keyAt walks the mapping keys of path from the document root: line is the
// line of the deepest key found (0 when none), value the node under the
// whole path or nil when some key is missing.
func keyAt(root *yaml.Node, path ...string) (line int, value *yaml.Node) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range path {
		var next *yaml.Node
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					line, next = n.Content[i].Line, n.Content[i+1]
					break
				}
			}
		}
		if next == nil {
			return line, nil
		}
		n = next
	}
	return line, n
}

// lineOf is the line of the key at path, or of its deepest existing parent.
func lineOf(root *yaml.Node, path ...string) int {
	line, _ := keyAt(root, path...)
	return line
}

// plainIdent reports whether s is a PostgreSQL identifier that needs no
// quoting and does not fold: lower-case letters, digits and _, not
// starting with a digit, at most 63 bytes. (A reserved word would still
// need quotes; the load always quotes it.)
func plainIdent(s string) bool {
	if s == "" || len(s) > 63 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
