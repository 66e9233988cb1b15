package sdktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/chacc/chacc/sdk"
)

// Postgres returns a module namespace for [Options.Database] on the Postgres
// server of DATABASE_URL, made as the core makes one: a fresh schema, which
// the DSN's search_path selects. The schema is dropped when the test ends.
//
// Without DATABASE_URL, or with the server unreachable, Postgres skips the
// test, or fails it when CHACC_REQUIRE_SERVICES=1 (as CI sets).
func Postgres(t testing.TB) *sdk.Database {
	t.Helper()
	required := os.Getenv("CHACC_REQUIRE_SERVICES") == "1"
	serverURL := os.Getenv("DATABASE_URL")
	if serverURL == "" {
		if required {
			t.Fatal("sdktest: CHACC_REQUIRE_SERVICES=1 but DATABASE_URL is not set")
		}
		t.Skip("sdktest: DATABASE_URL is not set; skipping Postgres")
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal("sdktest: DATABASE_URL is not a valid URL") // it may hold a password
	}
	schema := "sdktest_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := withServer(ctx, serverURL, "CREATE SCHEMA ?", schema); err != nil {
		if required {
			t.Fatalf("sdktest: CHACC_REQUIRE_SERVICES=1 but Postgres at DATABASE_URL is unusable: %v", err)
		}
		t.Skipf("sdktest: Postgres at DATABASE_URL is unusable; skipping: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := withServer(ctx, serverURL, "DROP SCHEMA IF EXISTS ? CASCADE", schema); err != nil {
			t.Errorf("sdktest: drop schema %s: %v", schema, err)
		}
	})

	q := u.Query()
	q.Set("options", strings.TrimSpace(q.Get("options")+" -c search_path="+schema))
	// libpq does not decode '+' as a space; Encode writes a literal '+' as
	// %2B, so every '+' left is a space.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return &sdk.Database{Driver: "postgres", DSN: u.String(), Schema: schema}
}

// withServer runs one statement about schema on a short-lived connection.
func withServer(ctx context.Context, serverURL, stmt, schema string) error {
	db, err := gorm.Open(postgres.Open(serverURL), &gorm.Config{Logger: logger.Discard, DisableAutomaticPing: true})
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	return db.WithContext(ctx).Exec(stmt, clause.Table{Name: schema}).Error
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
