package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/store/storetest"
)

const authPrefix = "/api/v1/auth"

var (
	authOnce    sync.Once
	authArchive string
	authErr     error
)

// authModule builds modules/auth into an archive, once per test binary.
func authModule(t *testing.T) string {
	t.Helper()
	authOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chacc-e2e-auth-")
		if err != nil {
			authErr = err
			return
		}
		stage := filepath.Join(dir, "stage")
		plat := runtime.GOOS + "-" + runtime.GOARCH
		root, _ := filepath.Abs("../..")
		cmd := exec.Command("go", "build", "-o", filepath.Join(stage, "bin", plat, "auth"), "./modules/auth")
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			authErr = fmt.Errorf("build auth: %v\n%s", err, out)
			return
		}
		man, err := os.ReadFile(filepath.Join(root, "modules/auth/module_meta.json"))
		if err == nil {
			err = os.WriteFile(filepath.Join(stage, "module_meta.json"), man, 0o644)
		}
		if err != nil {
			authErr = err
			return
		}
		authArchive = filepath.Join(dir, "auth.chacc")
		f, err := os.Create(authArchive)
		if err != nil {
			authErr = err
			return
		}
		defer f.Close()
		_, authErr = archive.Pack(stage, f)
	})
	require.NoError(t, authErr)
	return authArchive
}

// authEnv is the auth module's settings for a test: a signing key the test
// knows (so it can forge and craft tokens), a known first admin, a cheap
// password hash.
type authKit struct {
	priv   ed25519.PrivateKey
	pubDER []byte
	env    []string
}

const adminEmail, adminPassword = "admin@example.com", "Adm1n!pass-word"

func newAuthKit(t *testing.T, extra ...string) authKit {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	k := authKit{priv: priv, pubDER: pubDER}
	k.env = append([]string{
		"AUTH_JWT_PRIVATE_KEY=" + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"AUTH_ADMIN_EMAIL=" + adminEmail, "AUTH_ADMIN_PASSWORD=" + adminPassword,
		"AUTH_BCRYPT_COST=10",
		"AUTH_LOGIN_RATE_LIMIT=1000/5m",
	}, extra...)
	return k
}

// authed sends a request with a bearer token (or an API key when it starts
// with rak_).
func (s *server) authed(token, method, path string, body any) response {
	s.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(s.t, err)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	h := []string{"Content-Type", "application/json"}
	switch {
	case strings.HasPrefix(token, "rak_"):
		h = append(h, "X-API-Key", token)
	case token != "":
		h = append(h, "Authorization", "Bearer "+token)
	}
	return s.do(method, path, rd, h...)
}

// uploadAs uploads an archive with a token.
func (s *server) uploadAs(token, path string) response {
	s.t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(s.t, err)
	body, ctype := multipartFile(s.t, filepath.Base(path), data)
	return s.do("POST", "/modules/", body, "Content-Type", ctype, "Authorization", "Bearer "+token)
}

type session struct {
	access, refresh string
	userID          string
}

func (s *server) login(email, password string) session {
	s.t.Helper()
	r := s.authed("", "POST", authPrefix+"/login", map[string]string{"email": email, "password": password})
	require.Equal(s.t, 200, r.status, "login %s: %s", email, r.body)
	m := r.json(s.t)
	assert.Equal(s.t, "bearer", m["token_type"])
	user, _ := m["user"].(map[string]any)
	return session{access: m["access_token"].(string), refresh: m["refresh_token"].(string), userID: fmt.Sprint(user["id"])}
}

// register makes a user with a role (set by the admin) and logs them in.
func (s *server) userWithRole(admin session, email, role string) session {
	s.t.Helper()
	const pw = "Us3r!password"
	r := s.authed("", "POST", authPrefix+"/register", map[string]string{"email": email, "password": pw, "display_name": role + " user"})
	require.Equal(s.t, 201, r.status, "register: %s", r.body)
	id := fmt.Sprint(r.json(s.t)["id"])
	if role != "viewer" {
		r = s.authed(admin.access, "PATCH", authPrefix+"/users/"+id, map[string]any{"role": role})
		require.Equal(s.t, 200, r.status, "set role: %s", r.body)
	}
	return s.login(email, pw)
}

// startAuthed starts a core with hello and auth installed and returns it
// with an admin session.
func startAuthed(t *testing.T, b storetest.Backend, kit authKit, env ...string) (*server, session) {
	s := startServer(t, b, append(kit.env, env...)...)
	require.Equal(t, 201, s.uploadFile(helloV1).status)
	r := s.uploadFile(authModule(t))
	require.Equal(t, 201, r.status, "%s", r.body)
	return s, s.login(adminEmail, adminPassword)
}

