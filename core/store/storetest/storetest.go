// Package storetest runs tests against every database the store supports:
// SQLite always, and Postgres where DATABASE_URL points at one.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/chacc/chacc/core/store"
)

// Backend is one database a test can run against.
type Backend struct {
	// Name is "sqlite" or "postgres"; use it as the subtest name.
	Name string
	// DatabaseURL is the Postgres server to create test databases on; "" for
	// SQLite.
	DatabaseURL string
}

// Backends returns SQLite always, plus Postgres when DATABASE_URL is set and
// the server answers (checked once per URL and process). With
// CHACC_REQUIRE_SERVICES=1, an unset or unreachable DATABASE_URL fails the
// test; otherwise an unreachable server is logged and left out.
func Backends(t testing.TB) []Backend {
	t.Helper()
	backends := []Backend{{Name: store.DriverSQLite}}
	required := os.Getenv("CHACC_REQUIRE_SERVICES") == "1"
	serverURL := os.Getenv("DATABASE_URL")
	if serverURL == "" {
		if required {
			t.Fatal("storetest: CHACC_REQUIRE_SERVICES=1 but DATABASE_URL is not set")
		}
		return backends
	}
	if err := reachable(serverURL); err != nil {
		if required {
			t.Fatalf("storetest: CHACC_REQUIRE_SERVICES=1 but Postgres at DATABASE_URL is unreachable: %v", err)
		}
		t.Logf("storetest: skipping Postgres, DATABASE_URL is unreachable: %v", err)
		return backends
	}
	return append(backends, Backend{Name: store.DriverPostgres, DatabaseURL: serverURL})
}

var (
	reachMu    sync.Mutex
	reachCache = map[string]error{}
)

// reachable reports whether the Postgres server at serverURL answers,
// remembering the answer so that an unreachable server costs one timeout.
func reachable(serverURL string) error {
	reachMu.Lock()
	defer reachMu.Unlock()
	if err, ok := reachCache[serverURL]; ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := withServer(ctx, serverURL, func(db *gorm.DB) error { return db.Exec("SELECT 1").Error })
	reachCache[serverURL] = err
	return err
}

// FreshPostgres creates a new database named chacc_t_<random> on the server
// of DATABASE_URL, drops it (WITH (FORCE)) when the test ends, and returns
// its URL.
func FreshPostgres(t testing.TB) string {
	t.Helper()
	return freshPostgres(t, os.Getenv("DATABASE_URL"))
}

func freshPostgres(t testing.TB, serverURL string) string {
	t.Helper()
	if serverURL == "" {
		t.Fatal("storetest: no Postgres server: DATABASE_URL is not set")
	}
	dbURL, drop, err := CreatePostgres(t.Context(), serverURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	return dbURL
}

// CreatePostgres creates a new database named chacc_t_<random> on the server
// of serverURL (a postgres:// URL) and returns its URL and a func that drops
// it, forcing off any session still connected. It is [FreshPostgres] for code
// without a testing.TB, such as TestMain.
func CreatePostgres(ctx context.Context, serverURL string) (dbURL string, drop func() error, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, errors.New("storetest: the Postgres server URL is not a valid URL")
	}
	name := "chacc_t_" + randomHex(8)
	err = withServer(ctx, serverURL, func(db *gorm.DB) error {
		return db.Exec("CREATE DATABASE ?", clause.Table{Name: name}).Error
	})
	if err != nil {
		return "", nil, fmt.Errorf("storetest: create database %s: %w", name, err)
	}
	drop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := withServer(ctx, serverURL, func(db *gorm.DB) error {
			return db.Exec("DROP DATABASE IF EXISTS ? WITH (FORCE)", clause.Table{Name: name}).Error
		})
		if err != nil {
			return fmt.Errorf("storetest: drop database %s: %w", name, err)
		}
		return nil
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// withServer runs f on a short-lived connection to serverURL.
func withServer(ctx context.Context, serverURL string, f func(*gorm.DB) error) error {
	db, err := gorm.Open(postgres.Open(serverURL), &gorm.Config{
		Logger:               logger.Discard,
		DisableAutomaticPing: true,
	})
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	return f(db.WithContext(ctx))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Open opens and migrates a fresh store for b, with DataDir in t.TempDir()
// and, for Postgres, a new database on b's server as [FreshPostgres] makes. It is closed when the test
// ends.
func Open(t testing.TB, b Backend) *store.DB {
	t.Helper()
	cfg := store.Config{DataDir: t.TempDir()}
	if b.Name == store.DriverPostgres {
		cfg.DatabaseURL = freshPostgres(t, b.DatabaseURL)
	}
	db, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}
