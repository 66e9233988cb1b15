package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/archive"
)

func TestTrustedKeys(t *testing.T) {
	_, k1, err := archive.GenerateKey()
	require.NoError(t, err)
	_, k2, err := archive.GenerateKey()
	require.NoError(t, err)
	_, k3, err := archive.GenerateKey()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "trusted.pub")
	require.NoError(t, os.WriteFile(file, []byte("# release keys\n"+archive.FormatPublicKey(k2)+"\n\n"+archive.FormatPublicKey(k3)+"\n"), 0o644))

	c, err := load(env(nil))
	require.NoError(t, err)
	assert.Empty(t, c.TrustedKeys)
	assert.False(t, c.RequireSigned)

	c, err = load(env(map[string]string{
		"CHACC_TRUSTED_KEYS":   archive.FormatPublicKey(k1) + " , " + file,
		"CHACC_REQUIRE_SIGNED": "true",
	}))
	require.NoError(t, err)
	require.Len(t, c.TrustedKeys, 3)
	assert.True(t, k1.Equal(c.TrustedKeys[0]))
	assert.True(t, k2.Equal(c.TrustedKeys[1]))
	assert.True(t, k3.Equal(c.TrustedKeys[2]))
	assert.True(t, c.RequireSigned)

	empty := filepath.Join(t.TempDir(), "empty.pub")
	require.NoError(t, os.WriteFile(empty, []byte("# nothing yet\n"), 0o644))
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"required without keys", map[string]string{"CHACC_REQUIRE_SIGNED": "true"}, "CHACC_REQUIRE_SIGNED=true needs at least one key in CHACC_TRUSTED_KEYS"},
		{"not a bool", map[string]string{"CHACC_REQUIRE_SIGNED": "yes please"}, `CHACC_REQUIRE_SIGNED: "yes please" is neither true nor false`},
		{"bad key", map[string]string{"CHACC_TRUSTED_KEYS": "ed25519:AAAA"}, "CHACC_TRUSTED_KEYS: \"ed25519:AAAA\" is not ed25519:"},
		{"missing file", map[string]string{"CHACC_TRUSTED_KEYS": "/nonexistent/keys"}, `CHACC_TRUSTED_KEYS: "/nonexistent/keys" is neither a key`},
		{"file without keys", map[string]string{"CHACC_TRUSTED_KEYS": empty}, "holds no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(env(tc.env))
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
}
