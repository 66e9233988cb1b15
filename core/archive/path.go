package archive

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxPathBytes    = 1024
	maxSegmentBytes = 255
)

// checkPath refuses an entry name that is not a plain relative slash path
// and returns it without the trailing slash a directory entry may carry.
// Names are refused rather than cleaned, so an accepted name is already
// clean: no empty, "." or ".." segment.
func checkPath(raw string) (string, error) {
	unsafe := func(why string) error {
		return invalid("Unsafe path in archive: %s (%s).", quote(raw), why)
	}
	switch {
	case !utf8.ValidString(raw) || strings.ContainsFunc(raw, notPrintable):
		return "", unsafe("control or non-printable character")
	case strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, `\`) || hasDrive(raw):
		return "", unsafe("absolute path")
	case strings.Contains(raw, `\`):
		return "", unsafe("backslash")
	case len(raw) > maxPathBytes:
		return "", unsafe("longer than 1024 bytes")
	}
	name := strings.TrimSuffix(raw, "/")
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return "", unsafe("empty path segment")
		case seg == "." || seg == "..":
			return "", unsafe("'" + seg + "' segment")
		case len(seg) > maxSegmentBytes:
			return "", unsafe("path segment longer than 255 bytes")
		}
	}
	return name, nil
}

func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// hasDrive reports whether name starts with a Windows drive letter, as in
// "C:\x" or "C:x".
func hasDrive(name string) bool {
	return len(name) >= 2 && name[1] == ':' &&
		('a' <= name[0] && name[0] <= 'z' || 'A' <= name[0] && name[0] <= 'Z')
}

// quote renders an entry name for a message: in single quotes when it is
// plain text, Go-quoted when it holds anything else, shortened when long.
func quote(name string) string {
	const max = 80
	if len(name) > max {
		return quote(name[:max]) + "..."
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, notPrintable) {
		return strconv.Quote(name)
	}
	return "'" + name + "'"
}
