package config

import (
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
}

func TestParse(t *testing.T) {
	c, err := load(env(map[string]string{
		"CHACC_MAX_BODY_BYTES": "2MiB", "CHACC_MAX_UPLOAD_BYTES": "1000", "CHACC_DRAIN_TIMEOUT": "5s",
		"CHACC_BOOTSTRAP_MODULES": " a.chacc, dist/*.chacc ,,", "CHACC_MODE": "production",
	}))
	require.NoError(t, err)
	assert.Equal(t, int64(2<<20), c.MaxBodyBytes)
	assert.Equal(t, int64(1000), c.MaxUploadBytes)
	assert.Equal(t, 5*time.Second, c.DrainTimeout)
	assert.Equal(t, []string{"a.chacc", "dist/*.chacc"}, c.BootstrapModules)
	assert.Equal(t, "production", c.Mode)
}

func TestInvalid(t *testing.T) {
	for name, kv := range map[string]map[string]string{
		"mode":     {"CHACC_MODE": "staging"},
		"size":     {"CHACC_MAX_BODY_BYTES": "ten"},
		"negative": {"CHACC_MAX_BODY_BYTES": "-1"},
		"duration": {"CHACC_DRAIN_TIMEOUT": "soon"},
		"integer":  {"CHACC_RESTART_MAX": "0"},
		"level":    {"CHACC_LOG_LEVEL": "loud"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(env(kv))
			assert.Error(t, err)
		})
	}
}
