package providers

import (
	"fmt"
	"strings"
)

// EnvironmentValues lists every Environment.
func EnvironmentValues() []Environment { return []Environment{Production, Test} }

// Valid reports whether e is a known environment.
func (e Environment) Valid() bool { return e == Production || e == Test }

func (e Environment) String() string { return string(e) }

// VarPrefix is what the environment puts before a database's variable
// prefix: "" in production, "TEST_" in test.
func (e Environment) VarPrefix() string {
	if e == Test {
		return "TEST_"
	}
	return ""
}

// ErrUnknownEnvironment is returned for an environment name that is neither
// production nor test.
var ErrUnknownEnvironment = fmt.Errorf("unknown environment")

// ParseEnvironment turns s (case and surrounding space ignored) into an
// Environment or names the allowed values.
func ParseEnvironment(s string) (Environment, error) {
	e := Environment(strings.ToLower(strings.TrimSpace(s)))
	if e.Valid() {
		return e, nil
	}
	return "", fmt.Errorf("%w %q: allowed values are %s, %s", ErrUnknownEnvironment, s, Production, Test)
}

// EnvironmentVars are the variables that select the environment, highest
// precedence first. An unset or empty variable is skipped.
var EnvironmentVars = []string{"ETL_ENVIRONMENT", "ENVIRONMENT", "APP_ENV"}

// DetectEnvironment picks the environment: override (the --env flag) if set,
// else the first of EnvironmentVars set in env, else production. A value
// that is not a known environment is an error naming where it came from; it
// never falls back to production.
func DetectEnvironment(override string, env map[string]string) (Environment, error) {
	if strings.TrimSpace(override) != "" {
		e, err := ParseEnvironment(override)
		if err != nil {
			return "", fmt.Errorf("reading --env: %w", err)
		}
		return e, nil
	}
	for _, name := range EnvironmentVars {
		v := env[name]
		if strings.TrimSpace(v) == "" {
			continue
		}
		e, err := ParseEnvironment(v)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", name, err)
		}
		return e, nil
	}
	return Production, nil
}
