package authapp

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Password limits. bcrypt reads at most 72 bytes: a longer password is
// refused rather than silently cut.
const (
	minPasswordLen   = 8
	maxPasswordBytes = 72
)

// checkPasswordPolicy returns nil for a password with at least 8 characters,
// an upper-case and a lower-case letter, a digit and a special character;
// otherwise an error listing everything missing.
func checkPasswordPolicy(pw string) error {
	if len(pw) > maxPasswordBytes {
		return fmt.Errorf("password must be at most %d bytes", maxPasswordBytes)
	}
	var upper, lower, digit, special bool
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsPunct(r) || unicode.IsSymbol(r) || r == ' ':
			special = true
		}
	}
	var missing []string
	if utf8.RuneCountInString(pw) < minPasswordLen {
		missing = append(missing, fmt.Sprintf("at least %d characters", minPasswordLen))
	}
	for _, m := range []struct {
		ok   bool
		what string
	}{{upper, "an upper-case letter"}, {lower, "a lower-case letter"}, {digit, "a digit"}, {special, "a special character"}} {
		if !m.ok {
			missing = append(missing, m.what)
		}
	}
	if len(missing) > 0 {
		return errors.New("password needs " + strings.Join(missing, ", "))
	}
	return nil
}

// hashPassword returns the bcrypt hash of pw.
func hashPassword(pw string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// passwordMatches reports whether pw is the password of hash, in constant
// time for a given hash. A password longer than bcrypt reads never matches:
// bcrypt would compare only its first 72 bytes.
func passwordMatches(hash, pw string) bool {
	if len(pw) > maxPasswordBytes {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// needsRehash reports whether hash was made with another cost than cost.
func needsRehash(hash string, cost int) bool {
	c, err := bcrypt.Cost([]byte(hash))
	return err != nil || c != cost
}

// generatePassword returns a random password of 21 characters (about 100
// bits) that meets the policy.
func generatePassword() string {
	for {
		t := rand.Text() // 26 characters of base32: A-Z and 2-7
		pw := t[:10] + strings.ToLower(t[10:20]) + "#"
		if checkPasswordPolicy(pw) == nil {
			return pw
		}
	}
}

// normalizeEmail checks that s is a plain address (no display name, at most
// 254 characters) and returns it in lower case.
func normalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("email is required")
	}
	invalid := errors.New("email is not a valid email address")
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || len(s) > 254 {
		return "", invalid
	}
	// A domain without a dot is a typo, but for "localhost".
	if domain := s[strings.LastIndexByte(s, '@')+1:]; !strings.Contains(domain, ".") && !strings.EqualFold(domain, "localhost") {
		return "", invalid
	}
	return strings.ToLower(s), nil
}

// usernamePattern is what a username may be: it never contains '@', so a
// login name with '@' is always an email.
var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{2,63}$`)

// normalizeUsername returns s in lower case if it is a valid username.
func normalizeUsername(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !usernamePattern.MatchString(s) {
		return "", errors.New("username must be 3 to 64 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
	}
	return s, nil
}
