// Package logging is the core's log/slog setup: JSON lines in production,
// text in development, every record logged with a request's context carrying
// that request's id, and module output (stderr lines) turned into one record
// per line with the module's name.
package logging

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// New returns the core's logger writing to w: JSON in mode "production",
// text otherwise, at level ("debug", "info", "warn", "error"; default info).
func New(w io.Writer, mode, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if mode == "production" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(NewContextHandler(h))
}

type ctxKey struct{}

// WithRequestID returns ctx carrying a request id, which every record logged
// with ctx (InfoContext, LogAttrs, ...) through a [ContextHandler] gets as
// "request_id".
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID returns the request id ctx carries, "" when none.
func RequestID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// ContextHandler adds "request_id" from the context to each record that does
// not have one already.
type ContextHandler struct {
	inner slog.Handler
	// has is set when WithAttrs added a request_id.
	has bool
}

// NewContextHandler wraps h.
func NewContextHandler(h slog.Handler) *ContextHandler { return &ContextHandler{inner: h} }

// Enabled reports whether the wrapped handler handles level.
func (h *ContextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

// Handle adds the request id, then hands the record on.
func (h *ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" && !h.has {
		has := false
		r.Attrs(func(a slog.Attr) bool {
			has = a.Key == "request_id"
			return !has
		})
		if !has {
			r.AddAttrs(slog.String("request_id", id))
		}
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs returns a handler with attrs added.
func (h *ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := h.has
	for _, a := range attrs {
		has = has || a.Key == "request_id"
	}
	return &ContextHandler{inner: h.inner.WithAttrs(attrs), has: has}
}

// WithGroup returns a handler that nests later attributes under name.
func (h *ContextHandler) WithGroup(name string) slog.Handler {
	return &ContextHandler{inner: h.inner.WithGroup(name), has: h.has}
}

// LineLogger returns a function that logs each line a module writes to
// stderr as one record of log with attrs (e.g. "module", name). The level is
// read from the line where it says one: JSON lines (slog's or hclog's) give
// their level, message and fields; "[WARN]"-style and "<time> warn ..."
// lines their level; a panic or fatal error, and every line after it (the
// stack trace), is an error. Anything else is info. It may be called from
// several goroutines (a module's stdout and stderr).
func LineLogger(log *slog.Logger, attrs ...any) func(line string) {
	log = log.With(attrs...)
	var mu sync.Mutex
	inPanic := false
	return func(line string) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			inPanic = true
		}
		if inPanic {
			log.Error(line)
			return
		}
		level, msg, fields := parseLine(line)
		log.Log(context.Background(), level, msg, fields...)
	}
}

var levels = map[string]slog.Level{
	"trace": slog.LevelDebug, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError,
	"fatal": slog.LevelError, "err": slog.LevelError,
}

func parseLine(line string) (slog.Level, string, []any) {
	trimmed := strings.TrimSpace(line)
	if strings.HasPrefix(trimmed, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(trimmed), &m) == nil {
			return fromJSON(m, line)
		}
	}
	// "[WARN]  go-plugin: ..." or "2026-01-02T15:04:05.000Z [WARN] ..."
	if i := strings.Index(line, "["); i >= 0 && i < 40 {
		if j := strings.Index(line[i:], "]"); j > 0 {
			if lv, ok := levels[strings.ToLower(line[i+1:i+j])]; ok {
				return lv, line, nil
			}
		}
	}
	// The SDK's fallback: "<RFC 3339 time> <level> <message> ... request_id=<id>"
	if f := strings.SplitN(line, " ", 3); len(f) == 3 {
		if _, err := time.Parse(time.RFC3339, f[0]); err == nil {
			if lv, ok := levels[f[1]]; ok {
				msg, fields := f[2], []any(nil)
				if i := strings.LastIndex(msg, " request_id="); i >= 0 {
					if id := msg[i+len(" request_id="):]; id != "" {
						fields = append(fields, "request_id", id)
					}
					msg = msg[:i]
				}
				return lv, msg, fields
			}
		}
	}
	return slog.LevelInfo, line, nil
}

func fromJSON(m map[string]any, line string) (slog.Level, string, []any) {
	level := slog.LevelInfo
	for _, k := range []string{"level", "@level", "severity"} {
		if s, ok := m[k].(string); ok {
			if lv, ok := levels[strings.ToLower(s)]; ok {
				level = lv
			}
			delete(m, k)
		}
	}
	msg := ""
	for _, k := range []string{"msg", "@message", "message"} {
		if s, ok := m[k].(string); ok && msg == "" {
			msg = s
			delete(m, k)
		}
	}
	if msg == "" {
		return level, line, nil
	}
	// The core's own attributes (module, stream) name the source.
	for _, k := range []string{"time", "@timestamp", "timestamp", "ts", "module", "stream"} {
		delete(m, k)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		fields = append(fields, k, m[k])
	}
	return level, msg, fields
}
