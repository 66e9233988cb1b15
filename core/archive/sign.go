package archive

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// SignatureFile is the name of the signature inside an archive, at its root.
const SignatureFile = sigFile

// signatureFormat names the format of module.sig and starts the signed
// statement; a new format gets a new name.
const signatureFormat = "chacc-module-signature-v1"

// publicKeyPrefix starts the one-line text form of a public key.
const publicKeyPrefix = "ed25519:"

// sigDoc is module.sig: a JSON object.
//
//	{
//	  "format": "chacc-module-signature-v1",
//	  "algorithm": "ed25519",
//	  "key_id": "<KeyID of public_key>",
//	  "public_key": "ed25519:<base64 of the 32-byte key>",
//	  "files": {"<path>": "<hex SHA-256>", ...},
//	  "signature": "<base64 of the 64-byte Ed25519 signature>"
//	}
//
// The signature is over the statement (see [Statement]) built from files;
// files must then equal the archive's own files for the archive to verify.
// Listing the files lets a refusal name what changed since signing.
type sigDoc struct {
	Format    string            `json:"format"`
	Algorithm string            `json:"algorithm"`
	KeyID     string            `json:"key_id"`
	PublicKey string            `json:"public_key"`
	Files     map[string]string `json:"files"`
	Signature string            `json:"signature"`
}

// Signature is what an archive's signature says, once verified.
type Signature struct {
	// Signed is true when the archive holds a valid module.sig.
	Signed bool
	// KeyID identifies the signer: see [KeyID]. Empty when unsigned.
	KeyID string
	// PublicKey is the signer's key in text form ("ed25519:..."). Empty
	// when unsigned.
	PublicKey string
	// Trusted is true when the signer is one of [Trust].Keys.
	Trusted bool
}

// Trust is the signature policy an archive is checked against.
type Trust struct {
	// Keys are the trusted signers.
	Keys []ed25519.PublicKey
	// Required refuses an unsigned archive and one signed by a key not in
	// Keys. When false, both are accepted (the latter as untrusted).
	Required bool
}

// Statement returns the bytes an archive's signature covers, built from its
// regular files (module.sig at the root excepted): the line
// "chacc-module-signature-v1", then one line per file, sorted by path
// (byte order), in the form sha256sum prints: "<hex SHA-256>  <path>".
// Every line ends with "\n". Paths cannot hold a newline ([Read] refuses
// control characters), so the statement is unambiguous.
//
// From an extracted archive, the file lines are what this prints:
//
//	find . -type f ! -path ./module.sig | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum
func Statement(files map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString(signatureFormat + "\n")
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if name == sigFile {
			continue
		}
		b.WriteString(files[name] + "  " + name + "\n")
	}
	return b.Bytes()
}

// VerifySignature checks the archive's module.sig against its files and
// applies t. It answers, as an [*Error]:
//   - [KindSignatureInvalid] when module.sig is malformed, its signature does
//     not verify with the key it names, or a file was added, removed or
//     changed after signing (whatever t says);
//   - [KindSignatureRequired] when t.Required and there is no module.sig;
//   - [KindUntrustedSigner] when t.Required and the signer is not in t.Keys.
//
// Otherwise it returns what the signature says, Trusted set when the signer
// is in t.Keys. An unsigned archive, when allowed, is the zero Signature.
func (a *Archive) VerifySignature(t Trust) (Signature, error) {
	if a.Signature == nil {
		if t.Required {
			return Signature{}, &Error{Kind: KindSignatureRequired, Msg: "Archive is not signed; this core requires signed modules (CHACC_REQUIRE_SIGNED). Sign it with 'chacc module sign'."}
		}
		return Signature{}, nil
	}
	files := make(map[string]string, len(a.Files))
	for _, f := range a.Files {
		if f.Name != sigFile {
			files[f.Name] = f.SHA256
		}
	}
	pub, err := verify(a.Signature, files)
	if err != nil {
		return Signature{}, err
	}
	s := Signature{Signed: true, KeyID: KeyID(pub), PublicKey: FormatPublicKey(pub)}
	s.Trusted = slices.ContainsFunc(t.Keys, func(k ed25519.PublicKey) bool { return k.Equal(pub) })
	if !s.Trusted && t.Required {
		return Signature{}, &Error{Kind: KindUntrustedSigner, Msg: fmt.Sprintf("Archive is signed by key %s, which is not in CHACC_TRUSTED_KEYS.", s.KeyID)}
	}
	return s, nil
}

