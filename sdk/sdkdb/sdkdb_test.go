package sdkdb_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdkdb"
	"github.com/chacc/chacc/sdk/sdktest"
)

type note struct {
	ID        uint `gorm:"primaryKey"`
	Text      string
	CreatedAt time.Time
}

// roundTrip creates a table through a database opened with sdkdb and reads a
// row back as it was written. It returns the database, open until the test
// ends.
func roundTrip(t *testing.T, d sdk.Database) *gorm.DB {
	t.Helper()
	db, err := sdkdb.Open(d)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sdkdb.Close(db)) })

	require.NoError(t, db.AutoMigrate(&note{}))
	want := note{Text: "hello"}
	require.NoError(t, db.Create(&want).Error)
	var got note
	require.NoError(t, db.First(&got, want.ID).Error)
	assert.Equal(t, "hello", got.Text)
	assert.True(t, want.CreatedAt.Equal(got.CreatedAt), "time written %v, read back %v", want.CreatedAt, got.CreatedAt)
	return db
}

func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mod.db")
	// The parameters the core puts in a module's SQLite DSN.
	dsn := path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		"&_txlock=immediate&_time_format=sqlite"
	roundTrip(t, sdk.Database{Driver: "sqlite", DSN: dsn})
	assert.FileExists(t, path)
}

func TestOpenPostgres(t *testing.T) {
	d := sdktest.Postgres(t)
	db := roundTrip(t, *d)

	// The table landed in the module's schema, not in public.
	var schemas []string
	require.NoError(t, db.Raw("SELECT table_schema FROM information_schema.tables WHERE table_name = 'notes'").Scan(&schemas).Error)
	assert.Equal(t, []string{d.Schema}, schemas)
}

func TestOpenUnknownDriver(t *testing.T) {
	for _, driver := range []string{"", "mysql"} {
		t.Run("driver="+driver, func(t *testing.T) {
			_, err := sdkdb.Open(sdk.Database{Driver: driver, DSN: "x"})
			assert.ErrorContains(t, err, "unsupported database driver")
		})
	}
}
