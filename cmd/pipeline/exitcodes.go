package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/demo"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/notify"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// Exit codes: the contract with schedulers (cron, systemd, Airflow). Each
// code has one meaning, documented in the README's "Exit codes" table; a
// scheduler retries on exitLocked and exitUnavailable, alerts on
// exitFailed, and does neither on exitOutsideWindow.
const (
	exitOK            = 0   // everything asked for succeeded (verify: identical; status: every table current)
	exitFailed        = 1   // some tables failed, differ (verify) or are stale (status); the others were done
	exitConfig        = 2   // configuration or usage error: nothing was touched; fix it and run again
	exitLocked        = 3   // another run holds the replica or warehouse lock: retry later
	exitUnavailable   = 4   // a database could not be reached: retry later
	exitOutsideWindow = 5   // outside pipeline.yml's schedule.window (or the window closed mid-run; resumes next run)
	exitInterrupted   = 130 // stopped by SIGINT or SIGTERM; committed work is kept, the next run resumes
)

// Errors the commands return for outcomes that are not failures of a call.
var (
	errTablesFailed = errors.New("some tables failed")    // the summary says which
	errStale        = errors.New("some tables are stale") // status: not confirmed current within stale_after
	errInterrupted  = errors.New("interrupted: committed work is kept; the next run resumes")
)

// exitFor maps what a command returned to its exit code; it is the one
// place that does. ctx is the command's context, cancelled by SIGINT or
// SIGTERM: whatever failed after that failed because of the interruption.
func exitFor(ctx context.Context, err error) int {
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil || errors.Is(err, errInterrupted):
		return exitInterrupted
	case errors.Is(err, errOutsideWindow), errors.Is(err, errStoppedByWindow):
		return exitOutsideWindow
	case isConfig(err):
		return exitConfig
	case errors.Is(err, lock.ErrLocked):
		return exitLocked
	case errors.Is(err, errTablesFailed), errors.Is(err, errStale):
		return exitFailed
	case manager.Unreachable(err), manager.ConnectionLost(err):
		return exitUnavailable
	}
	return exitFailed
}

// isConfig: something the user must change before running again. A
// refused login (wrong user or password, no such database) is one too:
// retrying will not help.
func isConfig(err error) bool {
	return errors.Is(err, providers.ErrInvalidConfig) || errors.Is(err, replicate.ErrConfig) ||
		errors.Is(err, load.ErrConfig) || errors.Is(err, verify.ErrConfig) || errors.Is(err, demo.ErrNotDemo) || errors.Is(err, notify.ErrConfig) ||
		manager.LoginRefused(err)
}

// exit prints err (if any) as one line "pipeline <cmd>: …" on stderr and
// returns its exit code.
func (c *call) exit(ctx context.Context, err error) int {
	code := exitFor(ctx, err)
	c.printExit(code, err)
	return code
}

// printExit prints the line of a command that ended with code because of
// err; nothing for exit 0.
func (c *call) printExit(code int, err error) {
	if code != exitOK {
		fmt.Fprintf(c.stderr, "pipeline %s: %s\n", c.name, message(code, err))
	}
}

// message is what went wrong, for a person (and the report's error).
func message(code int, err error) string {
	if code == exitInterrupted {
		return errInterrupted.Error()
	}
	return describe(err)
}

// describe says what went wrong for a person. A database that failed its
// start ping is named with its address and the variables to check, not
// with fx's hook and function names; a configuration error is its own list.
func describe(err error) string {
	var ping *factory.PingError
	var cfg *providers.ConfigError
	var check *checkFailed
	switch {
	case errors.As(err, &check): // the table said which and why
		return check.Error()
	case errors.As(err, &ping):
		return describePing(ping)
	case errors.As(err, &cfg):
		return cfg.Error()
	}
	return err.Error()
}

// describePing: "cannot reach source database opendental at 10.0.0.5:3306:
// connection refused — check OPENDENTAL_SOURCE_HOST/PORT and that the
// server is up".
func describePing(e *factory.PingError) string {
	c := e.Config
	vars := c.Environment.VarPrefix()
	if db, ok := catalog.Lookup(c.Database); ok {
		vars += db.EnvPrefix
	}
	what := fmt.Sprintf("%s database %s at %s", c.Label(), c.Name, c.Addr())
	switch {
	case manager.LoginRefused(e.Err):
		return fmt.Sprintf("%s refused the login: %v — check %s_USER, _PASSWORD and _DB, and the user's grants", what, e.Err, vars)
	case manager.Unreachable(e.Err):
		return fmt.Sprintf("cannot reach %s: %s — check %s_HOST/PORT and that the server is up", what, unreachableCause(e.Err), vars)
	}
	return fmt.Sprintf("%s: %v", what, e.Err)
}

// unreachableCause is the short reason, without the dial's addresses the
// line already names.
func unreachableCause(err error) string {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return fmt.Sprintf("host name %s not found", dns.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	}
	return "no answer in time"
}
