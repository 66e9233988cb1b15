package authapp

import (
	"fmt"
	"net/http"
	"time"
)

// apiError is an error the client is answered with: its status, an
// UPPER_SNAKE code and a detail for people. Any other error is an internal
// one, logged and answered "Internal error.".
type apiError struct {
	Status int
	Code   string
	Detail string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration
}

func (e *apiError) Error() string { return e.Detail }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// invalid is a 422 for a well-formed request that breaks a rule; the detail
// names the field.
func invalid(format string, args ...any) *apiError {
	return newError(http.StatusUnprocessableEntity, "VALIDATION_ERROR", format, args...)
}

// Errors answered in more than one place.
var (
	errInvalidCredentials = func() error {
		return newError(http.StatusUnauthorized, "INVALID_CREDENTIALS", "Invalid email or password")
	}
	errInvalidCode = func() error {
		return newError(http.StatusBadRequest, "INVALID_CODE", "Invalid or expired code.")
	}
	errUnauthenticated = func() error {
		return newError(http.StatusUnauthorized, "UNAUTHENTICATED", "Authentication required.")
	}
)
