package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gorm.io/gorm"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdkdb"
)

// Driver names, as returned by [DB.Driver] and put in [ModuleDB.Driver].
const (
	DriverSQLite   = sdkdb.DriverSQLite
	DriverPostgres = sdkdb.DriverPostgres
)

// Config says where the core's data lives.
type Config struct {
	// DatabaseURL selects Postgres when it starts with postgres:// or
	// postgresql://; only that URL form is supported. Empty: embedded SQLite
	// at DataDir/chacc.db.
	DatabaseURL string
	// DataDir holds the SQLite files (core and per-module). It is made
	// absolute at [Open], and created if missing when SQLite is used.
	// Default: ".data".
	DataDir string
}

// DB is the core's database. The embedded *gorm.DB is safe for concurrent use.
type DB struct {
	*gorm.DB
	driver string
	cfg    Config
	sqlDB  *sql.DB
	lease  lease
}

// The core's Postgres pool (sdkdb.SizePostgresPool); SQLite keeps sdkdb's
// (one writer at a time).
const postgresMaxOpen = 20

// Open connects to the database cfg selects and checks that it answers. It
// does not migrate; call [DB.Migrate].
//
// Queries are logged as [sdkdb.Open] logs them: failures and slow queries
// only, without their arguments.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = ".data"
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("store: data dir: %w", err)
	}
	cfg.DataDir = dir

	var d sdk.Database
	switch {
	case isPostgresURL(cfg.DatabaseURL):
		d = sdk.Database{Driver: DriverPostgres, DSN: cfg.DatabaseURL}
	case cfg.DatabaseURL != "":
		// The URL may hold a password: name only what was expected.
		return nil, errors.New("store: DatabaseURL must start with postgres:// or postgresql://")
	default:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: data dir: %w", err)
		}
		d = sdk.Database{Driver: DriverSQLite, DSN: sqliteDSN(filepath.Join(dir, "chacc.db"))}
	}
	// The core opens its database exactly as a module opens its own
	// (dialector, logging, UTC times); only the Postgres pool is wider, for
	// the core's event dispatchers and lifecycle work.
	gdb, err := sdkdb.Open(d)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	driver := d.Driver
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", driver, err)
	}
	if driver == DriverPostgres {
		sdkdb.SizePostgresPool(sqlDB, postgresMaxOpen)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", driver, err)
	}
	return &DB{DB: gdb, driver: driver, cfg: cfg, sqlDB: sqlDB}, nil
}

// Driver returns [DriverSQLite] or [DriverPostgres].
func (db *DB) Driver() string { return db.driver }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.sqlDB.PingContext(ctx) }

// Close closes every connection of the pool.
func (db *DB) Close() error {
	db.releaseLease()
	return db.sqlDB.Close()
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// sqliteDSN returns the modernc.org/sqlite DSN for the file at path.
//
// WAL lets readers run beside the single writer. busy_timeout makes a
// connection wait for the write lock instead of failing with SQLITE_BUSY, and
// _txlock=immediate takes that lock at BEGIN: a deferred transaction that
// reads and then writes would need to upgrade its lock, and SQLite fails such
// an upgrade at once, without waiting, when another connection has written
// in between. _time_format=sqlite stores times in a form SQLite's date
// functions understand.
func sqliteDSN(path string) string {
	return path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		"&_txlock=immediate&_time_format=sqlite"
}

// Advisory lock keys ("chacc" in hex, then a number) that serialize work
// across core instances sharing one Postgres database.
const (
	lockMigrate    int64 = 0x636861636301
	lockEvents     int64 = 0x636861636302
	lockNamespaces int64 = 0x636861636303
)

// lockTx takes the Postgres advisory lock key until tx ends. On SQLite it
// does nothing: with _txlock=immediate every transaction already holds the
// database's single write lock from BEGIN to its end.
func (db *DB) lockTx(tx *gorm.DB, key int64) error {
	if db.driver != DriverPostgres {
		return nil
	}
	return tx.Exec("SELECT pg_advisory_xact_lock(?)", key).Error
}
