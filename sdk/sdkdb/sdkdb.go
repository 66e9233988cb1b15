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
	"fmt"
	"log/slog"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	// modernc.org/sqlite registers the pure-Go driver "sqlite" that the
	// gorm SQLite dialector is pointed at.
	_ "modernc.org/sqlite"

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
// server.
const (
	sqliteMaxConns   = 8
	postgresMaxOpen  = 10
	postgresMaxIdle  = 5
	postgresLifetime = 30 * time.Minute
	postgresIdleTime = 5 * time.Minute
)

// SlowQuery is the duration above which a query is logged as slow.
const SlowQuery = 200 * time.Millisecond

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
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger: logger.NewSlogLogger(slog.Default(), logger.Config{
			SlowThreshold:             SlowQuery,
			LogLevel:                  logger.Warn,
			IgnoreRecordNotFoundError: true,
			// Arguments can hold personal data or secrets.
			ParameterizedQueries: true,
		}),
		NowFunc: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	})
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
		sqlDB.SetMaxOpenConns(postgresMaxOpen)
		sqlDB.SetMaxIdleConns(postgresMaxIdle)
		sqlDB.SetConnMaxLifetime(postgresLifetime)
		sqlDB.SetConnMaxIdleTime(postgresIdleTime)
	}
	return db, nil
}

// Close closes every connection of db's pool.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
