package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// hostLogHandler sends each record to the core's Host.Log; without a host,
// or when the call fails, it writes the line to stderr, which the core also
// captures.
type hostLogHandler struct {
	host   modulev1.HostClient
	module string
	level  slog.Level
	attrs  []slog.Attr
	group  string
}

func newHostLogHandler(host modulev1.HostClient, module string, level slog.Level) *hostLogHandler {
	return &hostLogHandler{host: host, module: module, level: level}
}

func (h *hostLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *hostLogHandler) Handle(ctx context.Context, r slog.Record) error {
	attrs := make(map[string]string, len(h.attrs)+r.NumAttrs())
	add := func(a slog.Attr) {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		attrs[key] = a.Value.Resolve().String()
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	level := "info"
	switch {
	case r.Level >= slog.LevelError:
		level = "error"
	case r.Level >= slog.LevelWarn:
		level = "warn"
	case r.Level < slog.LevelInfo:
		level = "debug"
	}
	reqID := RequestFrom(ctx).ID
	if h.host != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, err := h.host.Log(cctx, &modulev1.LogRequest{Level: level, Message: r.Message, Attrs: attrs, RequestId: reqID})
		if err == nil {
			return nil
		}
	}
	fmt.Fprintf(os.Stderr, "%s %s %s %v request_id=%s\n", r.Time.Format(time.RFC3339), level, r.Message, attrs, reqID)
	return nil
}

func (h *hostLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *hostLogHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
