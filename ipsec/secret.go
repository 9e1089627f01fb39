package ipsec

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap/zapcore"
)

const redacted = "<redacted>"

// Secret holds key material or a password: an IPsec pre-shared key, the
// NHRP cleartext authentication password, a BGP session password. It is
// the project's one secret type (controller/config decodes into it). Every
// way of printing, logging or marshaling a set secret yields "<redacted>"
// (an unset one prints empty, so a rendered configuration shows that no
// value is set); only Reveal returns the value, for the request that hands
// it to charon, the NHRP engine or GoBGP.
type Secret struct {
	b []byte // never modified after construction; not comparable with ==
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{b: []byte(s)} }

// Reveal returns the secret value. Never log it.
func (s Secret) Reveal() string { return string(s.b) }

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Len is the secret's length in bytes.
func (s Secret) Len() int { return len(s.b) }

// Equal reports whether two secrets hold the same value, in time that
// depends on their lengths only (crypto/subtle). go-cmp uses it.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

// String implements fmt.Stringer: "<redacted>", or empty when unset.
func (s Secret) String() string {
	if s.IsZero() {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return fmt.Sprintf("ipsec.Secret(%q)", s.String()) }

// Format implements fmt.Formatter so that every verb (%x, %q, %+v ...)
// prints the redacted form.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler, for config decoding.
func (s *Secret) UnmarshalText(b []byte) error {
	s.b = append([]byte(nil), b...)
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (s Secret) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("secret", s.String())
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