func assertChallenge(t *testing.T, r response, code string) {
	t.Helper()
	assert.Equal(t, 401, r.status, "%s", r.body)
	assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
	if code != "" {
		assert.Equal(t, code, r.json(t)["error_code"], "%s", r.body)
	}
}

func TestAuthCoreIntegration(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		kit := newAuthKit(t)
		s := startServer(t, b, kit.env...)

		// No authenticator: core routes open, whoami anonymous, a warning.
		require.Equal(t, 200, s.get("/modules/").status)
		require.Equal(t, 201, s.uploadFile(helloV1).status)
		r := s.get("/hello/whoami")
		require.Equal(t, 200, r.status)
		assert.Equal(t, false, r.json(t)["authenticated"])
		s.assertLogged(t, "no authenticator module is enabled")

		r = s.uploadFile(authModule(t))
		require.Equal(t, 201, r.status, "%s", r.body)

		// From now on: admin only on the core, viewer on whoami.
		assertChallenge(t, s.get("/modules/"), "AUTHENTICATION_REQUIRED")
		assertChallenge(t, s.get("/audit"), "AUTHENTICATION_REQUIRED")
		assertChallenge(t, s.get("/hello/whoami"), "AUTHENTICATION_REQUIRED")
		assert.Equal(t, 200, s.get("/hello/ping").status, "routes without a requirement stay open")
		assert.Equal(t, 200, s.get("/health").status)

		admin := s.login(adminEmail, adminPassword)
		r = s.authed(admin.access, "GET", "/modules/", nil)
		require.Equal(t, 200, r.status, "%s", r.body)

		// The principal reaches the module in the request message.
		r = s.authed(admin.access, "GET", "/hello/whoami", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		who := r.json(t)
		assert.Equal(t, true, who["authenticated"])
		assert.Equal(t, admin.userID, who["subject"])
		assert.Equal(t, []any{"admin"}, who["roles"])
		assert.Equal(t, "jwt", who["method"])

		// A module-to-module call acts for the caller of the request being
		// served, and is held to the target's requirement: anonymous → 401.
		r = s.authed(admin.access, "GET", "/hello/relay?to=whoami", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		relayed := r.json(t)
		assert.Equal(t, float64(200), relayed["status"], "%s", r.body)
		assert.Equal(t, admin.userID, relayed["response"].(map[string]any)["subject"])
		r = s.get("/hello/relay?to=whoami")
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, float64(401), r.json(t)["status"], "an anonymous call to a viewer route: %s", r.body)

		// Path tricks cannot dodge a route's requirement.
		for _, p := range []string{"/hello/whoami/", "//hello/whoami", "/hello/./whoami", "/hello/%77hoami", "/hello//whoami"} {
			r := s.get(p)
			assert.Contains(t, []int{400, 401, 404}, r.status, "%s: %s", p, r.body)
			assert.NotContains(t, string(r.body), `"authenticated"`, p)
		}

		// A forged principal header is nothing: only the core's message counts.
		r = s.do("GET", "/hello/whoami", nil, "X-Principal", "admin", "X-User-Id", "1")
		assertChallenge(t, r, "AUTHENTICATION_REQUIRED")

		// Role × route matrix.
		users := map[string]session{"admin": admin}
		for _, role := range []string{"viewer", "engineer", "operator"} {
			users[role] = s.userWithRole(admin, role+"@example.com", role)
		}
		routes := []struct {
			method, path, min string
		}{
			{"GET", "/hello/whoami", "viewer"},
			{"GET", authPrefix + "/me", "viewer"},
			{"GET", authPrefix + "/users", "admin"},
			{"GET", "/modules/", "admin"},
			{"GET", "/modules/hello", "admin"},
			{"GET", "/audit", "admin"},
		}
		order := map[string]int{"viewer": 0, "engineer": 1, "operator": 2, "admin": 3}
		for _, rt := range routes {
			for role, sess := range users {
				r := s.authed(sess.access, rt.method, rt.path, nil)
				want := 403
				if order[role] >= order[rt.min] {
					want = 200
				}
				assert.Equal(t, want, r.status, "%s on %s %s (needs %s): %s", role, rt.method, rt.path, rt.min, r.body)
				if want == 403 {
					assert.Equal(t, "INSUFFICIENT_ROLE", r.json(t)["error_code"])
				}
			}
		}
		// An operator cannot upload, disable or uninstall.
		r = s.uploadAs(users["operator"].access, helloV2)
		assert.Equal(t, 403, r.status, "%s", r.body)
		assert.Equal(t, 403, s.authed(users["operator"].access, "POST", "/modules/hello/disable", nil).status)

		// The audit log names the admin who acted.
		r = s.authed(admin.access, "POST", "/modules/hello/disable", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		r = s.authed(admin.access, "GET", "/audit?module=hello", nil)
		require.Equal(t, 200, r.status)
		assert.Contains(t, string(r.body), "user:"+admin.userID)
		require.Equal(t, 200, s.authed(admin.access, "POST", "/modules/hello/enable", nil).status)

		// API keys: scopes enforced by the core.
		r = s.authed(admin.access, "POST", authPrefix+"/api-keys", map[string]any{"name": "ci", "scopes": []string{"auth:users"}})
		require.Equal(t, 201, r.status, "%s", r.body)
		scoped := r.json(t)["key"].(string)
		require.True(t, strings.HasPrefix(scoped, "rak_"))
		assert.Equal(t, 200, s.authed(scoped, "GET", authPrefix+"/users", nil).status, "the key has auth:users")
		r = s.authed(scoped, "GET", authPrefix+"/api-keys", nil)
		assert.Equal(t, 403, r.status, "%s", r.body)
		assert.Equal(t, "INSUFFICIENT_SCOPE", r.json(t)["error_code"])
		r = s.authed(scoped, "GET", "/hello/whoami", nil)
		require.Equal(t, 200, r.status, "no scope needed, role enough: %s", r.body)
		assert.Equal(t, "api_key", r.json(t)["method"])
		assertChallenge(t, s.authed("rak_not-a-real-key-at-all-0000000000", "GET", "/hello/whoami", nil), "INVALID_API_KEY")

		// Deleting the key stops it at once (the core's cache is cleared).
		keyID := ""
		r = s.authed(admin.access, "GET", authPrefix+"/api-keys", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		var listed struct {
			Keys  []map[string]any `json:"api_keys"`
			Items []map[string]any `json:"items"`
		}
		require.NoError(t, json.Unmarshal(r.body, &listed))
		for _, k := range append(listed.Keys, listed.Items...) {
			if k["name"] == "ci" {
				keyID = fmt.Sprint(k["id"])
			}
		}
		require.NotEmpty(t, keyID, "%s", r.body)
		r = s.authed(admin.access, "DELETE", authPrefix+"/api-keys/"+keyID, nil)
		require.Contains(t, []int{200, 204}, r.status, "%s", r.body)
		assertChallenge(t, s.authed(scoped, "GET", authPrefix+"/users", nil), "INVALID_API_KEY")

		// Logout: the access token stops working at once, although the
		// core had cached its family as valid a moment ago.
		v := users["viewer"]
		require.Equal(t, 200, s.authed(v.access, "GET", "/hello/whoami", nil).status)
		require.Equal(t, 200, s.authed(v.access, "POST", authPrefix+"/logout", nil).status)
		assertChallenge(t, s.authed(v.access, "GET", "/hello/whoami", nil), "TOKEN_REVOKED")

		// Auth cannot be disabled while a module depends on it.
		dep := helloDependingOnAuth(t)
		r = s.uploadAs(admin.access, dep)
		require.Equal(t, 200, r.status, "upgrade hello to one that depends on auth: %s", r.body)
		r = s.authed(admin.access, "POST", "/modules/auth/disable", nil)
		assert.Equal(t, 409, r.status, "%s", r.body)
		assert.Contains(t, string(r.body), "hello")
		r = s.authed(admin.access, "DELETE", "/modules/auth/uninstall", nil)
		assert.Equal(t, 409, r.status, "%s", r.body)
	})
}

// helloDependingOnAuth is hello 0.3.0 with a dependency on auth.
func helloDependingOnAuth(t *testing.T) string {
	t.Helper()
	files := readZip(t, helloV1)
	var meta map[string]any
	require.NoError(t, json.Unmarshal(files["module_meta.json"].data, &meta))
	meta["version"] = "0.3.0"
	meta["dependencies"] = map[string]string{"auth": ">=1.0.0"}
	mf := files["module_meta.json"]
	mf.data, _ = json.Marshal(meta)
	files["module_meta.json"] = mf
	path := filepath.Join(t.TempDir(), "hello-0.3.0.chacc")
	require.NoError(t, os.WriteFile(path, zipMap(t, files), 0o644))
	return path
}

func TestAuthTokenAttacks(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		kit := newAuthKit(t)
		s, admin := startAuthed(t, b, kit)
		require.Equal(t, 200, s.authed(admin.access, "GET", "/hello/whoami", nil).status)

		parsed, _, err := jwt.NewParser().ParseUnverified(admin.access, jwt.MapClaims{})
		require.NoError(t, err)
		claims := parsed.Claims.(jwt.MapClaims)
		kid, _ := parsed.Header["kid"].(string)
		with := func(change func(c jwt.MapClaims)) jwt.MapClaims {
			c := jwt.MapClaims{}
			for k, v := range claims {
				c[k] = v
			}
			change(c)
			return c
		}
		sign := func(c jwt.MapClaims, key ed25519.PrivateKey) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
			tok.Header["kid"] = kid
			out, err := tok.SignedString(key)
			require.NoError(t, err)
			return out
		}
		// Sanity: a token the test signs with the module's key is accepted,
		// so each refusal below is for the one thing the case changes.
		require.Equal(t, 200, s.authed(sign(with(func(jwt.MapClaims) {}), kit.priv), "GET", "/hello/whoami", nil).status)

		_, other, _ := ed25519.GenerateKey(rand.Reader)
		now := time.Now()
		parts := strings.Split(admin.access, ".")
		b64 := base64.RawURLEncoding
		payload, err := b64.DecodeString(parts[1])
		require.NoError(t, err)
		var pm map[string]any
		require.NoError(t, json.Unmarshal(payload, &pm))
		pm["role"] = "admin"
		pm["sub"] = "someone-else"
		tampered, _ := json.Marshal(pm)

		attacks := map[string]string{
			"alg none": func() string {
				out, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
				require.NoError(t, err)
				return out
			}(),
			"HS256 signed with the public key": func() string {
				tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
				tok.Header["kid"] = kid
				out, err := tok.SignedString(kit.pubDER)
				require.NoError(t, err)
				return out
			}(),
			"signed by another key": sign(claims, other),
			"expired":               sign(with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }), kit.priv),
			"not yet valid":         sign(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), kit.priv),
			"tampered payload":      parts[0] + "." + b64.EncodeToString(tampered) + "." + parts[2],
			"truncated":             parts[0] + "." + parts[1],
		}
		for name, tok := range attacks {
			r := s.authed(tok, "GET", "/hello/whoami", nil)
			assertChallenge(t, r, "INVALID_TOKEN")
			assert.Contains(t, r.header.Get("WWW-Authenticate"), `error="invalid_token"`, name)
			// And on the core's own routes.
			assert.Equal(t, 401, s.authed(tok, "GET", "/modules/", nil).status, name)
		}
	})
}

