package sdkdb

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm/logger"

	"github.com/chacc/chacc/sdk"
)

// TestQueryLoggerRendersOnlyWhatItLogs: the statement is rendered (fc
// called) and a record written for a failed, slow or debug-logged query,
// and for nothing else.
func TestQueryLoggerRendersOnlyWhatItLogs(t *testing.T) {
	var buf bytes.Buffer
	q := newQueryLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		log    logger.Interface
		begin  time.Time
		err    error
		logged bool
	}{
		{"fast and fine", q, time.Now(), nil, false},
		{"not found", q, time.Now(), logger.ErrRecordNotFound, false},
		{"failed", q, time.Now(), errors.New("no such table: x"), true},
		{"slow", q, time.Now().Add(-2 * SlowQuery), nil, true},
		{"debug", q.LogMode(logger.Info), time.Now(), nil, true},
		{"silent and failed", q.LogMode(logger.Silent), time.Now(), errors.New("boom"), false},
	} {
		buf.Reset()
		rendered := 0
		c.log.Trace(ctx, c.begin, func() (string, int64) { rendered++; return "SELECT 1", 1 }, c.err)
		if c.logged {
			assert.Equal(t, 1, rendered, c.name)
			assert.Contains(t, buf.String(), "SELECT 1", c.name)
		} else {
			assert.Zero(t, rendered, c.name)
			assert.Empty(t, buf.String(), c.name)
		}
	}
}

// TestQueryLogHidesArguments: a logged query shows its placeholders, not
// its arguments, both when it fails and under Debug.
func TestQueryLogHidesArguments(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	db, err := Open(sdk.Database{Driver: DriverSQLite, DSN: filepath.Join(t.TempDir(), "q.db")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = Close(db) })

	var n int
	assert.Error(t, db.Raw("SELECT count(*) FROM missing WHERE secret = ?", "hunter2").Row().Scan(&n))
	assert.Error(t, db.Table("missing").Where("secret = ?", "hunter2").Count(new(int64)).Error)
	require.NoError(t, db.Exec("CREATE TABLE notes (secret TEXT)").Error)
	require.NoError(t, db.Debug().Table("notes").Where("secret = ?", "hunter2").Count(new(int64)).Error)
	out := buf.String()
	assert.Contains(t, out, "secret = ?", out)
	assert.NotContains(t, out, "hunter2", out)
}
