package e2e

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/store/storetest"
)

// signingKey is a key pair written by `chacc module keygen`.
type signingKey struct {
	priv, pub string // file paths
	id        string
}

// keygen makes a key pair with the real binary.
func keygen(t *testing.T, name string) signingKey {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), name)
	r := runChacc(t, "", nil, "module", "keygen", "-o", prefix)
	require.Equal(t, 0, r.code, r.stderr)
	text, err := os.ReadFile(prefix + ".pub")
	require.NoError(t, err)
	pub, err := archive.ParsePublicKey(string(text))
	require.NoError(t, err)
	k := signingKey{priv: prefix + ".key", pub: prefix + ".pub", id: archive.KeyID(pub)}
	require.Contains(t, r.stdout, "key id:      "+k.id+"\n")
	return k
}

// signed returns a copy of the archive at src, signed with the real binary.
func signed(t *testing.T, src string, k signingKey, extra ...zipFile) []byte {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	if len(extra) > 0 {
		data = zipOf(t, append(zipEntries(t, data), extra...)...)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	require.NoError(t, os.WriteFile(dst, data, 0o644))
	r := runChacc(t, "", nil, "module", "sign", "--key", k.priv, dst)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "signed "+dst+" with key "+k.id+"\n", r.stdout)
	out, err := os.ReadFile(dst)
	require.NoError(t, err)
	return out
}

// zipEntries reads every entry of a zip, in order.
func zipEntries(t *testing.T, data []byte) []zipFile {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	var out []zipFile
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		body, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		out = append(out, zipFile{name: f.Name, data: body, mode: f.Mode()})
	}
	return out
}

// rezip rebuilds an archive after fn edits its entries.
func rezip(t *testing.T, data []byte, fn func([]zipFile) []zipFile) []byte {
	t.Helper()
	return zipOf(t, fn(zipEntries(t, data))...)
}

// signatureOf returns the "signature" object of a module, as listed by
// GET /modules/{name} and GET /modules/.
func (s *server) signatureOf(name string) (one, listed map[string]any) {
	s.t.Helper()
	r := s.get("/modules/" + name)
	require.Equal(s.t, 200, r.status, "%s", r.body)
	one, _ = r.json(s.t)["signature"].(map[string]any)
	for _, m := range s.get("/modules/").json(s.t)["modules"].([]any) {
		if m := m.(map[string]any); m["name"] == name {
			listed, _ = m["signature"].(map[string]any)
		}
	}
	return one, listed
}

func TestSignatureRequired(t *testing.T) {
	trusted, stranger := keygen(t, "trusted"), keygen(t, "stranger")
	good := signed(t, helloV1, trusted)
	untrusted := signed(t, helloV1, stranger)
	withNotes := signed(t, helloV1, trusted, zipFile{name: "docs/notes.txt", data: []byte("notes"), mode: 0o644})
	unsigned, err := os.ReadFile(helloV1)
	require.NoError(t, err)

	tampered := rezip(t, good, func(fs []zipFile) []zipFile {
		for i := range fs {
			if fs[i].name == "module_meta.json" {
				fs[i].data = bytes.Replace(fs[i].data, []byte(`"author":"chacc"`), []byte(`"author":"mallory"`), 1)
				require.Contains(t, string(fs[i].data), "mallory")
			}
		}
		return fs
	})
	added := rezip(t, good, func(fs []zipFile) []zipFile {
		return append(fs, zipFile{name: "extra.txt", data: []byte("hi"), mode: 0o644})
	})
	removed := rezip(t, withNotes, func(fs []zipFile) []zipFile {
		var out []zipFile
		for _, f := range fs {
			if f.name != "docs/notes.txt" {
				out = append(out, f)
			}
		}
		return out
	})
	garbage := rezip(t, good, func(fs []zipFile) []zipFile {
		for i := range fs {
			if fs[i].name == "module.sig" {
				fs[i].data = []byte("not a signature")
			}
		}
		return fs
	})

	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		// The trusted key comes from a file, the stranger's nowhere.
		s := startedServer(t, b, "CHACC_TRUSTED_KEYS="+trusted.pub, "CHACC_REQUIRE_SIGNED=true")

		for _, tc := range []struct {
			name      string
			data      []byte
			status    int
			errorCode string
			detail    string
		}{
			{"unsigned", unsigned, 403, "SIGNATURE_REQUIRED", "Archive is not signed; this core requires signed modules"},
			{"untrusted signer", untrusted, 403, "UNTRUSTED_SIGNER", "Archive is signed by key " + stranger.id + ", which is not in CHACC_TRUSTED_KEYS."},
			{"file changed after signing", tampered, 400, "SIGNATURE_INVALID", "the archive was modified after it was signed by key " + trusted.id + ": changed 'module_meta.json'."},
			{"file added after signing", added, 400, "SIGNATURE_INVALID", "added 'extra.txt'"},
			{"file removed after signing", removed, 400, "SIGNATURE_INVALID", "removed 'docs/notes.txt'"},
			{"garbage signature", garbage, 400, "SIGNATURE_INVALID", "'module.sig' is not a chacc signature"},
		} {
			r := s.upload("hello-0.1.0.chacc", tc.data, "")
			assert.Equal(t, tc.status, r.status, "%s: %s", tc.name, r.body)
			body := r.json(t)
			assert.Equal(t, tc.errorCode, body["error_code"], tc.name)
			assert.Contains(t, body["detail"], tc.detail, tc.name)
			// Nothing was written: no record, no archive, no extracted file.
			assert.Equal(t, 404, s.get("/modules/hello").status, tc.name)
			assert.Empty(t, s.dirEntries("installed"), tc.name)
			assert.Empty(t, s.dirEntries("loaded"), tc.name)
		}
		// Each refusal is audited.
		entries := s.get("/audit?module=hello&action=install").json(t)["entries"].([]any)
		require.Len(t, entries, 6)
		for _, e := range entries {
			assert.Equal(t, "failed", e.(map[string]any)["outcome"])
		}

		// Signed by the trusted key: installed, and the signer shown.
		r := s.upload("hello-0.1.0.chacc", good, "")
		require.Equal(t, 201, r.status, "%s", r.body)
		assert.Equal(t, map[string]any{"signed": true, "key_id": trusted.id, "trusted": true}, r.json(t)["module"].(map[string]any)["signature"])
		assert.Equal(t, 200, s.get("/hello/ping").status)
		want := map[string]any{"signed": true, "key_id": trusted.id, "trusted": true}
		one, listed := s.signatureOf("hello")
		assert.Equal(t, want, one)
		assert.Equal(t, want, listed)
		r2 := s.cli("module", "list")
		require.Equal(t, 0, r2.code, r2.stderr)
		assert.Equal(t, []string{trusted.id, "(trusted)"}, tableRows(r2.stdout)[1][6:])

		// The signer is stored with the module: a restarted core still shows it.
		s.stop()
		s.start()
		s.waitStarted()
		one, _ = s.signatureOf("hello")
		assert.Equal(t, want, one)

		// An archive signed with several files verifies too (and replaces).
		r = s.upload("hello-0.1.0.chacc", withNotes, "?force=true")
		require.Equal(t, 200, r.status, "%s", r.body)
	})
}

