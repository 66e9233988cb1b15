package archive

import "fmt"

// Kind classifies an [Error].
type Kind int

const (
	// KindInvalid means the archive is malformed, unsafe or fails validation
	// (HTTP 400).
	KindInvalid Kind = iota + 1
	// KindTooLarge means the archive exceeds a size or count limit (HTTP 413).
	KindTooLarge
	// KindSignatureInvalid means module.sig is malformed or does not verify,
	// or the archive was modified after signing (HTTP 400).
	KindSignatureInvalid
	// KindSignatureRequired means the archive is unsigned and the policy
	// requires a signature (HTTP 403).
	KindSignatureRequired
	// KindUntrustedSigner means the archive is validly signed by a key that
	// is not trusted, and the policy requires a trusted one (HTTP 403).
	KindUntrustedSigner
)

// Error is a rejection of an archive's content. Msg is a complete sentence
// naming the problem and, where there is one, the offending entry; it is fit
// to show to the client.
type Error struct {
	Kind Kind
	Msg  string
}

// Error returns Msg.
func (e *Error) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &Error{Kind: KindInvalid, Msg: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &Error{Kind: KindTooLarge, Msg: fmt.Sprintf(format, args...)}
}