// verify checks a module.sig against the archive's files (path → hex
// SHA-256, without module.sig) and returns the signer's key.
func verify(data []byte, files map[string]string) (ed25519.PublicKey, error) {
	bad := func(format string, args ...any) error {
		return &Error{Kind: KindSignatureInvalid, Msg: "Invalid signature: " + fmt.Sprintf(format, args...)}
	}
	var doc sigDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, bad("'%s' is not a chacc signature (%s).", sigFile, strings.TrimPrefix(err.Error(), "json: "))
	}
	if doc.Format != signatureFormat || doc.Algorithm != "ed25519" {
		return nil, bad("'%s' has format %q and algorithm %q; expected %q and \"ed25519\".", sigFile, doc.Format, doc.Algorithm, signatureFormat)
	}
	pub, err := ParsePublicKey(doc.PublicKey)
	if err != nil {
		return nil, bad("its public key: %v.", err)
	}
	if doc.KeyID != KeyID(pub) {
		return nil, bad("key id %q does not belong to its public key (%s).", doc.KeyID, KeyID(pub))
	}
	sig, err := base64.StdEncoding.DecodeString(doc.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, bad("the signature is not %d bytes of base64.", ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, Statement(doc.Files), sig) {
		return nil, bad("the signature does not verify with key %s: '%s' was altered or forged.", doc.KeyID, sigFile)
	}
	if diff := diffFiles(doc.Files, files); diff != "" {
		return nil, bad("the archive was modified after it was signed by key %s: %s.", doc.KeyID, diff)
	}
	return pub, nil
}

