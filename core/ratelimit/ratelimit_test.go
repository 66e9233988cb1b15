package ratelimit

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"100/1m": {100, time.Minute}, "10/5m": {10, 5 * time.Minute}, "5/s": {5, time.Second},
		" 7 / h ": {7, time.Hour}, "off": {}, "0": {},
	} {
		got, err := ParseRate(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "100", "x/1m", "-1/1m", "10/1ms", "10/soon", "10/"} {
		_, err := ParseRate(bad)
		assert.Error(t, err, bad)
	}
}

// redisURL returns the test Redis, or skips (fails under
// CHACC_REQUIRE_SERVICES=1) when there is none.
func redisURL(t *testing.T) string {
	u := os.Getenv("REDIS_URL")
	if u == "" {
		if os.Getenv("CHACC_REQUIRE_SERVICES") == "1" {
			t.Fatal("REDIS_URL is not set and CHACC_REQUIRE_SERVICES=1")
		}
		t.Skip("REDIS_URL is not set; skipping the Redis store")
	}
	return u
}

// testPrefix is a key prefix of this run alone: Redis keeps state between
// runs.
func testPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "chacc-test-" + hex.EncodeToString(b)
}

func TestCounts(t *testing.T) {
	stores := map[string]Config{"memory": {Prefix: testPrefix()}}
	if os.Getenv("REDIS_URL") != "" || os.Getenv("CHACC_REQUIRE_SERVICES") == "1" {
		stores["redis"] = Config{Storage: redisURL(t), Prefix: testPrefix()}
	}
	for name, cfg := range stores {
		t.Run(name, func(t *testing.T) {
			l, err := New(t.Context(), cfg)
			require.NoError(t, err)
			defer l.Close()
			assert.Equal(t, name, l.Kind())
			r := Rate{Limit: 3, Period: time.Minute}
			for i := 1; i <= 3; i++ {
				res, err := l.Take(t.Context(), "global:1.2.3.4", r)
				require.NoError(t, err)
				assert.False(t, res.Reached, "request %d", i)
				assert.Equal(t, int64(3-i), res.Remaining)
				assert.Equal(t, int64(3), res.Limit)
				assert.WithinDuration(t, time.Now().Add(time.Minute), res.Reset, 5*time.Second)
			}
			res, err := l.Take(t.Context(), "global:1.2.3.4", r)
			require.NoError(t, err)
			assert.True(t, res.Reached)
			// Another client has its own count.
			res, err = l.Take(t.Context(), "global:5.6.7.8", r)
			require.NoError(t, err)
			assert.False(t, res.Reached)
		})
	}
}

// Two limiters on one Redis (two cores) share one count.
func TestRedisShared(t *testing.T) {
	u := redisURL(t)
	prefix := testPrefix()
	a, err := New(t.Context(), Config{Storage: u, Prefix: prefix})
	require.NoError(t, err)
	defer a.Close()
	b, err := New(t.Context(), Config{Storage: u, Prefix: prefix})
	require.NoError(t, err)
	defer b.Close()
	r := Rate{Limit: 4, Period: time.Minute}
	for i := 0; i < 2; i++ {
		_, err := a.Take(t.Context(), "k", r)
		require.NoError(t, err)
		_, err = b.Take(t.Context(), "k", r)
		require.NoError(t, err)
	}
	res, err := a.Take(t.Context(), "k", r)
	require.NoError(t, err)
	assert.True(t, res.Reached, "the fifth request across both is over the limit")
}

func TestBadStorage(t *testing.T) {
	_, err := New(t.Context(), Config{Storage: "memcached://x"})
	assert.ErrorContains(t, err, "neither memory nor")
	_, err = New(t.Context(), Config{Storage: "redis://127.0.0.1:1/0"})
	assert.Error(t, err, "an unreachable Redis fails at start-up")
}
