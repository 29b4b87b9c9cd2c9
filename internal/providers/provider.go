package providers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// File names inside the config directory.
const (
	PipelineFile = "pipeline.yml"
	TablesFile   = "tables.yml"
)

// ConfigProvider is where Settings come from: the config files and the
// environment variables.
type ConfigProvider interface {
	// Pipeline returns pipeline.yml, defaulted and validated; exists is
	// false (and cfg the defaults) when there is no pipeline.yml.
	Pipeline() (cfg *PipelineConfig, exists bool, err error)
	// Tables returns tables.yml; exists is false (and cfg empty) when there
	// is no tables.yml yet, which is how discover finds things.
	Tables() (cfg *tables.Config, exists bool, err error)
	// Env returns the environment variables.
	Env() map[string]string
	// Dir is the config directory, "" when there is none.
	Dir() string
}

// FileProvider reads pipeline.yml and tables.yml from a config directory.
// Both may be missing, and so may the directory: no pipeline.yml means the
// defaults (a new user needs only the environment variables to start), no
// tables.yml means no tables until discover writes it.
type FileProvider struct {
	dir  string
	vars map[string]string
}

// NewFileProvider reads the config files in dir and the variables in vars
// (usually OSEnv()).
func NewFileProvider(dir ConfigDir, vars EnvVars) *FileProvider {
	return &FileProvider{dir: string(dir), vars: vars}
}

// Dir is the config directory.
func (p *FileProvider) Dir() string { return p.dir }

// Env returns the variables the provider was given.
func (p *FileProvider) Env() map[string]string { return p.vars }

// Pipeline reads and validates <dir>/pipeline.yml, or returns the defaults
// when there is none.
func (p *FileProvider) Pipeline() (*PipelineConfig, bool, error) {
	if st, err := os.Stat(p.dir); err == nil && !st.IsDir() {
		return nil, false, fmt.Errorf("%w: config directory %s is a file: pass --config-dir or set %s to the directory holding %s", ErrInvalidConfig, p.dir, ConfigDirVar, PipelineFile)
	}
	path := filepath.Join(p.dir, PipelineFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultPipelineConfig(), false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: reading %s: %w", ErrInvalidConfig, path, err)
	}
	cfg, err := ParsePipeline(path, data)
	return cfg, err == nil, err
}

// Tables reads <dir>/tables.yml if it exists.
func (p *FileProvider) Tables() (*tables.Config, bool, error) {
	path := filepath.Join(p.dir, TablesFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &tables.Config{Tables: map[string]*tables.Table{}}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: reading %s: %w", ErrInvalidConfig, path, err)
	}
	cfg, err := ParseTables(path, data)
	if err != nil {
		return nil, false, err
	}
	return cfg, true, nil
}

// MemoryProvider is an in-memory ConfigProvider for tests (the design's
// DictConfigProvider). A nil PipelineConfig means the defaults; a nil
// TablesConfig means no tables.yml.
type MemoryProvider struct {
	PipelineConfig *PipelineConfig
	TablesConfig   *tables.Config
	Vars           map[string]string
}

// Dir is always "" for an in-memory provider.
func (p *MemoryProvider) Dir() string { return "" }

// Env returns Vars.
func (p *MemoryProvider) Env() map[string]string { return p.Vars }

// Pipeline returns PipelineConfig or the defaults.
func (p *MemoryProvider) Pipeline() (*PipelineConfig, bool, error) {
	if p.PipelineConfig == nil {
		return DefaultPipelineConfig(), false, nil
	}
	return p.PipelineConfig, true, nil
}

// Tables returns TablesConfig.
func (p *MemoryProvider) Tables() (*tables.Config, bool, error) {
	if p.TablesConfig == nil {
		return &tables.Config{Tables: map[string]*tables.Table{}}, false, nil
	}
	return p.TablesConfig, true, nil
}

// ParseTables parses tables.yml with tables.Parse (strict, every error
// naming the file, line and fix) and marks its errors ErrInvalidConfig too.
func ParseTables(name string, data []byte) (*tables.Config, error) {
	cfg, err := tables.Parse(name, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return cfg, nil
}

// OSEnv returns the process environment as a map.
func OSEnv() EnvVars {
	m := EnvVars{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
