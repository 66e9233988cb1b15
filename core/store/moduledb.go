package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ModuleDB says how a module opens its own namespace.
type ModuleDB struct {
	// Driver is [DriverSQLite] or [DriverPostgres].
	Driver string
	// DSN opens the namespace: a postgres:// URL whose search_path is Schema,
	// or a modernc.org/sqlite DSN (absolute file path and pragmas).
	DSN string
	// Schema is the Postgres schema, "mod_<name>"; empty on SQLite.
	Schema string
}

// moduleName is the manifest's rule for module names.
var moduleName = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,62}$`)

// maxIdentifier is the longest Postgres identifier; longer ones are truncated
// silently, which could give two modules one schema.
const maxIdentifier = 63

// ModuleDatabase makes sure the namespace of module name exists and returns
// how the module opens it.
//
// On Postgres the namespace is the schema "mod_<name>" with '-' replaced by
// '_', so "a-b" and "a_b" share one; the schema name must fit in 63 bytes
// (names of at most 59 characters). The DSN is DatabaseURL with the libpq
// "options" parameter extended by "-c search_path=mod_<name>", so unqualified
// tables land in that schema. Only the URL form of DatabaseURL is supported.
//
// On SQLite the namespace is the file DataDir/modules/<name>.db, created now
// in WAL mode, and the DSN carries the same pragmas as the core's own
// database.
func (db *DB) ModuleDatabase(ctx context.Context, name string) (ModuleDB, error) {
	if err := checkModuleName(name); err != nil {
		return ModuleDB{}, err
	}
	if db.driver == DriverPostgres {
		return db.postgresModuleDatabase(ctx, name)
	}
	path := db.moduleFile(name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return ModuleDB{}, fmt.Errorf("store: module %s database: %w", name, err)
	}
	dsn := sqliteDSN(path)
	// Connecting applies the pragmas, which creates the file in WAL mode.
	conn, err := sql.Open(DriverSQLite, dsn)
	if err == nil {
		err = conn.PingContext(ctx)
		conn.Close()
	}
	if err != nil {
		return ModuleDB{}, fmt.Errorf("store: module %s database: %w", name, err)
	}
	return ModuleDB{Driver: DriverSQLite, DSN: dsn}, nil
}

func (db *DB) postgresModuleDatabase(ctx context.Context, name string) (ModuleDB, error) {
	schema, err := moduleSchema(name)
	if err != nil {
		return ModuleDB{}, err
	}
	dsn, err := withSearchPath(db.cfg.DatabaseURL, schema)
	if err != nil {
		return ModuleDB{}, fmt.Errorf("store: module %s database: %w", name, err)
	}
	// CREATE SCHEMA IF NOT EXISTS can still fail on a unique violation when
	// two sessions run it at once; the lock makes instances take turns.
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := db.lockTx(tx, lockNamespaces); err != nil {
			return err
		}
		return tx.Exec("CREATE SCHEMA IF NOT EXISTS ?", clause.Table{Name: schema}).Error
	})
	if err != nil {
		return ModuleDB{}, fmt.Errorf("store: module %s database: %w", name, err)
	}
	return ModuleDB{Driver: DriverPostgres, DSN: dsn, Schema: schema}, nil
}

// DropModuleDatabase deletes the namespace of module name and all its data:
// DROP SCHEMA ... CASCADE on Postgres, the file and its -wal and -shm files on
// SQLite. The module must not be running. A missing namespace is not an
// error.
func (db *DB) DropModuleDatabase(ctx context.Context, name string) error {
	if err := checkModuleName(name); err != nil {
		return err
	}
	if db.driver == DriverPostgres {
		schema, err := moduleSchema(name)
		if err != nil {
			return err
		}
		err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := db.lockTx(tx, lockNamespaces); err != nil {
				return err
			}
			return tx.Exec("DROP SCHEMA IF EXISTS ? CASCADE", clause.Table{Name: schema}).Error
		})
		if err != nil {
			return fmt.Errorf("store: drop module %s database: %w", name, err)
		}
		return nil
	}
	path := db.moduleFile(name)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: drop module %s database: %w", name, err)
		}
	}
	return nil
}

func checkModuleName(name string) error {
	if !moduleName.MatchString(name) {
		return fmt.Errorf("store: invalid module name %q", name)
	}
	return nil
}

// moduleSchema returns the Postgres schema of module name.
func moduleSchema(name string) (string, error) {
	schema := "mod_" + strings.ReplaceAll(name, "-", "_")
	if len(schema) > maxIdentifier {
		return "", fmt.Errorf("store: module name %q too long for a Postgres schema (at most %d characters)",
			name, maxIdentifier-len("mod_"))
	}
	return schema, nil
}

func (db *DB) moduleFile(name string) string {
	return filepath.Join(db.cfg.DataDir, "modules", name+".db")
}

// withSearchPath returns the postgres:// URL rawURL with search_path set to
// schema through the "options" parameter, which pgx and libpq both send to
// the server.
func withSearchPath(rawURL, schema string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", errors.New("DatabaseURL is not a valid URL")
	}
	q := u.Query()
	// A search_path parameter would override the options one.
	q.Del("search_path")
	q.Set("options", strings.TrimSpace(q.Get("options")+" -c search_path="+schema))
	// libpq does not decode '+' in URLs as a space; Encode writes a literal
	// '+' as %2B, so every '+' left is a space.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String(), nil
}
