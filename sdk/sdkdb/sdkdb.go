// Package sdkdb opens a module's own database namespace with gorm.
//
// The core hands every module a namespace of its own ([sdk.Runtime.Database]):
// a Postgres schema, or a SQLite file. Open turns that description into a
// *gorm.DB with pool and logging settings suited to a module:
//
//	db, err := sdkdb.Open(rt.Database())
//	if err != nil {
//		return nil, err
//	}
//	rt.OnShutdown(func(context.Context) error { return sdkdb.Close(db) })
//
// SQLite is the pure-Go modernc.org/sqlite, so modules build with
// CGO_ENABLED=0. A module must not link another SQLite driver: two drivers
// registering the name "sqlite" panic at start-up.
package sdkdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	// modernc.org/sqlite registers the pure-Go driver "sqlite" that the
	// gorm SQLite dialector is pointed at.
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chacc/chacc/sdk"
)

// Driver names, as found in [sdk.Database.Driver].
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Pool sizes. SQLite lets one connection write at a time, and WAL lets
// readers run beside it, so a few connections are enough. Postgres gets a
// small pool because every module, and the core, hold connections to the same
// server (see [SizePostgresPool]).
const (
	sqliteMaxConns   = 8
	postgresMaxOpen  = 10
	postgresLifetime = 30 * time.Minute
	postgresIdleTime = 5 * time.Minute
)

// sqliteOpenWait bounds the retries of a SQLite open that finds the file
// busy (about a second in all).
const sqliteOpenWait = 600 * time.Millisecond

