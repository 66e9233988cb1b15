package authapp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"gorm.io/gorm"
)

// Purposes of one-time codes.
const (
	purposeVerifyEmail   = "verify_email"
	purposePasswordReset = "password_reset"
)

// One-time code rules (API.md): 6 digits, valid 15 minutes, 3 wrong tries,
// a new one at most once a minute per address.
const (
	codeTTL         = 15 * time.Minute
	maxCodeAttempts = 3
	resendInterval  = time.Minute
)

// newCode returns a random 6-digit code.
func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// codeHash is how a code is kept: an HMAC keyed with a secret of the module
// (see newService) over the user, the purpose and the code, so that a
// leaked table alone does not give the codes away and a code of one user or
// purpose never matches another.
func (s *service) codeHash(userID, purpose, code string) string {
	m := hmac.New(sha256.New, s.codeKey)
	fmt.Fprintf(m, "%s\x00%s\x00%s", userID, purpose, code)
	return hex.EncodeToString(m.Sum(nil))
}

// issueCode makes a new code for u and purpose, replacing the current one,
// unless the current one was sent less than a minute ago: then it returns
// "" and how long to wait. The check and the replacement are one statement,
// so two requests at once send one code.
func (s *service) issueCode(ctx context.Context, u *user, purpose string) (code string, retryAfter time.Duration, err error) {
	now := s.now()
	code = newCode()
	res := s.db.WithContext(ctx).Exec(
		`INSERT INTO one_time_codes (user_id, purpose, code_hash, expires_at, attempts, sent_at) VALUES (?, ?, ?, ?, 0, ?)
		 ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at,
		   attempts = 0, sent_at = excluded.sent_at
		 WHERE one_time_codes.sent_at <= ?`,
		u.ID, purpose, s.codeHash(u.ID, purpose, code), now.Add(codeTTL), now, now.Add(-resendInterval))
	if res.Error != nil {
		return "", 0, fmt.Errorf("store code: %w", res.Error)
	}
	if res.RowsAffected > 0 {
		return code, 0, nil
	}
	var cur oneTimeCode
	if err := s.db.WithContext(ctx).Where("user_id = ? AND purpose = ?", u.ID, purpose).Take(&cur).Error; err != nil {
		return "", 0, fmt.Errorf("read code: %w", err)
	}
	return "", max(cur.SentAt.Add(resendInterval).Sub(now), time.Second), nil
}

// consumeCode checks code for the user with email and purpose and, when it
// is right, uses it up and returns the user. A wrong code counts against
// the code's attempts; once they are spent, even the right code fails until
// a new one is sent.
func (s *service) consumeCode(ctx context.Context, email, purpose, code string) (*user, error) {
	db := s.db.WithContext(ctx)
	u, err := s.userByEmail(ctx, email)
	if err != nil || u == nil {
		return nil, orInvalid(err)
	}
	var cur oneTimeCode
	err = db.Where("user_id = ? AND purpose = ?", u.ID, purpose).Limit(1).Find(&cur).Error
	if err != nil || cur.UserID == "" {
		return nil, orInvalid(err)
	}
	if cur.Attempts >= maxCodeAttempts {
		return nil, errAttemptsExhausted()
	}
	if !s.now().Before(cur.ExpiresAt) {
		return nil, newError(http.StatusBadRequest, "CODE_EXPIRED", "The code has expired; request a new one.")
	}
	if !hmac.Equal([]byte(cur.CodeHash), []byte(s.codeHash(u.ID, purpose, code))) {
		res := db.Model(&oneTimeCode{}).
			Where("user_id = ? AND purpose = ? AND code_hash = ? AND attempts < ?", u.ID, purpose, cur.CodeHash, maxCodeAttempts).
			Update("attempts", gorm.Expr("attempts + 1"))
		if res.Error != nil {
			return nil, res.Error
		}
		left := maxCodeAttempts - cur.Attempts - 1
		if res.RowsAffected == 0 || left <= 0 {
			return nil, errAttemptsExhausted()
		}
		e := errInvalidCode().(*apiError)
		e.Detail = fmt.Sprintf("Invalid code; %d attempt(s) left.", left)
		return nil, e
	}
	// Deleting is using: of two requests with the right code, one wins. The
	// attempts guard keeps a right guess that raced wrong ones from counting
	// once they have spent the attempts.
	res := db.Where("user_id = ? AND purpose = ? AND code_hash = ? AND attempts < ?", u.ID, purpose, cur.CodeHash, maxCodeAttempts).
		Delete(&oneTimeCode{})
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 0 {
		return nil, errInvalidCode()
	}
	return u, nil
}

func errAttemptsExhausted() error {
	return newError(http.StatusBadRequest, "CODE_ATTEMPTS_EXCEEDED", "Too many wrong codes; request a new one.")
}

// orInvalid is err, or the generic invalid-code error when err is nil (no
// such user or code: the answer does not tell which).
func orInvalid(err error) error {
	if err != nil {
		return err
	}
	return errInvalidCode()
}
