package sdkdb_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"

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

// Processes that start at once on one namespace (two cores starting the same
// module) each run Migrate: every one succeeds and each migration is applied
// once; a failing migration leaves nothing behind.
func TestMigrateConcurrently(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "mod.db")
		testMigrate(t, sdk.Database{Driver: "sqlite", DSN: path +
			"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate&_time_format=sqlite"})
	})
	t.Run("postgres", func(t *testing.T) { testMigrate(t, *sdktest.Postgres(t)) })
}

func testMigrate(t *testing.T, d sdk.Database) {
	var applied atomic.Int32
	migrations := []*gormigrate.Migration{{
		ID: "0001_notes",
		Migrate: func(tx *gorm.DB) error {
			applied.Add(1)
			return tx.Migrator().CreateTable(&note{})
		},
	}}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sdkdb.Open(d)
			if err != nil {
				errs <- err
				return
			}
			defer sdkdb.Close(db)
			errs <- sdkdb.Migrate(context.Background(), db, d, migrations)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, int32(1), applied.Load())

	db, err := sdkdb.Open(d)
	require.NoError(t, err)
	defer sdkdb.Close(db)
	require.NoError(t, sdkdb.Ping(context.Background(), db))
	broken := append(migrations, &gormigrate.Migration{ID: "0002_broken", Migrate: func(tx *gorm.DB) error {
		if err := tx.Exec("CREATE TABLE half (id integer)").Error; err != nil {
			return err
		}
		return errors.New("broken")
	}})
	assert.ErrorContains(t, sdkdb.Migrate(context.Background(), db, d, broken), "broken")
	assert.False(t, db.Migrator().HasTable("half"), "a failed migration left its table")
}

// Under concurrent queries the Postgres pool keeps the connections it
// opened: none is closed for being one idle connection too many (each new
// one costs the server a backend process), and no more than the pool's
// size are opened.
func TestPostgresPoolKeepsItsConnections(t *testing.T) {
	d := sdktest.Postgres(t)
	db, err := sdkdb.Open(*d)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sdkdb.Close(db)) })
	sqlDB, err := db.DB()
	require.NoError(t, err)

	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var one int
				assert.NoError(t, db.Raw("SELECT 1 FROM pg_sleep(0.002)").Scan(&one).Error)
			}()
		}
		wg.Wait()
	}
	st := sqlDB.Stats()
	assert.Greater(t, st.MaxOpenConnections, 1)
	assert.Equal(t, st.MaxOpenConnections, st.OpenConnections, "every connection opened is still open")
	assert.Zero(t, st.MaxIdleClosed, "connections closed for exceeding the idle limit")
	assert.Greater(t, st.WaitCount, int64(0), "the queries did not contend for the pool")
}

// Processes that open a fresh SQLite database at the same moment (two
// cores starting one module) all get it: none fails with SQLITE_BUSY while
// another turns the file to WAL.
func TestOpenSQLiteConcurrently(t *testing.T) {
	for round := 0; round < 30; round++ {
		path := filepath.Join(t.TempDir(), "mod.db")
		dsn := path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
			"&_txlock=immediate&_time_format=sqlite"
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db, err := sdkdb.Open(sdk.Database{Driver: "sqlite", DSN: dsn})
				if !assert.NoError(t, err) {
					return
				}
				defer sdkdb.Close(db)
				var mode string
				assert.NoError(t, db.Raw("PRAGMA journal_mode").Scan(&mode).Error)
				assert.Equal(t, "wal", mode)
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.Fatalf("round %d", round)
		}
	}
}
