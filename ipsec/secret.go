package ipsec

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap/zapcore"
)

const redacted = "[redacted]"

// Secret holds key material (a pre-shared key). Every way of printing,
// logging or marshaling it yields "[redacted]"; only the VICI request that
// loads it into charon sees the bytes.
type Secret struct {
	b []byte
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{b: []byte(s)} }

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// reveal returns the raw bytes; used only to build load-shared.
func (s Secret) reveal() string { return string(s.b) }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return "ipsec.Secret(" + redacted + ")" }

// Format implements fmt.Formatter so that every verb (%x, %q, %+v ...) redacts.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText implements encoding.TextUnmarshaler, for config decoding.
func (s *Secret) UnmarshalText(b []byte) error {
	s.b = append([]byte(nil), b...)
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (s Secret) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("secret", redacted)
	return nil
}

// scrub removes secret from the message of a *CommandError (charon may
// echo request data in errmsg). Other errors never contain request data.
func scrub(err error, secret string) error {
	var ce *CommandError
	if secret == "" || !errors.As(err, &ce) || !strings.Contains(ce.Msg, secret) {
		return err
	}
	return &CommandError{Command: ce.Command, Msg: strings.ReplaceAll(ce.Msg, secret, redacted)}
}
