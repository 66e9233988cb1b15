package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// records decodes JSON lines.
func records(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		out = append(out, m)
	}
	return out
}

func TestNewModes(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "production", "info").Info("hello", "k", 1)
	New(&buf, "production", "info").Debug("hidden")
	recs := records(t, &buf)
	require.Len(t, recs, 1)
	assert.Equal(t, "hello", recs[0]["msg"])

	buf.Reset()
	New(&buf, "development", "debug").Debug("shown", "k", 1)
	assert.Contains(t, buf.String(), "level=DEBUG msg=shown k=1")
}

func TestRequestIDFromContext(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "production", "debug")
	ctx := WithRequestID(context.Background(), "req-1")
	log.InfoContext(ctx, "with context")
	log.Info("without context")
	log.InfoContext(ctx, "explicit", "request_id", "other")
	log.With("request_id", "bound").InfoContext(ctx, "bound")
	log.WithGroup("g").InfoContext(ctx, "grouped", "a", 1)

	recs := records(t, &buf)
	require.Len(t, recs, 5)
	assert.Equal(t, "req-1", recs[0]["request_id"])
	assert.NotContains(t, recs[1], "request_id")
	assert.Equal(t, "other", recs[2]["request_id"], "an explicit id is not duplicated")
	assert.Equal(t, "bound", recs[3]["request_id"])
	assert.NotContains(t, buf.String(), `"request_id":"req-1","request_id"`)
	assert.Equal(t, "req-1", recs[4]["g"].(map[string]any)["request_id"])
	assert.Equal(t, "", RequestID(context.Background()))
}

func TestLineLogger(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		level   string
		msg     string
		attrs   map[string]any
		without []string // values the record must not repeat
	}{
		{name: "plain", line: "listening on 1234", level: "INFO", msg: "listening on 1234"},
		{name: "slog JSON", line: `{"time":"2026-01-01T00:00:00Z","level":"WARN","msg":"slow query","ms":812,"module":"spoof"}`,
			level: "WARN", msg: "slow query", attrs: map[string]any{"ms": 812.0, "module": "hello"}, without: []string{"2026-01-01T00:00:00Z"}},
		{name: "hclog JSON", line: `{"@level":"error","@message":"boom","@timestamp":"x","n":1}`, level: "ERROR", msg: "boom", attrs: map[string]any{"n": 1.0}},
		{name: "hclog text", line: "2026-01-02T15:04:05.000Z [WARN]  module: dial failed", level: "WARN", msg: "2026-01-02T15:04:05.000Z [WARN]  module: dial failed"},
		{name: "SDK fallback", line: "2026-01-02T15:04:05Z error request failed map[path:/x] request_id=abc", level: "ERROR",
			msg: "request failed map[path:/x]", attrs: map[string]any{"request_id": "abc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			LineLogger(New(&buf, "production", "debug"), "module", "hello", "stream", "stderr")(tc.line)
			recs := records(t, &buf)
			require.Len(t, recs, 1)
			r := recs[0]
			assert.Equal(t, tc.level, r["level"])
			assert.Equal(t, tc.msg, r["msg"])
			assert.Equal(t, "hello", r["module"])
			assert.Equal(t, "stderr", r["stream"])
			for k, v := range tc.attrs {
				assert.Equal(t, v, r[k], k)
			}
			for _, v := range tc.without {
				assert.NotContains(t, buf.String(), v)
			}
		})
	}

	t.Run("panic and its trace are errors, one record per line", func(t *testing.T) {
		var buf bytes.Buffer
		lines := LineLogger(New(&buf, "production", "debug"), "module", "hello")
		lines("starting")
		lines("panic: oops")
		lines("")
		lines("goroutine 1 [running]:")
		lines("main.main()")
		recs := records(t, &buf)
		require.Len(t, recs, 5)
		assert.Equal(t, "INFO", recs[0]["level"])
		for _, r := range recs[1:] {
			assert.Equal(t, "ERROR", r["level"])
			assert.Equal(t, "hello", r["module"])
		}
		assert.Equal(t, "goroutine 1 [running]:", recs[3]["msg"])
	})
}

func TestContextHandlerEnabled(t *testing.T) {
	h := NewContextHandler(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	assert.False(t, h.Enabled(context.Background(), slog.LevelInfo))
	assert.True(t, h.Enabled(context.Background(), slog.LevelError))
}