func TestAuthRefreshReuseAndLockout(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		kit := newAuthKit(t)
		s, admin := startAuthed(t, b, kit)
		_ = admin

		// Rotation: r1 → (a2, r2); replaying r1 revokes the whole family.
		first := s.login(adminEmail, adminPassword)
		r := s.authed("", "POST", authPrefix+"/refresh", map[string]string{"refresh_token": first.refresh})
		require.Equal(t, 200, r.status, "%s", r.body)
		m := r.json(t)
		a2, r2 := m["access_token"].(string), m["refresh_token"].(string)
		assert.NotEqual(t, first.refresh, r2)
		require.Equal(t, 200, s.authed(a2, "GET", "/hello/whoami", nil).status)

		r = s.authed("", "POST", authPrefix+"/refresh", map[string]string{"refresh_token": first.refresh})
		assert.Equal(t, 401, r.status)
		assert.Contains(t, r.json(t)["detail"], "reuse")
		assertChallenge(t, s.authed(a2, "GET", "/hello/whoami", nil), "TOKEN_REVOKED")
		r = s.authed("", "POST", authPrefix+"/refresh", map[string]string{"refresh_token": r2})
		assert.Equal(t, 401, r.status, "the family is gone: %s", r.body)
		// Another session of the same user is untouched.
		assert.Equal(t, 200, s.authed(admin.access, "GET", "/hello/whoami", nil).status)

		// Brute force: 5 wrong passwords lock the account; then even the
		// right one is refused, saying locked.
		for i := 0; i < 5; i++ {
			r := s.authed("", "POST", authPrefix+"/login", map[string]string{"email": adminEmail, "password": "wrong-Passw0rd!"})
			require.Equal(t, 401, r.status, "%s", r.body)
		}
		r = s.authed("", "POST", authPrefix+"/login", map[string]string{"email": adminEmail, "password": adminPassword})
		assert.Equal(t, 401, r.status)
		assert.Contains(t, strings.ToLower(fmt.Sprint(r.json(t)["detail"])), "locked")
	})
}

func TestAuthLoginRateLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		kit := newAuthKit(t)
		// The module's default: 10 attempts per IP per 5 minutes.
		env := kit.env[:len(kit.env)-1]
		s, _ := startAuthed(t, b, authKit{env: env})
		// startAuthed logged in once.
		for i := 2; i <= 10; i++ {
			r := s.authed("", "POST", authPrefix+"/login", map[string]string{"email": "nobody@example.com", "password": "x"})
			require.Equal(t, 401, r.status, "attempt %d: %s", i, r.body)
			assert.Equal(t, "10", r.header.Get("X-RateLimit-Limit"))
			assert.Equal(t, fmt.Sprint(10-i), r.header.Get("X-RateLimit-Remaining"))
			assert.NotEmpty(t, r.header.Get("X-RateLimit-Reset"))
		}
		// /register and /refresh share the count.
		r := s.authed("", "POST", authPrefix+"/refresh", map[string]string{"refresh_token": "x"})
		assert.Equal(t, 429, r.status, "%s", r.body)
		assert.NotEmpty(t, r.header.Get("Retry-After"))
		assert.Equal(t, "RATE_LIMITED", r.json(t)["error_code"])
		r = s.authed("", "POST", authPrefix+"/login", map[string]string{"email": adminEmail, "password": adminPassword})
		assert.Equal(t, 429, r.status)
		// Other routes are not affected.
		assert.Equal(t, 200, s.get("/hello/ping").status)
	})
}

