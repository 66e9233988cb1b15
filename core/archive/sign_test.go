package archive

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newKey returns a fresh key pair.
func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

// unsignedZip is a valid linux/amd64 archive with an openapi.json.
func unsignedZip(t *testing.T) []byte {
	t.Helper()
	return buildZip(t, append(baseEntries(fakeELF(elf.ET_EXEC, elf.EM_X86_64)),
		zentry{name: "openapi.json", body: []byte(`{"openapi":"3.0.3"}`)})...)
}

func signZip(t *testing.T, data []byte, key ed25519.PrivateKey) []byte {
	t.Helper()
	var out bytes.Buffer
	sig, err := Sign(bytes.NewReader(data), int64(len(data)), Limits{}, key, &out)
	require.NoError(t, err)
	require.True(t, sig.Signed)
	return out.Bytes()
}

// entriesOf reads every entry of a zip back, in order.
func entriesOf(t *testing.T, data []byte) []zentry {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	var out []zentry
	for _, zf := range zr.File {
		rc, err := zf.Open()
		require.NoError(t, err)
		body, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		out = append(out, zentry{name: zf.Name, body: body, mode: zf.Mode()})
	}
	return out
}

// verifyZip reads data for linux/amd64 and verifies its signature under t.
func verifyZip(t *testing.T, data []byte, trust Trust) (Signature, error) {
	t.Helper()
	a, err := readZip(data, Limits{}, "linux", "amd64")
	require.NoError(t, err)
	return a.VerifySignature(trust)
}

func sigKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func TestSignVerifyRoundTrip(t *testing.T) {
	pub, priv := newKey(t)
	unsigned := unsignedZip(t)
	signed := signZip(t, unsigned, priv)

	for _, required := range []bool{false, true} {
		sig, err := verifyZip(t, signed, Trust{Keys: []ed25519.PublicKey{pub}, Required: required})
		require.NoError(t, err)
		assert.Equal(t, Signature{Signed: true, KeyID: KeyID(pub), PublicKey: FormatPublicKey(pub), Trusted: true}, sig)
	}

	// Every original entry is kept byte for byte; module.sig is added.
	before, after := entriesOf(t, unsigned), entriesOf(t, signed)
	require.Len(t, after, len(before)+1)
	assert.Equal(t, before, after[:len(before)])
	assert.Equal(t, SignatureFile, after[len(before)].name)

	// module.sig names the key and lists every other file's hash.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(after[len(before)].body, &doc))
	assert.Equal(t, "chacc-module-signature-v1", doc["format"])
	assert.Equal(t, KeyID(pub), doc["key_id"])
	assert.Equal(t, FormatPublicKey(pub), doc["public_key"])
	assert.Equal(t, map[string]any{
		"bin/linux-amd64/hello": sha(before[1].body),
		"module_meta.json":      sha([]byte(testManifest)),
		"openapi.json":          sha([]byte(`{"openapi":"3.0.3"}`)),
	}, doc["files"])

	// Signing again replaces the signature: one module.sig, the new key.
	pub2, priv2 := newKey(t)
	resigned := signZip(t, signed, priv2)
	entries := entriesOf(t, resigned)
	n := 0
	for _, e := range entries {
		if e.name == SignatureFile {
			n++
		}
	}
	assert.Equal(t, 1, n)
	sig, err := verifyZip(t, resigned, Trust{Keys: []ed25519.PublicKey{pub, pub2}})
	require.NoError(t, err)
	assert.Equal(t, KeyID(pub2), sig.KeyID)
	assert.True(t, sig.Trusted)
}

func TestStatement(t *testing.T) {
	got := Statement(map[string]string{
		"module_meta.json":      "bb",
		"bin/linux-amd64/hello": "aa",
		"module.sig":            "ignored",
		"Z":                     "cc", // byte order: upper case first
	})
	assert.Equal(t, "chacc-module-signature-v1\ncc  Z\naa  bin/linux-amd64/hello\nbb  module_meta.json\n", string(got))
}

