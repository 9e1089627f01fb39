package config

import (
	"fmt"

	"go.uber.org/zap/zapcore"
)

const redacted = "<redacted>"

// Secret holds a password or key. It prints, marshals and logs as
// "<redacted>"; only Reveal returns the value.
type Secret struct{ s string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{s: s} }

// Reveal returns the secret value. Never log it.
func (s Secret) Reveal() string { return s.s }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.s == "" }

// Len is the secret's length in bytes.
func (s Secret) Len() int { return len(s.s) }

// Equal reports whether two secrets hold the same value (used by go-cmp).
func (s Secret) Equal(o Secret) bool { return s.s == o.s }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s.s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format makes every fmt verb print the redacted form.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(s.GoString()))
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (s Secret) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("secret", s.String())
	return nil
}
