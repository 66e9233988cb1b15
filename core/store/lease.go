package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// leaderLockKey is the Postgres advisory lock that elects the core instance
// dispatching events.
const leaderLockKey int64 = 0x63686163635f6576 // "chacc_ev"

// leaderRecheck is how long a held lease is trusted before its connection is
// pinged again.
const leaderRecheck = time.Second

// lease is the event-dispatch lease of one core instance.
type lease struct {
	mu      sync.Mutex
	conn    *sql.Conn
	checked time.Time
}

// Leader reports whether this core instance dispatches events. With SQLite
// there is one core per database file, and it always does. With Postgres the
// lease is a session advisory lock held on a connection of its own: it is
// released when the instance dies or its connection breaks, and another
// instance takes it at its next call. One dispatcher per subscriber across
// the cluster keeps delivery in order.
func (db *DB) Leader(ctx context.Context) bool {
	if db.driver != DriverPostgres {
		return true
	}
	l := &db.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		if time.Since(l.checked) < leaderRecheck {
			return true
		}
		if err := l.conn.PingContext(ctx); err == nil {
			l.checked = time.Now()
			return true
		}
		_ = l.conn.Close()
		l.conn = nil
	}
	c, err := db.sqlDB.Conn(ctx)
	if err != nil {
		return false
	}
	var ok bool
	if err := c.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", leaderLockKey).Scan(&ok); err != nil || !ok {
		_ = c.Close()
		return false
	}
	l.conn, l.checked = c, time.Now()
	return true
}

// releaseLease gives the lease up (on Close).
func (db *DB) releaseLease() {
	l := &db.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		_ = l.conn.Close()
		l.conn = nil
	}
}
