package store_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/core/store/storetest"
)

var tables = []string{"modules", "module_archives", "audit_log", "event_outbox", "event_cursors"}

// config returns a Config for a new, empty database on b.
func config(t *testing.T, b storetest.Backend) store.Config {
	cfg := store.Config{DataDir: t.TempDir()}
	if b.Name == store.DriverPostgres {
		cfg.DatabaseURL = storetest.FreshPostgres(t)
	}
	return cfg
}

// open opens and migrates the store of cfg, and closes it when the test ends.
func open(t *testing.T, cfg store.Config) *store.DB {
	db, err := store.Open(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.Migrate(t.Context()))
	return db
}

func TestMigrateIsIdempotent(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := config(t, b)
			var first int64
			for range 2 {
				db, err := store.Open(t.Context(), cfg)
				require.NoError(t, err)
				assert.Equal(t, b.Name, db.Driver())
				require.NoError(t, db.Migrate(t.Context()))
				require.NoError(t, db.Migrate(t.Context()))
				require.NoError(t, db.Ping(t.Context()))

				for _, table := range tables {
					assert.True(t, db.Migrator().HasTable(table), table)
				}
				assert.True(t, db.Migrator().HasIndex("event_outbox", "idx_event_outbox_id"))
				var ran int64
				require.NoError(t, db.Table("chacc_migrations").Count(&ran).Error)
				if first == 0 {
					first = ran
				}
				assert.Equal(t, first, ran, "migrating again runs nothing")
				var ids []string
				require.NoError(t, db.Table("chacc_migrations").Order("id").Pluck("id", &ids).Error)
				assert.Equal(t, []string{"202611230001_init", "202612010001_module_signature"}, ids[:min(2, len(ids))])
				assert.True(t, db.Migrator().HasColumn(&store.Module{}, "SignatureTrusted"))
				require.NoError(t, db.Close())
			}
		})
	}
}

func TestMigrateConcurrently(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := config(t, b)
			const instances = 4
			var wg sync.WaitGroup
			for range instances {
				db, err := store.Open(t.Context(), cfg)
				require.NoError(t, err)
				t.Cleanup(func() { db.Close() })
				wg.Go(func() { assert.NoError(t, db.Migrate(t.Context())) })
			}
			wg.Wait()
		})
	}
}

func TestOpenRejectsOtherDatabases(t *testing.T) {
	_, err := store.Open(t.Context(), store.Config{
		DatabaseURL: "mysql://root:secret@localhost/chacc",
		DataDir:     t.TempDir(),
	})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret")
}

func TestSQLiteSettings(t *testing.T) {
	db := storetest.Open(t, storetest.Backend{Name: store.DriverSQLite})
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	}
	for _, tc := range tests {
		t.Run(tc.pragma, func(t *testing.T) {
			var got string
			require.NoError(t, db.Raw("PRAGMA "+tc.pragma).Scan(&got).Error)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestModelsRoundTrip(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := storetest.Open(t, b)
			ctx := t.Context()

			m := store.Module{
				Name: "sla", Version: "1.2.3", Enabled: true, ManifestJSON: `{"name":"sla"}`,
				ArchiveSHA256: "a", ExecutableSHA256: "e", Executable: "bin/linux-amd64/sla",
				InstalledAt: db.NowFunc(),
			}
			require.NoError(t, db.WithContext(ctx).Omit("Subscribes", "SignedBy").Create(&m).Error)
			var gotModule store.Module
			require.NoError(t, db.WithContext(ctx).First(&gotModule, "name = ?", "sla").Error)
			assert.Equal(t, "[]", gotModule.Subscribes, "default")
			assert.Equal(t, "", gotModule.SignedBy)
			assert.True(t, m.InstalledAt.Equal(gotModule.InstalledAt))
			assert.False(t, gotModule.UpdatedAt.IsZero())

			data := []byte{0, 1, 2, 0xff}
			require.NoError(t, db.WithContext(ctx).Create(&store.ModuleArchive{
				Name: "sla", Version: "1.2.3", SHA256: "a", Data: data,
			}).Error)
			var archive store.ModuleArchive
			require.NoError(t, db.WithContext(ctx).First(&archive, "name = ? AND version = ?", "sla", "1.2.3").Error)
			assert.Equal(t, data, archive.Data)

			entry := store.AuditEntry{At: db.NowFunc(), Actor: "admin", Action: "install", Module: "sla", Outcome: "ok"}
			require.NoError(t, db.WithContext(ctx).Create(&entry).Error)
			assert.NotZero(t, entry.ID)
		})
	}
}
