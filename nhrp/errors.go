package nhrp

import (
	"errors"
	"fmt"
)

// Error categories, matched with errors.Is against a *ParseError.
var (
	ErrTruncated   = errors.New("truncated")
	ErrLength      = errors.New("length mismatch")
	ErrChecksum    = errors.New("bad checksum")
	ErrAddress     = errors.New("bad address")
	ErrUnsupported = errors.New("unsupported")
	ErrHopCount    = errors.New("hop count exceeded")
	ErrExtension   = errors.New("bad extension")
)

// ParseError is returned by Unmarshal and Parse for a malformed packet. Code
// is the RFC 2332 error code an NHS would put in an Error Indication and
// Offset the byte offset of the offending field from the start of the NHRP
// packet (the Error Offset of §5.2.7).
// RFC 2332 §5.2.7 lists a failed checksum, an invalid version and an
// invalid protocol type under Protocol Error (code 7). An Error Indication
// is never sent in answer to an Error Indication; that is for the caller to
// check.
type ParseError struct {
	Code   ErrorCode
	Offset int
	Reason string
	// Err is the error category (ErrTruncated, ErrChecksum, ...).
	Err error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("nhrp: offset %d: %s (%s)", e.Offset, e.Reason, e.Code)
}

// Unwrap returns the error category.
func (e *ParseError) Unwrap() error { return e.Err }

func perr(code ErrorCode, off int, cat error, format string, args ...any) *ParseError {
	return &ParseError{Code: code, Offset: off, Reason: fmt.Sprintf(format, args...), Err: cat}
}