// readZip returns an archive's files with their modes.
func readZip(t *testing.T, path string) map[string]zipFile {
	t.Helper()
	zr, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer zr.Close()
	out := map[string]zipFile{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		data, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		out[f.Name] = zipFile{name: f.Name, data: data, mode: f.Mode()}
	}
	return out
}

func zipMap(t *testing.T, files map[string]zipFile) []byte {
	t.Helper()
	var list []zipFile
	for _, f := range files {
		list = append(list, f)
	}
	return zipOf(t, list...)
}

// multipartFile is a multipart body with the archive as the field "file".
func multipartFile(t *testing.T, name string, data []byte) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", name)
	require.NoError(t, err)
	_, _ = fw.Write(data)
	require.NoError(t, mw.Close())
	return &buf, mw.FormDataContentType()
}

// The break-glass token acts as an admin on the core's routes only, and
// lets an operator bring a crashed auth module back.
func TestAdminToken(t *testing.T) {
	const token = "break-glass-0123456789abcdef0123456789"
	kit := newAuthKit(t)
	s, admin := startAuthed(t, storetest.Backends(t)[0], kit, "CHACC_ADMIN_TOKEN="+token, "CHACC_RESTART_MAX=1")
	r := s.authed(token, "GET", "/modules/", nil)
	require.Equal(t, 200, r.status, "%s", r.body)
	assertChallenge(t, s.authed(token+"x", "GET", "/modules/", nil), "INVALID_TOKEN")
	assertChallenge(t, s.authed(token, "GET", "/hello/whoami", nil), "INVALID_TOKEN")

	// The auth module crashes for good (one crash is a loop here): admin
	// tokens cannot be checked, so they get 503, never a pass.
	require.NoError(t, syscall.Kill(s.modulePIDAs(token, "auth"), syscall.SIGKILL))
	waitFor(t, 20*time.Second, "auth crashed", func() bool {
		r := s.authed(token, "GET", "/modules/auth", nil)
		return r.status == 200 && r.json(t)["state"] == "crashed"
	})
	r = s.authed(admin.access, "GET", "/modules/", nil)
	assert.Equal(t, 503, r.status, "%s", r.body)
	// The operator brings it back with the break-glass token.
	r = s.authed(token, "POST", "/modules/auth/enable", nil)
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, 200, s.authed(admin.access, "GET", "/modules/", nil).status)
	r = s.authed(token, "GET", "/audit?module=auth", nil)
	require.Equal(t, 200, r.status)
	assert.Contains(t, string(r.body), "admin-token")
}

// modulePIDAs is modulePID with a credential.
func (s *server) modulePIDAs(token, name string) int {
	s.t.Helper()
	r := s.authed(token, "GET", "/modules/"+name, nil)
	require.Equal(s.t, 200, r.status, "%s", r.body)
	pid, _ := r.json(s.t)["pid"].(float64)
	return int(pid)
}
