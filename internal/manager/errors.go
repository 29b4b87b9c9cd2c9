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
// (wrong password or unknown database are not retried).
func ConnectionLost(err error) bool {
	if err == nil || isContext(err) {
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
