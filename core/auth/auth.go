// Package auth authenticates and authorizes requests in the core.
//
// When an enabled module declares the "authenticator" capability (the shipped
// auth module), the core verifies access tokens (JWTs) itself, with the public
// keys the module hands over in Describe, so a request costs no round trip
// for the signature. It asks the module only what it cannot know: whether a
// verified token's family has been revoked, and who an API key belongs to.
// Both answers are cached for a short time (Config.CacheTTL); the module calls
// Host.InvalidateCredentials on every revocation, which clears the affected
// entries before the module answers its client, so a revocation holds for
// the very next request. A generation counter keeps an answer fetched before
// an invalidation from being cached after it.
//
// With no authenticator enabled, nothing is required: core routes are open,
// as ChaCC has it, and the server warns at start-up.
package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chacc/chacc/core"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
)

// Backend is the running authenticator module as the core sees it.
type Backend interface {
	Describe() *modulev1.DescribeResponse
	Authenticate(ctx context.Context, req *modulev1.AuthenticateRequest) (*modulev1.AuthenticateResponse, error)
}

// Source tells the Authority about the authenticator module.
type Source interface {
	// Authenticator reports whether an authenticator module is enabled, its
	// name, and its running instance (nil while it is down or starting).
	// known is false until the core has loaded its modules' desired state.
	Authenticator() (name string, backend Backend, enabled, known bool)
	// Loaded is closed once known is true.
	Loaded() <-chan struct{}
}

// bootWait bounds how long a request waits for the core to load its
// modules' desired state before it gets 503.
const bootWait = 30 * time.Second

// askTimeout bounds one question to the authenticator module, so that a
// stuck module gives 503 rather than hanging every authenticated request.
const askTimeout = 5 * time.Second

// Config tunes the Authority.
type Config struct {
	// CacheTTL bounds how long an answer of the authenticator module (token
	// family valid or revoked, API key) is reused. Default 30s.
	CacheTTL time.Duration
	// MaxEntries bounds each cache. Default 100000.
	MaxEntries int
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Authority authenticates requests. It is safe for concurrent use.
type Authority struct {
	cfg Config
	src Source

	keys atomic.Pointer[keyring] // parsed from the last backend seen

	gen    atomic.Uint64 // bumped by every invalidation
	mu     sync.RWMutex
	tokens map[string]*verifiedToken // by the token string
	fams   map[string]*familyState   // by family id
	keysBy map[[32]byte]*apiKeyState // by SHA-256 of the API key
}

// New returns an Authority reading the authenticator from src.
func New(src Source, cfg Config) *Authority {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 30 * time.Second
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Authority{
		cfg: cfg, src: src,
		tokens: map[string]*verifiedToken{}, fams: map[string]*familyState{}, keysBy: map[[32]byte]*apiKeyState{},
	}
}

type familyState struct {
	subject string
	valid   bool
	reason  string
	until   time.Time
}

type apiKeyState struct {
	principal *modulev1.Principal
	valid     bool
	reason    string
	until     time.Time
}

// Required reports whether credentials are enforced: an authenticator module
// is enabled (running or not). While the core is still loading its modules'
// desired state it waits (as lifecycle calls do), and answers 503 when ctx
// ends or the wait is too long.
func (a *Authority) Required(ctx context.Context) (bool, error) {
	_, _, enabled, known := a.src.Authenticator()
	if !known {
		t := time.NewTimer(bootWait)
		defer t.Stop()
		select {
		case <-a.src.Loaded():
		case <-ctx.Done():
			return false, starting()
		case <-t.C:
			return false, starting()
		}
		_, _, enabled, known = a.src.Authenticator()
		if !known {
			return false, starting()
		}
	}
	return enabled, nil
}

func starting() *core.Error {
	return &core.Error{Code: core.EUNAVAILABLE, ErrorCode: "STARTING", RetryAfter: 1,
		Message: "The core is starting; try again shortly."}
}

// Errors the client sees.
var (
	errMissing = &core.Error{Code: core.EUNAUTHORIZED, ErrorCode: "AUTHENTICATION_REQUIRED",
		Message: "Authentication required: send Authorization: Bearer <token> or X-API-Key."}
)

func invalid(errorCode, msg string) *core.Error {
	return &core.Error{Code: core.EUNAUTHORIZED, ErrorCode: errorCode, Message: msg}
}

func unavailable(name string, err error) *core.Error {
	return &core.Error{Code: core.EUNAVAILABLE, ErrorCode: "AUTHENTICATOR_UNAVAILABLE", RetryAfter: 1,
		Message: fmt.Sprintf("Cannot check credentials: the authenticator module '%s' is unavailable; try again shortly.", name), Err: err}
}

// Credential is what a request presents.
type Credential struct {
	Bearer string
	APIKey string
}

// CredentialFrom reads the request's credential: Authorization: Bearer, or
// X-API-Key. ok is false when there is none.
func CredentialFrom(h http.Header) (c Credential, ok bool) {
	if k := h.Get("X-API-Key"); k != "" {
		return Credential{APIKey: strings.TrimSpace(k)}, true
	}
	v := h.Get("Authorization")
	if v == "" {
		return c, false
	}
	scheme, tok, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return Credential{Bearer: "\x00malformed"}, true
	}
	return Credential{Bearer: strings.TrimSpace(tok)}, true
}

