package instance

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
)

// pluginLogLine returns the function that logs go-plugin's own records
// (hclog JSON lines, one per line) to l as slog records. go-plugin also
// re-logs each line of the module's stderr under the logger
// "go-plugin.<executable>"; those are skipped, as Config.Stderr has every
// one of them already.
func pluginLogLine(l *slog.Logger, executable string) func(string) {
	echo := "go-plugin." + executable
	return func(line string) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			l.Warn(line)
			return
		}
		if rec["@module"] == echo {
			return
		}
		level := slog.LevelWarn
		switch strings.ToLower(stringOf(rec["@level"])) {
		case "trace", "debug":
			level = slog.LevelDebug
		case "info":
			level = slog.LevelInfo
		case "error":
			level = slog.LevelError
		}
		msg := stringOf(rec["@message"])
		keys := make([]string, 0, len(rec))
		for k := range rec {
			if !strings.HasPrefix(k, "@") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		attrs := []any{"logger", stringOf(rec["@module"])}
		for _, k := range keys {
			attrs = append(attrs, k, rec[k])
		}
		l.Log(context.Background(), level, msg, attrs...)
	}
}

func stringOf(v any) string { s, _ := v.(string); return s }