func TestSignatureOptional(t *testing.T) {
	trusted, stranger := keygen(t, "trusted"), keygen(t, "stranger")
	trustedKey, err := os.ReadFile(trusted.pub)
	require.NoError(t, err)
	byStranger := signed(t, helloV1, stranger)
	byTrusted := signed(t, helloV2, trusted)
	tampered := rezip(t, byStranger, func(fs []zipFile) []zipFile {
		for i := range fs {
			if strings.HasPrefix(fs[i].name, "bin/") {
				fs[i].data = append(fs[i].data, 0) // still a valid executable
			}
		}
		return fs
	})

	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		// The trusted key given inline, in text form.
		s := startedServer(t, b, "CHACC_TRUSTED_KEYS="+strings.TrimSpace(string(trustedKey)))

		// A broken signature is refused even when signatures are optional.
		r := s.upload("hello-0.1.0.chacc", tampered, "")
		assert.Equal(t, 400, r.status, "%s", r.body)
		assert.Equal(t, "SIGNATURE_INVALID", r.json(t)["error_code"])
		assert.Contains(t, r.json(t)["detail"], "changed 'bin/")
		assert.Equal(t, 404, s.get("/modules/hello").status)
		assert.Empty(t, s.dirEntries("installed"))

		// A valid signature by an unknown key installs, shown untrusted.
		r = s.upload("hello-0.1.0.chacc", byStranger, "")
		require.Equal(t, 201, r.status, "%s", r.body)
		one, listed := s.signatureOf("hello")
		want := map[string]any{"signed": true, "key_id": stranger.id, "trusted": false}
		assert.Equal(t, want, one)
		assert.Equal(t, want, listed)
		r2 := s.cli("module", "show", "hello")
		require.Equal(t, 0, r2.code, r2.stderr)
		assert.Contains(t, r2.stdout, "signature:       "+stranger.id+" (untrusted)\n")

		// Upgrading to a version signed by the trusted key: trusted.
		r = s.upload("hello-0.2.0.chacc", byTrusted, "")
		require.Equal(t, 200, r.status, "%s", r.body)
		one, _ = s.signatureOf("hello")
		assert.Equal(t, map[string]any{"signed": true, "key_id": trusted.id, "trusted": true}, one)

		// And back to an unsigned one: unsigned.
		r = s.upload("hello-0.1.0.chacc", mustRead(t, helloV1), "?force=true")
		require.Equal(t, 200, r.status, "%s", r.body)
		one, _ = s.signatureOf("hello")
		assert.Equal(t, map[string]any{"signed": false, "key_id": "", "trusted": false}, one)
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}
