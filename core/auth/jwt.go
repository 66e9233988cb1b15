package auth

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chacc/chacc/core"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
)

// leeway absorbs clock skew between the module that signs and the core.
const leeway = 5 * time.Second

// keyring holds the parsed keys of one authenticator instance.
type keyring struct {
	describe *modulev1.DescribeResponse // the Describe it was parsed from
	byKid    map[string]verificationKey
	all      []verificationKey
	parser   *jwt.Parser
	err      error // the keys could not be parsed
}

type verificationKey struct {
	kid string
	alg string
	key any
}

// keyringFor returns the parsed keys of backend, parsing them once per
// instance. nil when there is no backend and none was seen before.
func (a *Authority) keyringFor(backend Backend) *keyring {
	kr := a.keys.Load()
	if backend == nil {
		// The module is down: tokens verified with its last keys stay
		// verifiable; their families cannot be checked, which fails closed.
		return kr
	}
	d := backend.Describe()
	if kr != nil && kr.describe == d {
		return kr
	}
	kr = parseKeyring(d, a.cfg.Now)
	a.keys.Store(kr)
	return kr
}

func parseKeyring(d *modulev1.DescribeResponse, now func() time.Time) *keyring {
	kr := &keyring{describe: d, byKid: map[string]verificationKey{}}
	au := d.GetAuthenticator()
	if au == nil || len(au.GetKeys()) == 0 {
		kr.err = errors.New("the authenticator module declared no verification keys")
		return kr
	}
	var algs []string
	for _, k := range au.GetKeys() {
		pub, err := x509.ParsePKIXPublicKey(k.GetPublicKey())
		if err != nil {
			kr.err = fmt.Errorf("verification key %q: %w", k.GetKid(), err)
			return kr
		}
		switch k.GetAlg() {
		case "EdDSA":
			if _, ok := pub.(ed25519.PublicKey); !ok {
				kr.err = fmt.Errorf("verification key %q: EdDSA needs an Ed25519 key, not %T", k.GetKid(), pub)
				return kr
			}
		case "RS256":
			rk, ok := pub.(*rsa.PublicKey)
			if !ok || rk.N.BitLen() < 2048 {
				kr.err = fmt.Errorf("verification key %q: RS256 needs an RSA key of 2048 bits or more", k.GetKid())
				return kr
			}
		default:
			kr.err = fmt.Errorf("verification key %q: algorithm %q is not EdDSA or RS256", k.GetKid(), k.GetAlg())
			return kr
		}
		vk := verificationKey{kid: k.GetKid(), alg: k.GetAlg(), key: pub}
		kr.all = append(kr.all, vk)
		if vk.kid != "" {
			kr.byKid[vk.kid] = vk
		}
		if !slices.Contains(algs, vk.alg) {
			algs = append(algs, vk.alg)
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs), // never "none", never HS*
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
	}
	if iss := au.GetIssuer(); iss != "" {
		opts = append(opts, jwt.WithIssuer(iss))
	}
	if aud := au.GetAudience(); aud != "" {
		opts = append(opts, jwt.WithAudience(aud))
	}
	kr.parser = jwt.NewParser(opts...)
	return kr
}

// claims are the access token's claims.
type claims struct {
	jwt.RegisteredClaims
	Role   string   `json:"role"`
	Scopes []string `json:"scopes"`
	Family string   `json:"fam"`
	Name   string   `json:"name,omitempty"`
	Email  string   `json:"email,omitempty"`
}

// verifiedToken is a token whose signature and claims passed.
type verifiedToken struct {
	ring      *keyring
	id        string
	family    string
	subject   string
	notBefore time.Time
	expires   time.Time
	principal *modulev1.Principal
}

func badToken(msg string) *core.Error { return invalid("INVALID_TOKEN", msg) }

// verify checks raw's signature, algorithm, issuer, audience and times.
func (kr *keyring) verify(raw string) (*verifiedToken, error) {
	if kr.err != nil {
		return nil, &core.Error{Code: core.EUNAVAILABLE, ErrorCode: "AUTHENTICATOR_MISCONFIGURED", RetryAfter: 30,
			Message: "Cannot verify tokens: the authenticator's keys are unusable.", Err: kr.err}
	}
	var c claims
	p := kr.parser
	_, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		if kid, ok := t.Header["kid"].(string); ok && kid != "" {
			k, found := kr.byKid[kid]
			if !found {
				return nil, fmt.Errorf("unknown key id %q", kid)
			}
			if k.alg != alg {
				return nil, fmt.Errorf("key %q is for %s, not %s", kid, k.alg, alg)
			}
			return k.key, nil
		}
		var set jwt.VerificationKeySet
		for _, k := range kr.all {
			if k.alg == alg {
				set.Keys = append(set.Keys, k.key)
			}
		}
		return set, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, badToken("Token has expired.")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, badToken("Token is not valid yet.")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, badToken("Token is malformed.")
	default:
		return nil, badToken("Token is invalid.")
	}
	if c.Subject == "" || c.Family == "" || c.ID == "" {
		return nil, badToken("Token lacks a required claim (sub, fam, jti).")
	}
	if !slices.Contains(sdk.Roles, c.Role) {
		return nil, badToken("Token carries an unknown role.")
	}
	vt := &verifiedToken{
		ring: kr, id: c.ID, family: c.Family, subject: c.Subject, expires: c.ExpiresAt.Time,
		principal: &modulev1.Principal{
			Subject: c.Subject, DisplayName: c.Name, Roles: []string{c.Role}, Scopes: c.Scopes, Method: "jwt",
			Attributes: map[string]string{"family": c.Family, "token_id": c.ID},
		},
	}
	if c.Email != "" {
		vt.principal.Attributes["email"] = c.Email
	}
	if c.NotBefore != nil {
		vt.notBefore = c.NotBefore.Time
	}
	return vt, nil
}

// checkTime re-checks a cached token's validity window.
func (vt *verifiedToken) checkTime(now time.Time) error {
	if now.After(vt.expires.Add(leeway)) {
		return badToken("Token has expired.")
	}
	if !vt.notBefore.IsZero() && now.Add(leeway).Before(vt.notBefore) {
		return badToken("Token is not valid yet.")
	}
	return nil
}
