package manager

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opendental-pipeline/pipeline/internal/factory"
)

// MySQL/MariaDB error numbers worth a retry.
const (
	myLockWaitTimeout  = 1205
	myDeadlock         = 1213
	myServerShutdown   = 1053 // ER_SERVER_SHUTDOWN
	myConnectionKilled = 1927 // MariaDB ER_CONNECTION_KILLED
	myServerGone       = 2006 // CR_SERVER_GONE_ERROR
	myLostConnection   = 2013 // CR_SERVER_LOST
)

// Retryable reports whether running the same work again may succeed: a
// deadlock or lock wait timeout (MySQL 1213/1205), a serialization failure or
// deadlock (PostgreSQL 40001/40P01), or any ConnectionLost error. Context
// cancellation and everything else (syntax, constraint, permission) are not.
func Retryable(err error) bool {
	if err == nil || isContext(err) {
		return false
	}
	if ConnectionLost(err) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == myDeadlock || me.Number == myLockWaitTimeout
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// ConnectionLost reports whether err means the connection itself is gone or
// unusable, so the next try must take a fresh one: driver.ErrBadConn,
// mysql.ErrInvalidConn, sql.ErrConnDone, pgconn.ErrConnClosed, EOF, reset,
// broken pipe, refused; MySQL 2006/2013/1927/1053; PostgreSQL class 08 and
// 57P01–57P03; a PostgreSQL connect failure that is not the server's refusal
// (wrong password or unknown database are not retried) nor a TLS failure (a
// certificate that does not verify will not verify on the next try).
func ConnectionLost(err error) bool {
	if err == nil || isContext(err) || factory.IsTLSFailure(err) {
		return false
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case myServerShutdown, myConnectionKilled, myServerGone, myLostConnection:
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03": // admin shutdown, crash shutdown, cannot connect now
			return true
		}
		return strings.HasPrefix(pe.Code, "08")
	}
	for _, target := range []error{
		driver.ErrBadConn, mysql.ErrInvalidConn, sql.ErrConnDone, pgconn.ErrConnClosed,
		io.EOF, io.ErrUnexpectedEOF, net.ErrClosed,
		syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNREFUSED, syscall.ECONNABORTED,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

func isContext(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// MySQL/MariaDB and PostgreSQL answers that refuse who we are or what we
// asked for at login: a configuration problem, not a passing outage.
const (
	myAccessDenied   = 1045 // ER_ACCESS_DENIED_ERROR: wrong user or password
	myDBAccessDenied = 1044 // ER_DBACCESS_DENIED_ERROR: no grant on the database
	myUnknownDB      = 1049 // ER_BAD_DB_ERROR
)

// Unreachable reports whether err means the server could not be reached at
// all: connection refused, host or network unreachable, a host name that
// does not resolve, or no answer in time. Such a failure may pass by
// itself: retry later.
func Unreachable(err error) bool {
	if err == nil || LoginRefused(err) {
		return false
	}
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dns),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	return false
}

// LoginRefused reports whether the server answered but refused the login:
// wrong user or password, no access to the database, or no such database
// (MySQL 1045, 1044, 1049; PostgreSQL 28000, 28P01, 3D000). Running again
// will not help; the configuration must change.
func LoginRefused(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == myAccessDenied || me.Number == myDBAccessDenied || me.Number == myUnknownDB
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "28000" || pe.Code == "28P01" || pe.Code == "3D000"
	}
	return false
}
