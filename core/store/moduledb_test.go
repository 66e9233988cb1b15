package store_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"

	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/core/store/storetest"
)

func TestModuleDatabase(t *testing.T) {
	tests := []struct {
		name   string
		module string
		schema string
	}{
		{name: "plain", module: "billing", schema: "mod_billing"},
		{name: "dash", module: "sla-v2", schema: "mod_sla_v2"},
	}
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := config(t, b)
			db := open(t, cfg)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					md, err := db.ModuleDatabase(t.Context(), tc.module)
					require.NoError(t, err)
					again, err := db.ModuleDatabase(t.Context(), tc.module)
					require.NoError(t, err)
					assert.Equal(t, md, again)
					assert.Equal(t, b.Name, md.Driver)

					if b.Name == store.DriverPostgres {
						assert.Equal(t, tc.schema, md.Schema)
						usePostgresModule(t, md)
						assertSchemaOf(t, db, "widgets", tc.schema)
						require.NoError(t, db.DropModuleDatabase(t.Context(), tc.module))
						assertSchemaOf(t, db, "widgets", "")
					} else {
						assert.Empty(t, md.Schema)
						path := filepath.Join(cfg.DataDir, "modules", tc.module+".db")
						assert.FileExists(t, path)
						// Linux lets Drop remove the files while the module
						// still has them open, so -wal and -shm are there.
						closeModule := useSQLiteModule(t, md)
						assert.FileExists(t, path+"-wal")
						require.NoError(t, db.DropModuleDatabase(t.Context(), tc.module))
						closeModule()
						for _, p := range []string{path, path + "-wal", path + "-shm"} {
							assert.NoFileExists(t, p)
						}
					}
					assert.NoError(t, db.DropModuleDatabase(t.Context(), tc.module), "dropping a missing one")
				})
			}
		})
	}
}

func TestModuleDatabaseRejectsBadNames(t *testing.T) {
	long := "m123456789012345678901234567890123456789012345678901234567890" // 61 characters
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := storetest.Open(t, b)
			names := []string{"", "A", "x", "../etc", "a/b", "a b", `a"b`}
			if b.Name == store.DriverPostgres {
				names = append(names, long)
			}
			for _, name := range names {
				_, err := db.ModuleDatabase(t.Context(), name)
				assert.Error(t, err, name)
				assert.Error(t, db.DropModuleDatabase(t.Context(), name), name)
			}
		})
	}
}

// usePostgresModule connects as the module would and creates a table.
func usePostgresModule(t *testing.T, md store.ModuleDB) {
	mod, err := gorm.Open(postgres.Open(md.DSN), &gorm.Config{})
	require.NoError(t, err)
	sqlDB, err := mod.DB()
	require.NoError(t, err)
	defer sqlDB.Close()
	require.NoError(t, mod.Exec("CREATE TABLE widgets (id int PRIMARY KEY)").Error)
}

// assertSchemaOf checks that table is in schema, or nowhere when schema is "".
func assertSchemaOf(t *testing.T, db *store.DB, table, schema string) {
	var got []string
	require.NoError(t, db.Raw("SELECT table_schema FROM information_schema.tables WHERE table_name = ?", table).
		Scan(&got).Error)
	if schema == "" {
		assert.Empty(t, got)
		return
	}
	assert.Equal(t, []string{schema}, got)
}

// useSQLiteModule connects as the module would, creates a table and returns
// a func that disconnects.
func useSQLiteModule(t *testing.T, md store.ModuleDB) func() {
	mod, err := gorm.Open(sqlite.New(sqlite.Config{DriverName: store.DriverSQLite, DSN: md.DSN}), &gorm.Config{})
	require.NoError(t, err)
	sqlDB, err := mod.DB()
	require.NoError(t, err)
	require.NoError(t, mod.Exec("CREATE TABLE widgets (id int PRIMARY KEY)").Error)
	var mode string
	require.NoError(t, mod.Raw("PRAGMA journal_mode").Scan(&mode).Error)
	assert.Equal(t, "wal", mode)
	return func() { sqlDB.Close() }
}
