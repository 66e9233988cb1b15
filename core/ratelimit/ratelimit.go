// Package ratelimit counts requests per client with github.com/ulule/limiter,
// in memory or in Redis (so that several cores share one count).
package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	memstore "github.com/ulule/limiter/v3/drivers/store/memory"
	redisstore "github.com/ulule/limiter/v3/drivers/store/redis"
)

// Rate is a number of requests per period. The zero Rate means no limit.
type Rate struct {
	Limit  int64
	Period time.Duration
}

// IsZero reports whether r sets no limit.
func (r Rate) IsZero() bool { return r.Limit <= 0 || r.Period <= 0 }

func (r Rate) String() string {
	if r.IsZero() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.Limit, r.Period)
}

// ParseRate reads "100/1m", "10/5m", "5/s" (a bare unit means one of it),
// or "off".
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not a rate such as 100/1m or off", s)
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
	if err != nil || limit <= 0 {
		return Rate{}, fmt.Errorf("%q: %q is not a positive count", s, n)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d < time.Second {
		return Rate{}, fmt.Errorf("%q: %q is not a period of a second or more such as 1m", s, per)
	}
	return Rate{Limit: limit, Period: d}, nil
}

// Config says where counts live.
type Config struct {
	// Storage is "memory" (or empty) or a redis:// or rediss:// URL.
	Storage string
	// Prefix starts every key, so that several installations (or test runs)
	// can share one Redis.
	Prefix string
}

// Limiter counts requests.
type Limiter struct {
	store limiter.Store
	close func() error
	kind  string
}

// New opens the store. A Redis store is pinged first, so a bad URL fails at
// start-up rather than on the first request.
func New(ctx context.Context, cfg Config) (*Limiter, error) {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "chacc"
	}
	opts := limiter.StoreOptions{Prefix: prefix + ":rl", CleanUpInterval: time.Minute, MaxRetry: 3}
	switch {
	case cfg.Storage == "" || cfg.Storage == "memory":
		return &Limiter{store: memstore.NewStoreWithOptions(opts), close: func() error { return nil }, kind: "memory"}, nil
	case strings.HasPrefix(cfg.Storage, "redis://") || strings.HasPrefix(cfg.Storage, "rediss://"):
		ropts, err := redis.ParseURL(cfg.Storage)
		if err != nil {
			return nil, fmt.Errorf("rate limit storage: %w", err)
		}
		client := redis.NewClient(ropts)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := client.Ping(pctx).Err(); err != nil {
			client.Close()
			return nil, fmt.Errorf("rate limit storage: redis at %s: %w", ropts.Addr, err)
		}
		st, err := redisstore.NewStoreWithOptions(client, opts)
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("rate limit storage: %w", err)
		}
		return &Limiter{store: st, close: client.Close, kind: "redis"}, nil
	default:
		return nil, fmt.Errorf("rate limit storage %q is neither memory nor a redis:// URL", cfg.Storage)
	}
}

// Kind is "memory" or "redis".
func (l *Limiter) Kind() string { return l.kind }

// Close releases the store.
func (l *Limiter) Close() error { return l.close() }

// Result is the state of one count after a request.
type Result struct {
	Limit     int64
	Remaining int64
	// Reset is when the count starts again.
	Reset   time.Time
	Reached bool
}

// Take counts one request against key at rate r.
func (l *Limiter) Take(ctx context.Context, key string, r Rate) (Result, error) {
	c, err := l.store.Get(ctx, key, limiter.Rate{Formatted: r.String(), Period: r.Period, Limit: r.Limit})
	if err != nil {
		return Result{}, err
	}
	return Result{Limit: c.Limit, Remaining: c.Remaining, Reset: time.Unix(c.Reset, 0), Reached: c.Reached}, nil
}