// diffFiles describes how got differs from signed, or returns "".
func diffFiles(signed, got map[string]string) string {
	var changed, added, removed []string
	for _, name := range slices.Sorted(maps.Keys(got)) {
		switch sum, ok := signed[name]; {
		case !ok:
			added = append(added, quote(name))
		case sum != got[name]:
			changed = append(changed, quote(name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(signed)) {
		if _, ok := got[name]; !ok && name != sigFile {
			removed = append(removed, quote(name))
		}
	}
	var parts []string
	for _, p := range []struct {
		what  string
		names []string
	}{{"changed", changed}, {"added", added}, {"removed", removed}} {
		if len(p.names) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.names, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// Sign writes to w a copy of the archive held in r (size bytes long) with
// module.sig added, or replaced, signed by key over the SHA-256 of every
// other file (see [Statement]). The other entries are copied byte for byte.
// The archive must be one [Read] would accept on some platform: Sign checks
// every entry's path and type and the manifest, within lim, but not the
// executables. It returns the signature it wrote.
func Sign(r io.ReaderAt, size int64, lim Limits, key ed25519.PrivateKey, w io.Writer) (Signature, error) {
	lim = lim.withDefaults()
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return Signature{}, invalid("Archive is not a valid zip file.")
	}
	if len(zr.File) > lim.MaxFiles {
		return Signature{}, tooLarge("Archive has %d entries; the limit is %d.", len(zr.File), lim.MaxFiles)
	}
	files, _, err := scan(zr.File, lim.MaxUnpackedBytes)
	if err != nil {
		return Signature{}, err
	}
	a := &Archive{lim: lim}
	if err := a.readManifest(files); err != nil {
		return Signature{}, err
	}
	sums := make(map[string]string, len(files))
	budget := lim.MaxUnpackedBytes
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if name == sigFile {
			continue
		}
		n, sum, err := inflate(io.Discard, files[name], budget)
		if errors.Is(err, errLimit) {
			return Signature{}, errTooBig(lim.MaxUnpackedBytes)
		}
		if err != nil {
			return Signature{}, err
		}
		budget -= n
		sums[name] = sum
	}
	pub := key.Public().(ed25519.PublicKey)
	doc := sigDoc{
		Format: signatureFormat, Algorithm: "ed25519",
		KeyID: KeyID(pub), PublicKey: FormatPublicKey(pub), Files: sums,
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, Statement(sums))),
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return Signature{}, err
	}
	if len(body) > maxSigBytes {
		return Signature{}, tooLarge("The signature of this archive would be %d bytes; the limit is %d. Ship fewer files.", len(body), maxSigBytes)
	}
	zw := zip.NewWriter(w)
	for _, zf := range zr.File {
		if name, _ := checkPath(zf.Name); name == sigFile && !zf.Mode().IsDir() {
			continue
		}
		if err := zw.Copy(zf); err != nil {
			return Signature{}, fmt.Errorf("archive: sign: copy %s: %w", zf.Name, err)
		}
	}
	hdr := &zip.FileHeader{Name: sigFile, Method: zip.Deflate, Modified: packTime}
	hdr.SetMode(0o644)
	fw, err := zw.CreateHeader(hdr)
	if err != nil {
		return Signature{}, err
	}
	if _, err := fw.Write(append(body, '\n')); err != nil {
		return Signature{}, err
	}
	if err := zw.Close(); err != nil {
		return Signature{}, err
	}
	return Signature{Signed: true, KeyID: doc.KeyID, PublicKey: doc.PublicKey}, nil
}

// KeyID returns the identifier of a public key: the first 16 hex digits of
// the SHA-256 of its 32 raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// FormatPublicKey returns the one-line text form of a public key:
// "ed25519:" followed by the standard base64 of its 32 bytes.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return publicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a public key in text form ("ed25519:<base64>") or as
// a PEM "PUBLIC KEY" block (PKIX, as openssl writes it).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, publicKeyPrefix); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%q is not %s followed by the base64 of %d bytes", short(s), publicKeyPrefix, ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(b), nil
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		block, rest := pem.Decode([]byte(s))
		if block == nil || strings.TrimSpace(string(rest)) != "" {
			return nil, errors.New("not a single PEM block")
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block is %q, not \"PUBLIC KEY\"", block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("PEM public key is %T, not Ed25519", k)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("%q is neither %s<base64> nor a PEM public key", short(s), publicKeyPrefix)
}

// ParsePublicKeys reads a list of public keys: one text-form key per line,
// and PEM "PUBLIC KEY" blocks. Blank lines and lines starting with "#" are
// skipped.
func ParsePublicKeys(text string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "-----BEGIN") {
			end := i
			for end < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[end]), "-----END") {
				end++
			}
			if end == len(lines) {
				return nil, fmt.Errorf("line %d: PEM block has no END line", i+1)
			}
			k, err := ParsePublicKey(strings.Join(lines[i:end+1], "\n"))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			keys, i = append(keys, k), end
			continue
		}
		k, err := ParsePublicKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// GenerateKey returns a new key pair: the private key as a PEM "PRIVATE
// KEY" block (PKCS #8) and the public key.
func GenerateKey() (privatePEM []byte, pub ed25519.PublicKey, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), pub, nil
}

// ParsePrivateKey reads an Ed25519 private key from a PEM "PRIVATE KEY"
// block (PKCS #8), as [GenerateKey] and openssl genpkey write it.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found; expected a \"PRIVATE KEY\" block (PKCS #8)")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block is %q, not \"PRIVATE KEY\" (PKCS #8)", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKCS #8 private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, not Ed25519", k)
	}
	return priv, nil
}

// short cuts a key shown in an error message.
func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
