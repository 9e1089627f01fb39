package config

import (
	"fmt"
	"net/netip"
)

// NHSProtocol is an NHS's tunnel (protocol) address or "dynamic": the zero
// value is dynamic, learnt from the registration reply.
type NHSProtocol struct{ Addr netip.Addr }

// Dynamic reports whether the address is learnt at run time.
func (p NHSProtocol) Dynamic() bool { return !p.Addr.IsValid() }

// String returns "dynamic" or the address.
func (p NHSProtocol) String() string {
	if p.Dynamic() {
		return "dynamic"
	}
	return p.Addr.String()
}

// MarshalText implements encoding.TextMarshaler.
func (p NHSProtocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *NHSProtocol) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "dynamic" || s == "" {
		*p = NHSProtocol{}
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%q is neither \"dynamic\" nor an IPv4 or IPv6 address", s)
	}
	*p = NHSProtocol{Addr: a}
	return nil
}