// Authenticate establishes who presents c. It returns a 401 *core.Error for a
// bad credential and a 503 one when the authenticator cannot answer. It must
// only be called when Required says so.
func (a *Authority) Authenticate(ctx context.Context, c Credential) (*modulev1.Principal, error) {
	if _, err := a.Required(ctx); err != nil {
		return nil, err
	}
	name, backend, enabled, _ := a.src.Authenticator()
	if !enabled {
		return nil, nil
	}
	if c.APIKey != "" {
		return a.apiKey(ctx, name, backend, c.APIKey)
	}
	if c.Bearer == "" {
		return nil, errMissing
	}
	return a.token(ctx, name, backend, c.Bearer)
}

// token verifies a JWT with the authenticator's keys (cached by the token
// string once verified), then checks its family.
func (a *Authority) token(ctx context.Context, name string, backend Backend, raw string) (*modulev1.Principal, error) {
	now := a.cfg.Now()
	kr := a.keyringFor(backend)
	a.mu.RLock()
	vt := a.tokens[raw]
	a.mu.RUnlock()
	if vt == nil || vt.ring != kr {
		if kr == nil {
			return nil, unavailable(name, errors.New("no verification keys"))
		}
		var err error
		if vt, err = kr.verify(raw); err != nil {
			return nil, err
		}
		a.remember(func() {
			if len(a.tokens) >= a.cfg.MaxEntries {
				a.tokens = map[string]*verifiedToken{}
			}
			a.tokens[raw] = vt
		})
	}
	if err := vt.checkTime(now); err != nil {
		return nil, err
	}
	if err := a.family(ctx, name, backend, vt, now); err != nil {
		return nil, err
	}
	return vt.principal, nil
}

// family asks the authenticator whether the token's family is still valid,
// through the cache.
func (a *Authority) family(ctx context.Context, name string, backend Backend, vt *verifiedToken, now time.Time) error {
	a.mu.RLock()
	fs := a.fams[vt.family]
	a.mu.RUnlock()
	if fs == nil || now.After(fs.until) {
		if backend == nil {
			return unavailable(name, errors.New("not running"))
		}
		gen := a.gen.Load()
		actx, cancel := context.WithTimeout(ctx, askTimeout)
		defer cancel()
		resp, err := backend.Authenticate(actx, &modulev1.AuthenticateRequest{Credential: &modulev1.AuthenticateRequest_Token{
			Token: &modulev1.TokenRef{Id: vt.id, Family: vt.family, Subject: vt.subject},
		}})
		if err != nil {
			return unavailable(name, err)
		}
		fs = &familyState{subject: vt.subject, valid: resp.GetValid(), reason: resp.GetReason(), until: now.Add(a.cfg.CacheTTL)}
		a.rememberAt(gen, func() {
			if len(a.fams) >= a.cfg.MaxEntries {
				a.fams = map[string]*familyState{}
			}
			a.fams[vt.family] = fs
		})
	}
	if !fs.valid {
		return invalid("TOKEN_REVOKED", "Token is no longer valid: "+or(fs.reason, "revoked")+".")
	}
	return nil
}

// apiKey asks the authenticator who the key is, through the cache.
func (a *Authority) apiKey(ctx context.Context, name string, backend Backend, key string) (*modulev1.Principal, error) {
	now := a.cfg.Now()
	h := sha256.Sum256([]byte(key))
	a.mu.RLock()
	ks := a.keysBy[h]
	a.mu.RUnlock()
	if ks == nil || now.After(ks.until) {
		if backend == nil {
			return nil, unavailable(name, errors.New("not running"))
		}
		gen := a.gen.Load()
		actx, cancel := context.WithTimeout(ctx, askTimeout)
		defer cancel()
		resp, err := backend.Authenticate(actx, &modulev1.AuthenticateRequest{Credential: &modulev1.AuthenticateRequest_ApiKey{ApiKey: key}})
		if err != nil {
			return nil, unavailable(name, err)
		}
		ks = &apiKeyState{valid: resp.GetValid(), reason: resp.GetReason(), until: now.Add(a.cfg.CacheTTL)}
		if ks.valid {
			p := resp.GetPrincipal()
			if p.GetSubject() == "" {
				return nil, unavailable(name, errors.New("authenticator accepted an API key without naming its principal"))
			}
			ks.principal = &modulev1.Principal{
				Subject: p.GetSubject(), DisplayName: p.GetDisplayName(), Roles: p.GetRoles(), Scopes: p.GetScopes(),
				Method: "api_key", Attributes: p.GetAttributes(),
			}
			if exp := resp.GetExpiresUnix(); exp > 0 && time.Unix(exp, 0).Before(ks.until) {
				ks.until = time.Unix(exp, 0)
			}
		}
		a.rememberAt(gen, func() {
			if len(a.keysBy) >= a.cfg.MaxEntries {
				a.keysBy = map[[32]byte]*apiKeyState{}
			}
			a.keysBy[h] = ks
		})
	}
	if !ks.valid {
		return nil, invalid("INVALID_API_KEY", "Invalid API key: "+or(ks.reason, "unknown, expired or revoked")+".")
	}
	return ks.principal, nil
}

// remember runs store under the write lock.
func (a *Authority) remember(store func()) {
	a.mu.Lock()
	store()
	a.mu.Unlock()
}

// rememberAt stores an authenticator's answer unless an invalidation happened
// since the question was asked (the answer may predate the revocation).
func (a *Authority) rememberAt(gen uint64, store func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen.Load() != gen {
		return
	}
	store()
}

// Invalidate drops cached state for token families, users (their families and
// API keys) and API keys.
func (a *Authority) Invalidate(families, subjects, apiKeyIDs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen.Add(1)
	for _, f := range families {
		delete(a.fams, f)
	}
	if len(subjects) == 0 && len(apiKeyIDs) == 0 {
		return
	}
	subj := toSet(subjects)
	ids := toSet(apiKeyIDs)
	for f, fs := range a.fams {
		if subj[fs.subject] {
			delete(a.fams, f)
		}
	}
	for h, ks := range a.keysBy {
		if ks.principal == nil {
			continue
		}
		if subj[ks.principal.GetSubject()] || ids[ks.principal.GetAttributes()["api_key_id"]] {
			delete(a.keysBy, h)
		}
	}
}

// InvalidateAll empties every cache.
func (a *Authority) InvalidateAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen.Add(1)
	a.fams = map[string]*familyState{}
	a.keysBy = map[[32]byte]*apiKeyState{}
}

func toSet(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		if x != "" {
			m[x] = true
		}
	}
	return m
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Authorize checks a principal against a route's requirement: 401 when there
// is no principal, 403 when its role is below minRole or it lacks a scope.
// Scopes bind API keys always, and access tokens whose "scopes" claim is not
// empty (a login token's empty list leaves it to the role).
func Authorize(p *modulev1.Principal, minRole string, scopes []string) error {
	if minRole == "" && len(scopes) == 0 {
		return nil
	}
	if p == nil || p.GetSubject() == "" {
		return errMissing
	}
	if minRole != "" {
		ok := false
		for _, r := range p.GetRoles() {
			if sdk.RoleAtLeast(r, minRole) {
				ok = true
				break
			}
		}
		if !ok {
			return &core.Error{Code: core.EFORBIDDEN, ErrorCode: "INSUFFICIENT_ROLE",
				Message: fmt.Sprintf("This route needs the role '%s' or above.", minRole)}
		}
	}
	if len(scopes) > 0 && (p.GetMethod() == "api_key" || len(p.GetScopes()) > 0) {
		for _, s := range scopes {
			if !hasScope(p.GetScopes(), s) {
				return &core.Error{Code: core.EFORBIDDEN, ErrorCode: "INSUFFICIENT_SCOPE",
					Message: fmt.Sprintf("This route needs the scope '%s'.", s)}
			}
		}
	}
	return nil
}

// hasScope reports whether have grants s: exactly, through "*", or through a
// "resource:*" wildcard.
func hasScope(have []string, s string) bool {
	for _, h := range have {
		if h == s || h == "*" {
			return true
		}
		if pre, ok := strings.CutSuffix(h, ":*"); ok && strings.HasPrefix(s, pre+":") {
			return true
		}
	}
	return false
}