// isBusy tells whether err is SQLite's SQLITE_BUSY (or one of its extended
// codes).
func isBusy(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// SlowQuery is the duration above which a query is logged as slow.
const SlowQuery = 200 * time.Millisecond

// queryLogger is gorm's slog logger, but for Trace, which it asks only
// about a query it will log. gorm's own Trace renders every query's
// statement (ExplainSQL) and formats its duration before it decides
// whether to log it: 5% of a module's CPU when it reads a row by primary
// key from Postgres, for a record that is dropped.
type queryLogger struct {
	logger.Interface
	level logger.LogLevel
}

func newQueryLogger(log *slog.Logger) queryLogger {
	return queryLogger{
		Interface: logger.NewSlogLogger(log, logger.Config{
			SlowThreshold:             SlowQuery,
			LogLevel:                  logger.Warn,
			IgnoreRecordNotFoundError: true,
			// Arguments can hold personal data or secrets.
			ParameterizedQueries: true,
		}),
		level: logger.Warn,
	}
}

// LogMode keeps the level (db.Debug() asks for Info: every query logged).
func (q queryLogger) LogMode(level logger.LogLevel) logger.Interface {
	return queryLogger{Interface: q.Interface.LogMode(level), level: level}
}

// ParamsFilter is the wrapped logger's: gorm asks the logger whether to
// render a logged query with its arguments or with placeholders, and
// without this method it would not find the wrapped logger's answer
// (placeholders: arguments can hold personal data or secrets).
func (q queryLogger) ParamsFilter(ctx context.Context, sql string, params ...any) (string, []any) {
	if f, ok := q.Interface.(gorm.ParamsFilter); ok {
		return f.ParamsFilter(ctx, sql, params...)
	}
	return sql, nil
}

// Trace passes on a query that failed (but for a record not found), was
// slow, or is to be logged whatever it did; it drops the rest unseen.
func (q queryLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	failed := err != nil && !errors.Is(err, logger.ErrRecordNotFound)
	if q.level >= logger.Info || (q.level >= logger.Warn && time.Since(begin) > SlowQuery) || (q.level >= logger.Error && failed) {
		q.Interface.Trace(ctx, begin, fc, err)
	}
}

// Open connects to the namespace d describes and checks that it answers.
// Unqualified table names land in the module's namespace: the Postgres DSN
// sets the search_path to the module's schema, and a SQLite file holds only
// the module's tables.
//
// Queries are logged through [slog.Default] (as it is when Open is called),
// which a module's stderr carries to the core's log, only when they fail or
// take longer than [SlowQuery], and without their arguments. Times are
// written in UTC with microsecond precision, so that a time reads back as it
// was written on both databases.
//
// Release the connections with [Close] when the module shuts down.
func Open(d sdk.Database) (*gorm.DB, error) {
	var dialector gorm.Dialector
	switch d.Driver {
	case DriverSQLite:
		dialector = sqlite.New(sqlite.Config{DriverName: DriverSQLite, DSN: d.DSN})
	case DriverPostgres:
		dialector = postgres.New(postgres.Config{DSN: d.DSN})
	default:
		return nil, fmt.Errorf("sdkdb: unsupported database driver %q (want %q or %q)", d.Driver, DriverSQLite, DriverPostgres)
	}
	cfg := &gorm.Config{
		Logger:  newQueryLogger(slog.Default()),
		NowFunc: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
	db, err := gorm.Open(dialector, cfg)
	// A fresh SQLite file that other processes open at the same moment (two
	// cores starting one module) can answer SQLITE_BUSY to the connection's
	// journal_mode pragma while another turns the file to WAL: SQLite does
	// not wait on its busy timeout there. Such an open is tried again.
	for wait := time.Millisecond; d.Driver == DriverSQLite && isBusy(err) && wait < sqliteOpenWait; wait *= 2 {
		time.Sleep(wait)
		db, err = gorm.Open(dialector, cfg)
	}
	if err != nil {
		// The DSN may hold a password: name only the driver.
		return nil, fmt.Errorf("sdkdb: open %s: %w", d.Driver, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("sdkdb: open %s: %w", d.Driver, err)
	}
	if d.Driver == DriverSQLite {
		sqlDB.SetMaxOpenConns(sqliteMaxConns)
		sqlDB.SetMaxIdleConns(sqliteMaxConns)
	} else {
		SizePostgresPool(sqlDB, postgresMaxOpen)
		sqlDB.SetConnMaxLifetime(postgresLifetime)
		sqlDB.SetConnMaxIdleTime(postgresIdleTime)
	}
	return db, nil
}

// SizePostgresPool lets a Postgres pool open up to n connections and keeps
// every one it opens until it has been idle for the pool's idle time
// (Open sets five minutes). With fewer idle connections allowed than open,
// database/sql closes one whenever more than that many are put back at once,
// which under concurrent requests is all the time, and each new one costs
// Postgres a backend process (under 64 concurrent reads by primary key, ~17
// connections a second opened and closed, and chacc's throughput on them
// half as steady).
func SizePostgresPool(sqlDB *sql.DB, n int) {
	sqlDB.SetMaxOpenConns(n)
	sqlDB.SetMaxIdleConns(n)
}

// Migrate brings the namespace's schema up to date with migrations
// (gormigrate, recorded in the table "migrations"), in one transaction that
// holds the namespace's migration lock, so that two processes starting at
// once on one database (two cores, or an upgrade beside the old version) do
// not both apply them: on Postgres an advisory lock on the schema, on SQLite
// the write lock its immediate transactions take. A failed migration leaves
// nothing half-done.
func Migrate(ctx context.Context, db *gorm.DB, d sdk.Database, migrations []*gormigrate.Migration) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if d.Driver == DriverPostgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrationLockKey(d.Schema)).Error; err != nil {
				return fmt.Errorf("migration lock: %w", err)
			}
		}
		opts := *gormigrate.DefaultOptions
		opts.UseTransaction = false // already in one
		return gormigrate.New(tx, &opts, migrations).Migrate()
	})
}

// migrationLockKey is the advisory lock id of a module's schema.
func migrationLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("chacc-module-migrate:" + schema))
	return int64(h.Sum64())
}

// Ping checks that the database answers (a module's health check).
func Ping(ctx context.Context, db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes every connection of db's pool.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