func TestVerifySignatureRefuses(t *testing.T) {
	pub, priv := newKey(t)
	otherPub, otherPriv := newKey(t)
	signed := signZip(t, unsignedZip(t), priv)
	trusted := Trust{Keys: []ed25519.PublicKey{pub}, Required: true}

	// mutate rebuilds the signed archive after fn changes its entries.
	mutate := func(fn func([]zentry) []zentry) []byte {
		return buildZip(t, fn(entriesOf(t, signed))...)
	}
	// withSig replaces module.sig by what fn makes of its decoded content.
	withSig := func(fn func(doc map[string]any) []byte) []byte {
		return mutate(func(es []zentry) []zentry {
			for i := range es {
				if es[i].name == SignatureFile {
					var doc map[string]any
					require.NoError(t, json.Unmarshal(es[i].body, &doc))
					es[i].body = fn(doc)
				}
			}
			return es
		})
	}
	marshal := func(doc map[string]any) []byte {
		b, err := json.Marshal(doc)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name    string
		data    []byte
		trust   Trust
		kind    Kind
		wantMsg string
	}{
		{
			name: "tampered file",
			data: mutate(func(es []zentry) []zentry {
				es[0].body = []byte(`{"name": "hello", "version": "6.6.6"}`)
				return es
			}),
			trust: trusted, kind: KindSignatureInvalid,
			wantMsg: "the archive was modified after it was signed by key " + KeyID(pub) + ": changed 'module_meta.json'.",
		},
		{
			name: "added file",
			data: mutate(func(es []zentry) []zentry {
				return append(es, zentry{name: "bin/linux-amd64/extra", body: []byte("x")})
			}),
			trust: trusted, kind: KindSignatureInvalid, wantMsg: "added 'bin/linux-amd64/extra'",
		},
		{
			name: "removed file",
			data: mutate(func(es []zentry) []zentry {
				var out []zentry
				for _, e := range es {
					if e.name != "openapi.json" {
						out = append(out, e)
					}
				}
				return out
			}),
			trust: trusted, kind: KindSignatureInvalid, wantMsg: "removed 'openapi.json'",
		},
		{
			name: "added, changed and removed, when not required",
			data: mutate(func(es []zentry) []zentry {
				es[0].body = []byte(`{"name": "hello", "version": "6.6.6"}`)
				es[2] = zentry{name: "README", body: []byte("new")} // was openapi.json
				return es
			}),
			trust: Trust{}, kind: KindSignatureInvalid,
			wantMsg: "changed 'module_meta.json'; added 'README'; removed 'openapi.json'",
		},
		{
			name: "another key claimed",
			data: withSig(func(doc map[string]any) []byte {
				doc["public_key"], doc["key_id"] = FormatPublicKey(otherPub), KeyID(otherPub)
				return marshal(doc)
			}),
			trust: Trust{Keys: []ed25519.PublicKey{otherPub}}, kind: KindSignatureInvalid, wantMsg: "does not verify with key " + KeyID(otherPub),
		},
		{
			name: "file list edited to match a tampered file",
			data: func() []byte {
				fake := []byte(`{"name": "hello", "version": "6.6.6"}`)
				data := mutate(func(es []zentry) []zentry {
					es[0].body = fake
					for i := range es {
						if es[i].name == SignatureFile {
							var doc map[string]any
							require.NoError(t, json.Unmarshal(es[i].body, &doc))
							doc["files"].(map[string]any)["module_meta.json"] = sha(fake)
							es[i].body = marshal(doc)
						}
					}
					return es
				})
				return data
			}(),
			trust: trusted, kind: KindSignatureInvalid, wantMsg: "does not verify",
		},
		{
			name: "signature of another key",
			data: withSig(func(doc map[string]any) []byte {
				other := signZip(t, unsignedZip(t), otherPriv)
				for _, e := range entriesOf(t, other) {
					if e.name == SignatureFile {
						var od map[string]any
						require.NoError(t, json.Unmarshal(e.body, &od))
						doc["signature"] = od["signature"]
					}
				}
				return marshal(doc)
			}),
			trust: Trust{}, kind: KindSignatureInvalid, wantMsg: "does not verify with key " + KeyID(pub),
		},
		{
			name:  "key id not of the key",
			data:  withSig(func(doc map[string]any) []byte { doc["key_id"] = "0000000000000000"; return marshal(doc) }),
			trust: trusted, kind: KindSignatureInvalid, wantMsg: "key id \"0000000000000000\" does not belong to its public key",
		},
		{
			name:  "garbage module.sig",
			data:  withSig(func(map[string]any) []byte { return []byte("\x00\x01 not json") }),
			trust: Trust{}, kind: KindSignatureInvalid, wantMsg: "'module.sig' is not a chacc signature",
		},
		{
			name:  "unknown format",
			data:  withSig(func(doc map[string]any) []byte { doc["format"] = "v0"; return marshal(doc) }),
			trust: Trust{}, kind: KindSignatureInvalid, wantMsg: "has format \"v0\"",
		},
		{
			name:  "unknown field",
			data:  withSig(func(doc map[string]any) []byte { doc["extra"] = 1; return marshal(doc) }),
			trust: Trust{}, kind: KindSignatureInvalid, wantMsg: "unknown field \"extra\"",
		},
		{
			name:  "truncated signature",
			data:  withSig(func(doc map[string]any) []byte { doc["signature"] = "AAAA"; return marshal(doc) }),
			trust: Trust{}, kind: KindSignatureInvalid, wantMsg: "the signature is not 64 bytes of base64",
		},
		{
			name:  "bad public key",
			data:  withSig(func(doc map[string]any) []byte { doc["public_key"] = "ed25519:AAAA"; return marshal(doc) }),
			trust: Trust{}, kind: KindSignatureInvalid, wantMsg: "its public key",
		},
		{
			name: "untrusted signer when required",
			data: signed, trust: Trust{Keys: []ed25519.PublicKey{otherPub}, Required: true},
			kind: KindUntrustedSigner, wantMsg: "Archive is signed by key " + KeyID(pub) + ", which is not in CHACC_TRUSTED_KEYS.",
		},
		{
			name: "unsigned when required",
			data: unsignedZip(t), trust: trusted,
			kind: KindSignatureRequired, wantMsg: "Archive is not signed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := verifyZip(t, tc.data, tc.trust)
			require.Error(t, err)
			assert.Equal(t, tc.kind, sigKind(err), "%v", err)
			assert.Contains(t, err.Error(), tc.wantMsg)
			assert.Equal(t, Signature{}, sig)
		})
	}
}

