// Package providers reads configuration: environment detection, per-database
// connection settings from environment variables, and the config files
// (pipeline.yml, tables.yml) through a ConfigProvider.
package providers

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
)

// Environment selects which set of environment variables is read.
type Environment string

const (
	Production Environment = "production"
	Test       Environment = "test"
)

// PoolConfig is the per-database pool and timeout configuration
// (pipeline.yml connections.<database>), already defaulted.
type PoolConfig struct {
	ConnectTimeout  time.Duration
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	PoolSize        int
	MaxOverflow     int
	PoolTimeout     time.Duration
	PoolRecycle     time.Duration
	ApplicationName string
}

// Pool defaults from the connection architecture.
const (
	DefaultPoolSize    = 5
	DefaultMaxOverflow = 10
	DefaultPoolTimeout = 30 * time.Second
	DefaultPoolRecycle = 1800 * time.Second
)

// DBConfig is everything needed to open one pool. Its String method never
// shows the password; never format Password yourself.
type DBConfig struct {
	Environment Environment
	Database    catalog.DatabaseType
	Schema      catalog.PostgresSchema // analytics only; "" otherwise
	Driver      catalog.Driver
	ReadOnly    bool
	Host        string
	Port        int
	Name        string // database name
	User        string
	Password    string `json:"-"` // encoding/json and slog's JSONHandler would print every field
	TLS         TLSConfig
	Pool        PoolConfig
}

// Addr is host:port.
func (c DBConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// Label names the database (and schema) for messages, e.g. "analytics/raw".
func (c DBConfig) Label() string {
	if c.Schema != "" {
		return string(c.Database) + "/" + string(c.Schema)
	}
	return string(c.Database)
}

// String describes the config without the password.
func (c DBConfig) String() string {
	return fmt.Sprintf("%s %s://%s@%s/%s", c.Label(), c.Driver, c.User, c.Addr(), c.Name)
}

// GoString keeps %#v from leaking the password.
func (c DBConfig) GoString() string { return c.String() }

// LogValue keeps a logged DBConfig password-free under every slog handler:
// JSONHandler does not use String, it marshals the struct field by field.
func (c DBConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }
