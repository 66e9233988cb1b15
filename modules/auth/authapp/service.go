package authapp

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chacc/chacc/sdk"
)

// eventUserRegistered is published when an account is created by
// registration; module_meta.json lists it under "publishes".
const eventUserRegistered = "auth.user_registered"

// Roles, lowest first (sdk.Roles); new accounts get the lowest.
const (
	roleViewer = "viewer"
	roleAdmin  = "admin"
)

// maxDisplayName is the longest display name, in characters.
const maxDisplayName = 100

// Reasons a token family is revoked, kept in token_families.revoke_reason.
const (
	revokedLogout        = "logout"
	revokedReuse         = "refresh_reuse"
	revokedPasswordReset = "password_reset"
	revokedRoleChange    = "role_change"
	revokedDisabled      = "disabled"
)

// service holds the module's rules; handlers.go serves them over HTTP and
// authenticator.go to the core.
type service struct {
	rt     *sdk.Runtime
	log    *slog.Logger
	db     *gorm.DB
	cfg    config
	signer *signer
	now    func() time.Time
	mail   *mailer
	// dummyHash is compared against when the login name is unknown, so that
	// an unknown name takes as long as a wrong password.
	dummyHash string
	// codeKey keys the HMAC of one-time codes. It is derived from the
	// signing key, which is configured or kept in the database.
	codeKey []byte
}

func newService(rt *sdk.Runtime, st *store, cfg config, sg *signer, now func() time.Time) (*service, error) {
	dummy, err := hashPassword(randomToken(16), cfg.BcryptCost)
	if err != nil {
		return nil, err
	}
	key := sha256.Sum256(append([]byte("chacc-auth one-time codes\x00"), sg.priv.Seed()...))
	return &service{
		rt: rt, log: rt.Logger(), db: st.db, cfg: cfg, signer: sg, now: now,
		mail:      &mailer{smtp: cfg.SMTP, dev: rt.Mode() == "development", log: rt.Logger()},
		dummyHash: dummy, codeKey: key[:],
	}, nil
}

// userByEmail returns the user with the (normalized) email, nil if none.
func (s *service) userByEmail(ctx context.Context, email string) (*user, error) {
	return s.findUser(ctx, "email = ?", strings.ToLower(strings.TrimSpace(email)))
}

// userByID returns the user with id, nil if none.
func (s *service) userByID(ctx context.Context, id string) (*user, error) {
	return s.findUser(ctx, "id = ?", id)
}

func (s *service) findUser(ctx context.Context, where string, arg any) (*user, error) {
	var u user
	if err := s.db.WithContext(ctx).Where(where, arg).Limit(1).Find(&u).Error; err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	if u.ID == "" {
		return nil, nil
	}
	return &u, nil
}

// registerInput is the body of POST /register.
type registerInput struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	Username    string `json:"username"`
}

// register creates an account with the lowest role and sends it a
// verification code.
func (s *service) register(ctx context.Context, in registerInput) (*user, error) {
	if !s.cfg.AllowRegistration {
		return nil, newError(http.StatusForbidden, "REGISTRATION_DISABLED", "Self-registration is turned off; ask an administrator for an account.")
	}
	email, err := normalizeEmail(in.Email)
	if err != nil {
		return nil, invalid("Field 'email': %s.", err)
	}
	if err := checkPasswordPolicy(in.Password); err != nil {
		return nil, newError(http.StatusUnprocessableEntity, "WEAK_PASSWORD", "Field 'password': %s.", err)
	}
	var username *string
	if in.Username != "" {
		n, err := normalizeUsername(in.Username)
		if err != nil {
			return nil, invalid("Field 'username': %s.", err)
		}
		username = &n
	}
	name, err := displayName(in.DisplayName, email)
	if err != nil {
		return nil, err
	}
	hash, err := hashPassword(in.Password, s.cfg.BcryptCost)
	if err != nil {
		return nil, err
	}
	now := s.now()
	u := &user{
		ID: uuid.Must(uuid.NewV7()).String(), Email: email, Username: username, DisplayName: name,
		PasswordHash: hash, Role: roleViewer, IsActive: true, PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(u)
	if res.Error != nil {
		return nil, fmt.Errorf("create user: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		if existing, err := s.userByEmail(ctx, email); err != nil || existing != nil {
			return nil, cmpErr(err, newError(http.StatusConflict, "EMAIL_TAKEN", "An account with this email already exists."))
		}
		return nil, newError(http.StatusConflict, "USERNAME_TAKEN", "This username is taken.")
	}

	if code, _, err := s.issueCode(ctx, u, purposeVerifyEmail); err != nil {
		s.log.ErrorContext(ctx, "making the verification code failed", "user_id", u.ID, "error", err.Error())
	} else if code != "" {
		s.mail.sendCode(ctx, u.Email, purposeVerifyEmail, code)
	}
	if _, err := s.rt.Publish(ctx, eventUserRegistered, map[string]any{
		"user_id": u.ID, "email": u.Email, "display_name": u.DisplayName, "role": u.Role, "created_at": u.CreatedAt,
	}); err != nil {
		s.log.WarnContext(ctx, "publishing "+eventUserRegistered+" failed", "user_id", u.ID, "error", err.Error())
	}
	return u, nil
}

// cmpErr is err if not nil, else fallback.
func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// displayName checks a display name, defaulting to the email's local part.
func displayName(name, email string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	if utf8.RuneCountInString(name) > maxDisplayName || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", invalid("Field 'display_name' must be at most %d characters, without control characters.", maxDisplayName)
	}
	return name, nil
}

// verifyEmail marks the address verified with the code sent to it.
func (s *service) verifyEmail(ctx context.Context, email, code string) (*user, error) {
	if err := checkCodeInput(email, code); err != nil {
		return nil, err
	}
	u, err := s.consumeCode(ctx, email, purposeVerifyEmail, code)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if u.EmailVerifiedAt == nil {
		u.EmailVerifiedAt, u.UpdatedAt = &now, now
		if err := s.db.WithContext(ctx).Model(u).Updates(map[string]any{"email_verified_at": now, "updated_at": now}).Error; err != nil {
			return nil, err
		}
	}
	return u, nil
}

// checkCodeInput checks the email and code fields of a code request.
func checkCodeInput(email, code string) error {
	if strings.TrimSpace(email) == "" {
		return invalid("Field 'email' is required.")
	}
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		return invalid("Field 'code' must be the 6-digit code sent by email.")
	}
	return nil
}

// resendVerification sends a new verification code to an unverified
// account. An unknown or verified address is answered as a sent one.
func (s *service) resendVerification(ctx context.Context, email string) error {
	if strings.TrimSpace(email) == "" {
		return invalid("Field 'email' is required.")
	}
	if !s.mail.available() {
		return newError(http.StatusServiceUnavailable, "EMAIL_UNAVAILABLE", "Email delivery is not configured on this server (AUTH_SMTP_HOST); ask an administrator.")
	}
	u, err := s.userByEmail(ctx, email)
	if err != nil || u == nil || u.EmailVerifiedAt != nil || !u.IsActive {
		return err
	}
	code, wait, err := s.issueCode(ctx, u, purposeVerifyEmail)
	if err != nil {
		return err
	}
	if code == "" {
		e := newError(http.StatusTooManyRequests, "RATE_LIMITED", "A code was sent less than a minute ago; try again in %d seconds.", secondsCeil(wait))
		e.RetryAfter = wait
		return e
	}
	s.mail.sendCode(ctx, u.Email, purposeVerifyEmail, code)
	return nil
}

// secondsCeil is d in whole seconds, rounded up.
func secondsCeil(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// session is what a login or a refresh returns.
type session struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int
	User         *user
}

// login checks a login name (email, or username) and password and opens a
// session. Consecutive failures lock the account; while it is locked, even
// the right password fails.
func (s *service) login(ctx context.Context, name, password string) (*session, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" || password == "" {
		return nil, invalid("Fields 'email' (or 'username') and 'password' are required.")
	}
	var u *user
	var err error
	if strings.Contains(name, "@") {
		u, err = s.findUser(ctx, "email = ?", name)
	} else {
		u, err = s.findUser(ctx, "username = ?", name)
	}
	if err != nil {
		return nil, err
	}
	if u == nil {
		passwordMatches(s.dummyHash, password)
		return nil, errInvalidCredentials()
	}
	now := s.now()
	if u.LockedUntil != nil && now.Before(*u.LockedUntil) {
		return nil, lockedError(u.LockedUntil.Sub(now))
	}
	if !passwordMatches(u.PasswordHash, password) {
		lockedFor, err := s.recordFailedLogin(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		if lockedFor > 0 {
			s.log.WarnContext(ctx, "account locked after too many failed logins", "user_id", u.ID, "client_ip", sdk.RequestFrom(ctx).ClientIP)
			return nil, lockedError(lockedFor)
		}
		return nil, errInvalidCredentials()
	}
	if !u.IsActive {
		return nil, newError(http.StatusUnauthorized, "ACCOUNT_DISABLED", "This account is disabled.")
	}
	if s.cfg.RequireVerifiedEmail && u.EmailVerifiedAt == nil {
		return nil, newError(http.StatusForbidden, "EMAIL_NOT_VERIFIED", "Verify your email address before logging in (POST %s/verify-email).", prefix)
	}
	changes := map[string]any{"failed_logins": 0, "locked_until": nil, "last_login_at": now, "updated_at": now}
	if needsRehash(u.PasswordHash, s.cfg.BcryptCost) {
		if h, err := hashPassword(password, s.cfg.BcryptCost); err == nil {
			changes["password_hash"] = h
		}
	}
	if err := s.db.WithContext(ctx).Model(&user{}).Where("id = ?", u.ID).Updates(changes).Error; err != nil {
		return nil, err
	}
	u.FailedLogins, u.LockedUntil, u.LastLoginAt = 0, nil, &now
	return s.openSession(ctx, u)
}

// lockedError is the answer for a locked account.
func lockedError(left time.Duration) error {
	e := newError(http.StatusUnauthorized, "ACCOUNT_LOCKED",
		"The account is locked after too many failed logins; try again in %d minute(s).", int((left+time.Minute-1)/time.Minute))
	e.RetryAfter = left
	return e
}

// recordFailedLogin counts a failed login in one statement (processes
// sharing the database count together) and locks the account when the
// count reaches the limit, starting the count again. It returns how long
// the account is now locked, 0 if it is not.
func (s *service) recordFailedLogin(ctx context.Context, userID string) (time.Duration, error) {
	now := s.now()
	until := now.Add(s.cfg.Lockout)
	limit := s.cfg.MaxFailedLogins
	err := s.db.WithContext(ctx).Exec(
		`UPDATE users SET
		   locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END,
		   failed_logins = CASE WHEN failed_logins + 1 >= ? THEN 0 ELSE failed_logins + 1 END,
		   updated_at = ?
		 WHERE id = ?`, limit, until, limit, now, userID).Error
	if err != nil {
		return 0, fmt.Errorf("count failed login: %w", err)
	}
	u, err := s.userByID(ctx, userID)
	if err != nil || u == nil || u.LockedUntil == nil || !now.Before(*u.LockedUntil) {
		return 0, err
	}
	return u.LockedUntil.Sub(now), nil
}

// openSession starts a token family for u with its first refresh token and
// an access token.
func (s *service) openSession(ctx context.Context, u *user) (*session, error) {
	now := s.now()
	fam := tokenFamily{ID: uuid.Must(uuid.NewV7()).String(), UserID: u.ID, CreatedAt: now}
	var raw string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&fam).Error; err != nil {
			return err
		}
		var err error
		raw, err = s.newRefreshToken(tx, u.ID, fam.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	return s.sessionFor(u, fam.ID, raw)
}

// newRefreshToken stores a new refresh token of family fam and returns it.
func (s *service) newRefreshToken(tx *gorm.DB, userID, fam string) (string, error) {
	raw := randomToken(32)
	now := s.now()
	rt := refreshToken{
		ID: uuid.Must(uuid.NewV7()).String(), FamilyID: fam, UserID: userID, TokenHash: sha256Hex(raw),
		ExpiresAt: now.Add(s.cfg.RefreshTTL), CreatedAt: now,
	}
	if err := tx.Create(&rt).Error; err != nil {
		return "", err
	}
	return raw, nil
}

func (s *service) sessionFor(u *user, fam, refresh string) (*session, error) {
	access, exp, err := s.signAccessToken(u, fam)
	if err != nil {
		return nil, err
	}
	return &session{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(exp.Sub(s.now()) / time.Second), User: u}, nil
}

// refresh rotates a refresh token: the token is marked used and a new pair
// of the same family is returned. A token presented again after its
// rotation means it was stolen (or the client is broken): the whole family
// is revoked, the new tokens with it.
func (s *service) refresh(ctx context.Context, raw string) (*session, error) {
	if raw == "" {
		return nil, invalid("Field 'refresh_token' is required.")
	}
	invalidToken := newError(http.StatusUnauthorized, "INVALID_REFRESH_TOKEN", "Invalid refresh token.")
	db := s.db.WithContext(ctx)
	var tok refreshToken
	if err := db.Where("token_hash = ?", sha256Hex(raw)).Limit(1).Find(&tok).Error; err != nil {
		return nil, err
	}
	if tok.ID == "" {
		return nil, invalidToken
	}
	if tok.UsedAt != nil {
		return nil, s.reuseDetected(ctx, &tok)
	}
	var fam tokenFamily
	if err := db.Where("id = ?", tok.FamilyID).Limit(1).Find(&fam).Error; err != nil {
		return nil, err
	}
	if fam.ID == "" || fam.RevokedAt != nil {
		return nil, newError(http.StatusUnauthorized, "TOKEN_REVOKED", "The session has ended; log in again.")
	}
	now := s.now()
	if !now.Before(tok.ExpiresAt) {
		return nil, newError(http.StatusUnauthorized, "REFRESH_TOKEN_EXPIRED", "The refresh token has expired; log in again.")
	}
	u, err := s.userByID(ctx, tok.UserID)
	if err != nil {
		return nil, err
	}
	if u == nil || !u.IsActive {
		return nil, newError(http.StatusUnauthorized, "ACCOUNT_DISABLED", "This account is disabled.")
	}

	var next string
	reused := false
	err = db.Transaction(func(tx *gorm.DB) error {
		// Of two requests rotating one token at once, one wins; the other
		// is a reuse.
		res := tx.Model(&refreshToken{}).Where("id = ? AND used_at IS NULL", tok.ID).Update("used_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			reused = true
			return nil
		}
		var err error
		next, err = s.newRefreshToken(tx, u.ID, fam.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rotate refresh token: %w", err)
	}
	if reused {
		return nil, s.reuseDetected(ctx, &tok)
	}
	return s.sessionFor(u, fam.ID, next)
}

// reuseDetected revokes the family of a reused refresh token and returns
// the answer to give.
func (s *service) reuseDetected(ctx context.Context, tok *refreshToken) error {
	s.log.WarnContext(ctx, "refresh token reuse detected: token family revoked",
		"user_id", tok.UserID, "family", tok.FamilyID, "client_ip", sdk.RequestFrom(ctx).ClientIP)
	if err := s.revokeFamily(ctx, tok.FamilyID, "", revokedReuse); err != nil {
		return err
	}
	return newError(http.StatusUnauthorized, "REFRESH_TOKEN_REUSED", "Refresh token reuse detected")
}

// revokeFamily revokes a token family (of userID, when not empty) and
// tells the core, so that its access tokens stop working at once.
func (s *service) revokeFamily(ctx context.Context, fam, userID, reason string) error {
	q := s.db.WithContext(ctx).Model(&tokenFamily{}).Where("id = ? AND revoked_at IS NULL", fam)
	if userID != "" {
		q = q.Where("user_id = ?", userID)
	}
	if err := q.Updates(map[string]any{"revoked_at": s.now(), "revoke_reason": reason}).Error; err != nil {
		return fmt.Errorf("revoke token family: %w", err)
	}
	s.invalidate(ctx, sdk.Invalidation{Families: []string{fam}})
	return nil
}

// revokeSessions revokes every token family of a user and tells the core,
// which also drops what it caches about the user's API keys.
func (s *service) revokeSessions(ctx context.Context, userID, reason string) error {
	err := s.db.WithContext(ctx).Model(&tokenFamily{}).Where("user_id = ? AND revoked_at IS NULL", userID).
		Updates(map[string]any{"revoked_at": s.now(), "revoke_reason": reason}).Error
	if err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	s.invalidate(ctx, sdk.Invalidation{Subjects: []string{userID}})
	return nil
}

// invalidate makes the core drop what it caches about inv. The database is
// the truth and is already updated; if the core cannot be told, its cache
// expires on its own, so the failure is logged, not answered.
func (s *service) invalidate(ctx context.Context, inv sdk.Invalidation) {
	if err := s.rt.InvalidateCredentials(ctx, inv); err != nil {
		s.log.ErrorContext(ctx, "telling the core about a revocation failed; it holds until its cache expires", "error", err.Error())
	}
}

// logout revokes the caller's token family.
func (s *service) logout(ctx context.Context, p sdk.Principal) error {
	fam := p.Attributes["family"]
	if fam == "" {
		return newError(http.StatusBadRequest, "NO_SESSION",
			"Logout ends a login session and needs its access token; an API key is revoked with DELETE %s/api-keys/{id}.", prefix)
	}
	return s.revokeFamily(ctx, fam, p.Subject, revokedLogout)
}

// requestPasswordReset sends a reset code when an active account has the
// address. It never tells whether one does.
func (s *service) requestPasswordReset(ctx context.Context, email string) error {
	if strings.TrimSpace(email) == "" {
		return invalid("Field 'email' is required.")
	}
	u, err := s.userByEmail(ctx, email)
	if err != nil || u == nil || !u.IsActive {
		return err
	}
	code, _, err := s.issueCode(ctx, u, purposePasswordReset)
	if err != nil || code == "" { // a code went out less than a minute ago
		return err
	}
	s.mail.sendCode(ctx, u.Email, purposePasswordReset, code)
	return nil
}

// confirmPasswordReset sets a new password with a reset code, unlocks the
// account and ends every session of the user.
func (s *service) confirmPasswordReset(ctx context.Context, email, code, password string) error {
	if err := checkCodeInput(email, code); err != nil {
		return err
	}
	if err := checkPasswordPolicy(password); err != nil {
		return newError(http.StatusUnprocessableEntity, "WEAK_PASSWORD", "Field 'new_password': %s.", err)
	}
	u, err := s.consumeCode(ctx, email, purposePasswordReset, code)
	if err != nil {
		return err
	}
	if !u.IsActive {
		return errInvalidCode()
	}
	hash, err := hashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return err
	}
	now := s.now()
	changes := map[string]any{"password_hash": hash, "password_changed_at": now, "failed_logins": 0, "locked_until": nil, "updated_at": now}
	if u.EmailVerifiedAt == nil {
		changes["email_verified_at"] = now // the code proved the mailbox
	}
	if err := s.db.WithContext(ctx).Model(&user{}).Where("id = ?", u.ID).Updates(changes).Error; err != nil {
		return err
	}
	return s.revokeSessions(ctx, u.ID, revokedPasswordReset)
}

// Limits of API keys.
const (
	maxAPIKeysPerUser = 100
	maxScopes         = 50
	maxKeyLifetime    = 3650 * 24 * time.Hour
	apiKeyPrefix      = "rak_"
	// apiKeyShownPrefix is how much of a key listings show: "rak_" and 8.
	apiKeyShownPrefix = len(apiKeyPrefix) + 8
)

// scopePattern is what a scope may be: "outages:read", "sla:*".
var scopePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9:._*-]{0,63}$`)

// apiKeyInput is the body of POST /api-keys.
type apiKeyInput struct {
	Name          string   `json:"name"`
	Scopes        []string `json:"scopes"`
	ExpiresAt     *time.Time
	ExpiresInDays *int
	// ExpiresDays is the reference's name for ExpiresInDays.
	ExpiresDays *int
}

// createAPIKey makes a key for the caller and returns it with its value,
// which is never shown again. A caller restricted by scopes can only make
// keys with a subset of its own.
func (s *service) createAPIKey(ctx context.Context, p sdk.Principal, in apiKeyInput) (*apiKey, string, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return nil, "", invalid("Field 'name' is required, at most 100 characters.")
	}
	scopes := []string{}
	for _, sc := range in.Scopes {
		if !scopePattern.MatchString(sc) {
			return nil, "", invalid("Field 'scopes': %q is not a scope (1 to 64 characters from a-z, 0-9, ':', '.', '_', '*', '-').", sc)
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) > maxScopes {
		return nil, "", invalid("Field 'scopes' holds at most %d scopes.", maxScopes)
	}
	if restricted(p) {
		for _, sc := range scopes {
			if !p.HasScope(sc) {
				return nil, "", newError(http.StatusForbidden, "INSUFFICIENT_SCOPE", "A key cannot be given scope %q, which the caller does not have.", sc)
			}
		}
		if len(scopes) == 0 {
			return nil, "", newError(http.StatusForbidden, "INSUFFICIENT_SCOPE", "A caller restricted by scopes must name the key's scopes.")
		}
	}
	now := s.now()
	var expires *time.Time
	days := in.ExpiresInDays
	if days == nil {
		days = in.ExpiresDays
	}
	switch {
	case in.ExpiresAt != nil && days != nil:
		return nil, "", invalid("Give 'expires_at' or 'expires_in_days', not both.")
	case in.ExpiresAt != nil:
		t := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		if !t.After(now) || t.Sub(now) > maxKeyLifetime {
			return nil, "", invalid("Field 'expires_at' must be in the future, within 10 years.")
		}
		expires = &t
	case days != nil:
		if *days < 1 || *days > 3650 {
			return nil, "", invalid("Field 'expires_in_days' must be from 1 to 3650.")
		}
		t := now.Add(time.Duration(*days) * 24 * time.Hour)
		expires = &t
	}
	owner, err := s.userByID(ctx, p.Subject)
	if err != nil {
		return nil, "", err
	}
	if owner == nil || !owner.IsActive {
		return nil, "", errUnauthenticated()
	}
	var n int64
	if err := s.db.WithContext(ctx).Model(&apiKey{}).Where("user_id = ? AND revoked_at IS NULL", owner.ID).Count(&n).Error; err != nil {
		return nil, "", err
	}
	if n >= maxAPIKeysPerUser {
		return nil, "", newError(http.StatusConflict, "TOO_MANY_API_KEYS", "At most %d API keys per user; delete one first.", maxAPIKeysPerUser)
	}
	raw := apiKeyPrefix + randomToken(32)
	k := &apiKey{
		ID: uuid.Must(uuid.NewV7()).String(), UserID: owner.ID, Name: name, Prefix: raw[:apiKeyShownPrefix],
		KeyHash: sha256Hex(raw), Scopes: scopes, ExpiresAt: expires, CreatedAt: now,
	}
	if err := s.db.WithContext(ctx).Create(k).Error; err != nil {
		return nil, "", fmt.Errorf("create API key: %w", err)
	}
	return k, raw, nil
}

// listAPIKeys returns the caller's keys that are not revoked, newest first.
func (s *service) listAPIKeys(ctx context.Context, p sdk.Principal) ([]apiKey, error) {
	keys := []apiKey{}
	err := s.db.WithContext(ctx).Where("user_id = ? AND revoked_at IS NULL", p.Subject).Order("created_at DESC, id DESC").Find(&keys).Error
	return keys, err
}

// deleteAPIKey revokes a key of the caller, or any key for an admin. Another
// user's key is "not found" to a non-admin.
func (s *service) deleteAPIKey(ctx context.Context, p sdk.Principal, id string) error {
	notFound := newError(http.StatusNotFound, "NOT_FOUND", "API key not found.")
	if uuid.Validate(id) != nil {
		return notFound
	}
	db := s.db.WithContext(ctx)
	var k apiKey
	if err := db.Where("id = ? AND revoked_at IS NULL", id).Limit(1).Find(&k).Error; err != nil {
		return err
	}
	if k.ID == "" || (k.UserID != p.Subject && !p.HasRole(roleAdmin)) {
		return notFound
	}
	if err := db.Model(&apiKey{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", s.now()).Error; err != nil {
		return err
	}
	s.invalidate(ctx, sdk.Invalidation{APIKeyIDs: []string{id}})
	return nil
}

// restricted reports whether scopes govern p: an API key always, a token
// when it carries scopes. Login tokens carry none.
func restricted(p sdk.Principal) bool { return p.Method == "api_key" || len(p.Scopes) > 0 }

// listUsers returns a page of users, oldest first, and how many match.
func (s *service) listUsers(ctx context.Context, role, q string, limit, offset int) ([]user, int64, error) {
	db := s.db.WithContext(ctx).Model(&user{})
	if role != "" {
		db = db.Where("role = ?", role)
	}
	if q != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(strings.ToLower(q)) + "%"
		db = db.Where(`(email LIKE ? ESCAPE '\' OR LOWER(display_name) LIKE ? ESCAPE '\')`, like, like)
	}
	var total int64
	if err := db.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	users := []user{}
	err := db.Order("created_at, id").Limit(limit).Offset(offset).Find(&users).Error
	return users, total, err
}

// userPatch is the body of PATCH /users/{id}; absent fields are kept.
type userPatch struct {
	Role        *string `json:"role"`
	IsActive    *bool   `json:"is_active"`
	Disabled    *bool   `json:"disabled"`
	DisplayName *string `json:"display_name"`
}

// patchUser changes a user's role, active state or display name. A role
// change or a disabling ends the user's sessions, so that new tokens carry
// the new role. An admin cannot demote or disable themselves, which also
// keeps at least one admin.
func (s *service) patchUser(ctx context.Context, p sdk.Principal, id string, in userPatch) (*user, error) {
	active := in.IsActive
	if in.Disabled != nil {
		a := !*in.Disabled
		if active != nil && *active != a {
			return nil, invalid("Fields 'is_active' and 'disabled' contradict each other.")
		}
		active = &a
	}
	if in.Role == nil && active == nil && in.DisplayName == nil {
		return nil, invalid("Give at least one of 'role', 'is_active' (or 'disabled'), 'display_name'.")
	}
	if in.Role != nil && !slices.Contains(sdk.Roles, *in.Role) {
		return nil, invalid("Field 'role' must be one of %s.", strings.Join(sdk.Roles, ", "))
	}
	if id == p.Subject {
		if in.Role != nil && *in.Role != roleAdmin {
			return nil, newError(http.StatusConflict, "CANNOT_MODIFY_SELF", "Admins cannot demote themselves; ask another admin.")
		}
		if active != nil && !*active {
			return nil, newError(http.StatusConflict, "CANNOT_MODIFY_SELF", "Admins cannot disable themselves; ask another admin.")
		}
	}
	u, err := s.userByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, newError(http.StatusNotFound, "NOT_FOUND", "User not found.")
	}
	now := s.now()
	changes := map[string]any{}
	revoke := ""
	if in.Role != nil && *in.Role != u.Role {
		changes["role"], u.Role, revoke = *in.Role, *in.Role, revokedRoleChange
	}
	if active != nil && *active != u.IsActive {
		changes["is_active"], u.IsActive = *active, *active
		if !*active {
			revoke = revokedDisabled
		}
	}
	if in.DisplayName != nil {
		name, err := displayName(*in.DisplayName, u.Email)
		if err != nil {
			return nil, err
		}
		changes["display_name"], u.DisplayName = name, name
	}
	if len(changes) == 0 {
		return u, nil
	}
	changes["updated_at"], u.UpdatedAt = now, now
	if err := s.db.WithContext(ctx).Model(&user{}).Where("id = ?", id).Updates(changes).Error; err != nil {
		return nil, err
	}
	if revoke != "" {
		if err := s.revokeSessions(ctx, id, revoke); err != nil {
			return nil, err
		}
	}
	return u, nil
}
