package core

import (
	"errors"
	"fmt"
)

// Error codes: what kind of failure, independent of transport. The HTTP layer
// maps each to one status in one table.
const (
	EINVALID       = "invalid"       // the client's input is wrong (400)
	EUNAUTHORIZED  = "unauthorized"  // no or bad credential (401)
	EFORBIDDEN     = "forbidden"     // credential lacks the right (403)
	ENOTFOUND      = "not_found"     // no such thing (404)
	ECONFLICT      = "conflict"      // clashes with current state (409)
	ETOOLARGE      = "too_large"     // over a size limit (413)
	EUNPROCESSABLE = "unprocessable" // well-formed but cannot be carried out (422)
	ETOOMANY       = "too_many"      // rate limited (429)
	EUNAVAILABLE   = "unavailable"   // temporarily cannot serve (503)
	EINTERNAL      = "internal"      // our fault (500)
)

// Error is an error meant for the client: Message is shown as "detail" and
// ErrorCode (UPPER_SNAKE) as "error_code". Anything that is not an *Error is
// internal and shown only as "Internal error.".
type Error struct {
	Code      string
	ErrorCode string
	Message   string
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
	// Err is the cause, logged but never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code, error code and message.
func Errorf(code, errorCode, format string, args ...any) *Error {
	return &Error{Code: code, ErrorCode: errorCode, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, EINTERNAL for anything that is not an
// *Error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}
