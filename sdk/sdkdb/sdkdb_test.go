package sdkdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm/clause"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdkdb"
)

type note struct {
	ID        uint `gorm:"primaryKey"`
	Text      string
	CreatedAt time.Time
}

// roundTrip creates a table through a database opened with sdkdb and reads a
// row back as it was written.
func roundTrip(t *testing.T, d sdk.Database) {
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
	serverURL := postgresURL(t)
	admin, err := sdkdb.Open(sdk.Database{Driver: "postgres", DSN: serverURL})
	require.NoError(t, err)
	t.Cleanup(func() { sdkdb.Close(admin) })

	schema := "sdkdb_t_" + randomHex(6)
	require.NoError(t, admin.Exec("CREATE SCHEMA ?", clause.Table{Name: schema}).Error)
	t.Cleanup(func() {
		assert.NoError(t, admin.Exec("DROP SCHEMA ? CASCADE", clause.Table{Name: schema}).Error)
	})

	roundTrip(t, sdk.Database{Driver: "postgres", DSN: withSearchPath(t, serverURL, schema), Schema: schema})

	// The table landed in the module's schema, not in public.
	var tables []string
	require.NoError(t, admin.Raw("SELECT table_schema FROM information_schema.tables WHERE table_name = 'notes'").Scan(&tables).Error)
	assert.Equal(t, []string{schema}, tables)
}

func TestOpenUnknownDriver(t *testing.T) {
	for _, driver := range []string{"", "mysql"} {
		t.Run("driver="+driver, func(t *testing.T) {
			_, err := sdkdb.Open(sdk.Database{Driver: driver, DSN: "x"})
			assert.ErrorContains(t, err, "unsupported database driver")
		})
	}
}

// postgresURL returns DATABASE_URL when the server answers. With
// CHACC_REQUIRE_SERVICES=1 a missing or unreachable server fails the test;
// otherwise it skips it.
func postgresURL(t *testing.T) string {
	t.Helper()
	required := os.Getenv("CHACC_REQUIRE_SERVICES") == "1"
	serverURL := os.Getenv("DATABASE_URL")
	if serverURL == "" {
		if required {
			t.Fatal("CHACC_REQUIRE_SERVICES=1 but DATABASE_URL is not set")
		}
		t.Skip("DATABASE_URL is not set; skipping Postgres")
	}
	db, err := sdkdb.Open(sdk.Database{Driver: "postgres", DSN: serverURL})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = db.WithContext(ctx).Exec("SELECT 1").Error
		sdkdb.Close(db)
	}
	if err != nil {
		if required {
			t.Fatalf("CHACC_REQUIRE_SERVICES=1 but Postgres at DATABASE_URL is unreachable: %v", err)
		}
		t.Skipf("Postgres at DATABASE_URL is unreachable; skipping: %v", err)
	}
	return serverURL
}

// withSearchPath sets the search_path of a postgres:// URL the way the core
// does, through the libpq "options" parameter.
func withSearchPath(t *testing.T, rawURL, schema string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("options", "-c search_path="+schema)
	// libpq does not decode '+' as a space.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