func TestVerifySignatureAllowed(t *testing.T) {
	pub, priv := newKey(t)
	otherPub, _ := newKey(t)
	signed := signZip(t, unsignedZip(t), priv)

	// Untrusted signer, not required: accepted, shown untrusted.
	sig, err := verifyZip(t, signed, Trust{Keys: []ed25519.PublicKey{otherPub}})
	require.NoError(t, err)
	assert.Equal(t, Signature{Signed: true, KeyID: KeyID(pub), PublicKey: FormatPublicKey(pub), Trusted: false}, sig)

	// Unsigned, not required: accepted, unsigned.
	sig, err = verifyZip(t, unsignedZip(t), Trust{Keys: []ed25519.PublicKey{pub}})
	require.NoError(t, err)
	assert.Equal(t, Signature{}, sig)
}

func TestSignRefuses(t *testing.T) {
	_, priv := newKey(t)
	for _, tc := range []struct {
		name, wantMsg string
		data          []byte
	}{
		{"not a zip", "Archive is not a valid zip file.", []byte("nope")},
		{"no manifest", "Archive must contain 'module_meta.json'.", buildZip(t, zentry{name: "bin/linux-amd64/hello", body: []byte("x")})},
		{"unsafe path", "Unsafe path in archive: '../evil'", buildZip(t, append(baseEntries([]byte("x")), zentry{name: "../evil", body: []byte("x")})...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Sign(bytes.NewReader(tc.data), int64(len(tc.data)), Limits{}, priv, &out)
			require.Error(t, err)
			assert.Equal(t, KindInvalid, sigKind(err))
			assert.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}

func TestKeyParsing(t *testing.T) {
	privPEM, pub, err := GenerateKey()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(privPEM), "-----BEGIN PRIVATE KEY-----\n"))

	priv, err := ParsePrivateKey(privPEM)
	require.NoError(t, err)
	assert.True(t, pub.Equal(priv.Public()))

	// Text form round trip.
	text := FormatPublicKey(pub)
	assert.True(t, strings.HasPrefix(text, "ed25519:"))
	assert.Len(t, text, len("ed25519:")+44)
	got, err := ParsePublicKey("  " + text + "\n")
	require.NoError(t, err)
	assert.True(t, pub.Equal(got))

	// Key id: 16 hex digits, stable, different per key.
	assert.Regexp(t, `^[0-9a-f]{16}$`, KeyID(pub))
	assert.Equal(t, KeyID(pub), KeyID(got))
	otherPub, _ := newKey(t)
	assert.NotEqual(t, KeyID(pub), KeyID(otherPub))

	// PEM PKIX, as openssl writes it.
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	pkix := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	got, err = ParsePublicKey(pkix)
	require.NoError(t, err)
	assert.True(t, pub.Equal(got))

	// A list: text lines, comments, blank lines and a PEM block.
	keys, err := ParsePublicKeys("# ops team\n\n" + FormatPublicKey(otherPub) + "\r\n" + pkix + "  # old laptop\n")
	require.NoError(t, err)
	require.Len(t, keys, 2)
	assert.True(t, otherPub.Equal(keys[0]))
	assert.True(t, pub.Equal(keys[1]))
	_, err = ParsePublicKeys("ok\n")
	assert.ErrorContains(t, err, "line 1:")
	_, err = ParsePublicKeys(FormatPublicKey(pub) + "\n-----BEGIN PUBLIC KEY-----\nAAAA\n")
	assert.ErrorContains(t, err, "line 2: PEM block has no END line")

	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	rsaDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	rsaPKCS8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	require.NoError(t, err)

	for _, tc := range []struct{ name, in, wantErr string }{
		{"empty", "", "is neither ed25519:<base64> nor a PEM public key"},
		{"hex", strings.Repeat("ab", 32), "is neither"},
		{"bad base64", "ed25519:!!!", "is not ed25519: followed by the base64 of 32 bytes"},
		{"short", "ed25519:" + base64.StdEncoding.EncodeToString(pub[:31]), "the base64 of 32 bytes"},
		{"private PEM", string(privPEM), "PEM block is \"PRIVATE KEY\", not \"PUBLIC KEY\""},
		{"RSA PEM", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})), "not Ed25519"},
		{"garbage PEM", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "PEM public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKey(tc.in)
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"not PEM", []byte("ed25519:xyz"), "no PEM block found"},
		{"public PEM", []byte(pkix), "PEM block is \"PUBLIC KEY\", not \"PRIVATE KEY\""},
		{"RSA", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaPKCS8}), "not Ed25519"},
		{"garbage", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")}), "PKCS #8 private key"},
	} {
		t.Run("private "+tc.name, func(t *testing.T) {
			_, err := ParsePrivateKey(tc.in)
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
}
