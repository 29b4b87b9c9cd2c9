package providers

import (
	"fmt"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/policy"
)

// HashKeyVar is the hash key's variable in the settings' environment:
// PIPELINE_HASH_KEY in production, TEST_PIPELINE_HASH_KEY in test (like
// every other variable, so a test never hashes with the production key).
func (s *Settings) HashKeyVar() string { return s.Environment.VarPrefix() + policy.KeyVar }

// HashKey is the key of tables.yml's column_policies hash, or nil when no
// table hashes a column (the variable is then not read). Its error never
// quotes the key.
func (s *Settings) HashKey() (*policy.Key, error) {
	if !s.Tables.Hashes() {
		return nil, nil
	}
	if p := s.hashKeyProblem(); p != "" {
		return nil, &ConfigError{Environment: s.Environment, Problems: []string{p}}
	}
	v, _ := s.Env(s.HashKeyVar())
	return policy.NewKey(v)
}

// hashKeyProblem says what is wrong with the hash key when tables.yml
// hashes a column, or "".
func (s *Settings) hashKeyProblem() string {
	if !s.Tables.Hashes() {
		return ""
	}
	name := s.HashKeyVar()
	v, ok := s.Env(name)
	if !ok || v == "" {
		return fmt.Sprintf("%s is not set, and tables.yml hashes columns (column_policies: hash); set it to a secret of at least %d bytes, e.g. `openssl rand -hex 32`, and keep it: a new key rehashes every hashed column", name, policy.MinKeyBytes)
	}
	if _, err := policy.NewKey(v); err != nil {
		return name + ": " + err.Error()
	}
	return ""
}

// needsHashKey reports whether a command using dbs writes or reads raw's
// hashed columns: the load and verify, which use the analytics database.
func needsHashKey(dbs []catalog.DatabaseType) bool {
	for _, d := range dbs {
		if d == catalog.DatabaseAnalytics {
			return true
		}
	}
	return false
}
