package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

func TestGlobalRateLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b, "CHACC_RATE_LIMIT=5/1m")
		require.Equal(t, 201, s.uploadFile(helloV1).status) // 1
		for i := 2; i <= 5; i++ {
			path := "/hello/ping"
			if i%2 == 0 {
				path = "/" // core and module routes share the default count
			}
			r := s.get(path)
			require.Equal(t, 200, r.status, "request %d", i)
			assert.Equal(t, "5", r.header.Get("X-RateLimit-Limit"))
			assert.Equal(t, strconv.Itoa(5-i), r.header.Get("X-RateLimit-Remaining"))
			reset, err := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
			require.NoError(t, err)
			assert.InDelta(t, time.Now().Add(time.Minute).Unix(), reset, 70)
		}
		r := s.get("/hello/ping")
		require.Equal(t, 429, r.status)
		assert.Equal(t, "RATE_LIMITED", r.json(t)["error_code"])
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err)
		assert.True(t, retry >= 1 && retry <= 60, "Retry-After %d", retry)
		assert.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))
		assert.Equal(t, 429, s.get("/modules/").status)
		// Health probes are exempt.
		assert.Equal(t, 200, s.get("/health").status)
		assert.Equal(t, 200, s.get("/health/live").status)
		// X-Forwarded-For is not trusted by default: a spoofed one gets the
		// same count.
		assert.Equal(t, 429, s.do("GET", "/hello/ping", nil, "X-Forwarded-For", "203.0.113.9").status)
	})
}

func TestTrustedProxy(t *testing.T) {
	s := startServer(t, storetest.Backends(t)[0], "CHACC_RATE_LIMIT=2/1m", "CHACC_TRUSTED_PROXIES=127.0.0.1")
	for i := 0; i < 2; i++ {
		require.Equal(t, 200, s.do("GET", "/", nil, "X-Forwarded-For", "203.0.113.1").status)
	}
	assert.Equal(t, 429, s.do("GET", "/", nil, "X-Forwarded-For", "203.0.113.1").status)
	// Behind a trusted proxy, each client has its own count.
	assert.Equal(t, 200, s.do("GET", "/", nil, "X-Forwarded-For", "203.0.113.2").status)
	// A client cannot slip an address in front of the proxy's: the
	// right-most untrusted address counts.
	assert.Equal(t, 429, s.do("GET", "/", nil, "X-Forwarded-For", "198.51.100.7, 203.0.113.1").status)
}

// Two cores on one Redis enforce one shared count.
func TestRateLimitSharedRedis(t *testing.T) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		if os.Getenv("CHACC_REQUIRE_SERVICES") == "1" {
			t.Fatal("REDIS_URL is not set and CHACC_REQUIRE_SERVICES=1")
		}
		t.Skip("REDIS_URL is not set; skipping the shared Redis limit")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "chacc-e2e-" + hex.EncodeToString(b) // Redis keeps state between runs
	env := []string{"CHACC_RATE_LIMIT=6/1m", "RATE_LIMIT_STORAGE=" + url, "CHACC_RATE_LIMIT_PREFIX=" + prefix}
	backend := storetest.Backends(t)[0]
	a := startServer(t, backend, env...)
	c := startServer(t, backend, env...)
	a.assertLogged(t, "rate_limit_storage=redis")
	for i := 0; i < 3; i++ {
		require.Equal(t, 200, a.get("/").status, "a %d", i)
		r := c.get("/")
		require.Equal(t, 200, r.status, "c %d", i)
		assert.Equal(t, fmt.Sprint(6-2*(i+1)), r.header.Get("X-RateLimit-Remaining"))
	}
	assert.Equal(t, 429, a.get("/").status, "the seventh request, on either core, is over")
	assert.Equal(t, 429, c.get("/").status)
}
