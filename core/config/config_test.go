package config

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestDefaults(t *testing.T) {
	c, err := load(env(nil))
	require.NoError(t, err)
	assert.Equal(t, ":8085", c.Addr)
	assert.Equal(t, "development", c.Mode)
	assert.Equal(t, int64(10<<20), c.MaxBodyBytes)
	assert.Equal(t, 5, c.RestartMax)
	assert.Equal(t, 30*time.Second, c.DrainTimeout)
	assert.Empty(t, c.BootstrapModules)
	assert.Equal(t, "100/1m0s", c.RateLimit.String())
	assert.Equal(t, "memory", c.RateLimitStorage)
	assert.Empty(t, c.TrustedProxies)
	assert.Equal(t, 30*time.Second, c.AuthCacheTTL)
	assert.Equal(t, "mux", c.Bridge)
	assert.Empty(t, c.PprofAddr, "profiles are not served unless asked for")
}

func TestRateAndProxies(t *testing.T) {
	c, err := load(env(map[string]string{
		"CHACC_RATE_LIMIT": "10/5m", "CHACC_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,::1",
		"RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379/0",
	}))
	require.NoError(t, err)
	assert.Equal(t, int64(10), c.RateLimit.Limit)
	assert.Equal(t, 5*time.Minute, c.RateLimit.Period)
	require.Len(t, c.TrustedProxies, 3)
	assert.Equal(t, "10.0.0.0/8", c.TrustedProxies[0].String())
	assert.Equal(t, "192.168.1.7/32", c.TrustedProxies[1].String())
	assert.Equal(t, "::1/128", c.TrustedProxies[2].String())
	assert.Equal(t, "redis://127.0.0.1:6379/0", c.RateLimitStorage)

	c, err = load(env(map[string]string{"CHACC_RATE_LIMIT": "off"}))
	require.NoError(t, err)
	assert.True(t, c.RateLimit.IsZero())
}

func TestParse(t *testing.T) {
	c, err := load(env(map[string]string{
		"CHACC_MAX_BODY_BYTES": "2MiB", "CHACC_MAX_UPLOAD_BYTES": "1000", "CHACC_DRAIN_TIMEOUT": "5s",
		"CHACC_BOOTSTRAP_MODULES": " a.chacc, dist/*.chacc ,,", "CHACC_MODE": "production",
		"CHACC_BRIDGE": "conns", "CHACC_PPROF_ADDR": "127.0.0.1:6060",
	}))
	require.NoError(t, err)
	assert.Equal(t, int64(2<<20), c.MaxBodyBytes)
	assert.Equal(t, int64(1000), c.MaxUploadBytes)
	assert.Equal(t, 5*time.Second, c.DrainTimeout)
	assert.Equal(t, []string{"a.chacc", "dist/*.chacc"}, c.BootstrapModules)
	assert.Equal(t, "production", c.Mode)
	assert.Equal(t, "conns", c.Bridge)
	assert.Equal(t, "127.0.0.1:6060", c.PprofAddr)
}

func TestInvalid(t *testing.T) {
	for name, kv := range map[string]map[string]string{
		"mode":     {"CHACC_MODE": "staging"},
		"size":     {"CHACC_MAX_BODY_BYTES": "ten"},
		"negative": {"CHACC_MAX_BODY_BYTES": "-1"},
		"duration": {"CHACC_DRAIN_TIMEOUT": "soon"},
		"integer":  {"CHACC_RESTART_MAX": "0"},
		"level":    {"CHACC_LOG_LEVEL": "loud"},
		"rate":     {"CHACC_RATE_LIMIT": "lots"},
		"period":   {"CHACC_RATE_LIMIT": "10/1ms"},
		"proxies":  {"CHACC_TRUSTED_PROXIES": "10.0.0.0/33"},
		"ttl":      {"CHACC_AUTH_CACHE_TTL": "-1s"},
		"admin":    {"CHACC_ADMIN_TOKEN": "short"},
		"bridge":   {"CHACC_BRIDGE": "pipes"},
		"pprof":    {"CHACC_PPROF_ADDR": "6060"},
		"no port":  {"CHACC_PPROF_ADDR": "localhost:"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(env(kv))
			assert.Error(t, err)
		})
	}
}

func TestGoMaxProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	c, err := load(env(nil))
	require.NoError(t, err)
	assert.Equal(t, 2, c.GoMaxProcs, "half of 3 CPUs, rounded up")
	assert.Equal(t, 2, c.ModuleGoMaxProcs)

	runtime.GOMAXPROCS(1)
	c, err = load(env(nil))
	require.NoError(t, err)
	assert.Equal(t, 1, c.GoMaxProcs)
	assert.Equal(t, 1, c.ModuleGoMaxProcs)

	// Go's own variable governs the core; modules still get their share.
	runtime.GOMAXPROCS(4)
	c, err = load(env(map[string]string{"GOMAXPROCS": "4"}))
	require.NoError(t, err)
	assert.Equal(t, 0, c.GoMaxProcs)
	assert.Equal(t, 2, c.ModuleGoMaxProcs)

	c, err = load(env(map[string]string{"GOMAXPROCS": "4", "CHACC_GOMAXPROCS": "3", "CHACC_MODULE_GOMAXPROCS": "0"}))
	require.NoError(t, err)
	assert.Equal(t, 3, c.GoMaxProcs)
	assert.Equal(t, 0, c.ModuleGoMaxProcs, "0: Go's default")

	refused(t, []string{"CHACC_MODULE_GOMAXPROCS", "CHACC_GOMAXPROCS"}, "-1", "two", "1025", "1.5")
}

// refused checks that each of names set to each value fails to load, with
// an error naming the variable.
func refused(t *testing.T, names []string, values ...string) {
	t.Helper()
	for _, v := range values {
		for _, name := range names {
			_, err := load(env(map[string]string{name: v}))
			assert.ErrorContains(t, err, name, v)
		}
	}
}

func TestGOGC(t *testing.T) {
	c, err := load(env(nil))
	require.NoError(t, err)
	assert.Equal(t, DefaultGOGC, c.GOGC)
	assert.Equal(t, DefaultGOGC, c.ModuleGOGC)

	// Go's own variable governs the core; modules keep chacc's default.
	c, err = load(env(map[string]string{"GOGC": "150"}))
	require.NoError(t, err)
	assert.Equal(t, 0, c.GOGC)
	assert.Equal(t, DefaultGOGC, c.ModuleGOGC)

	c, err = load(env(map[string]string{"GOGC": "150", "CHACC_GOGC": "200", "CHACC_MODULE_GOGC": "0"}))
	require.NoError(t, err)
	assert.Equal(t, 200, c.GOGC)
	assert.Equal(t, 0, c.ModuleGOGC, "0: Go's default")

	refused(t, []string{"CHACC_GOGC", "CHACC_MODULE_GOGC"}, "-1", "off", "100001", "1.5")
}
