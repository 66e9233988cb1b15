package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/core/store/storetest"
)

func TestLeaderLease(t *testing.T) {
	ctx := context.Background()
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			if b.Name != "postgres" {
				db := storetest.Open(t, b)
				assert.True(t, db.Leader(ctx), "the only core on a SQLite file leads")
				return
			}
			url := storetest.FreshPostgres(t)
			open := func() *store.DB {
				db, err := store.Open(ctx, store.Config{DatabaseURL: url, DataDir: t.TempDir()})
				require.NoError(t, err)
				return db
			}
			a, b := open(), open()
			defer b.Close()
			require.True(t, a.Leader(ctx))
			assert.True(t, a.Leader(ctx), "a keeps it")
			assert.False(t, b.Leader(ctx), "one leader at a time")
			require.NoError(t, a.Close()) // the leader goes away
			require.Eventually(t, func() bool { return b.Leader(ctx) }, 10*time.Second, 50*time.Millisecond)
		})
	}
}
