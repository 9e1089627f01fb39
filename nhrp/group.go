package nhrp

import (
	"errors"
	"fmt"
	"slices"
)

// OUICisco is Cisco's IEEE OUI (00-00-0C), the vendor ID of the
// Vendor-Private extension (§5.3.5) in which Cisco IOS carries the NHRP
// group of Per-Tunnel QoS for DMVPN.
var OUICisco = [3]byte{0x00, 0x00, 0x0c}

// MaxGroupLen bounds an NHRP group name, in octets. See docs/nhrp-wire.md
// ("NHRP group"): no public source states Cisco's limit, so dmvpnd picks
// one that keeps a registration well inside any MTU.
const MaxGroupLen = 64

// ErrGroup is the category of a vendor-private extension that claims to be
// an NHRP group but is not a valid one.
var ErrGroup = errors.New("bad NHRP group")

// ValidGroup checks an NHRP group name: 1 to MaxGroupLen octets of
// printable ASCII other than space (0x21-0x7E), a token IOS's command line
// accepts. It is the one check the codec, the engine and the configuration
// share.
func ValidGroup(name string) error {
	if name == "" {
		return fmt.Errorf("nhrp: %w: empty name", ErrGroup)
	}
	if len(name) > MaxGroupLen {
		return fmt.Errorf("nhrp: %w: %d octets exceed %d", ErrGroup, len(name), MaxGroupLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("nhrp: %w: octet %d is 0x%02x, want printable ASCII without space", ErrGroup, i, c)
		}
	}
	return nil
}

// GroupVendorPrivate returns the Vendor-Private payload carrying group:
// Cisco's OUI followed by the name's octets, unterminated (the extension
// length delimits it).
func GroupVendorPrivate(group string) (VendorPrivate, error) {
	if err := ValidGroup(group); err != nil {
		return VendorPrivate{}, err
	}
	return VendorPrivate{OUI: OUICisco, Data: []byte(group)}, nil
}

// Group decodes v as an NHRP group. ok is false when v is not Cisco's (its
// content stays opaque); err is set when it is Cisco's but not a valid
// group. A valid group re-encodes (GroupVendorPrivate) to the same octets.
func (v VendorPrivate) Group() (group string, ok bool, err error) {
	if v.OUI != OUICisco {
		return "", false, nil
	}
	s := string(v.Data)
	if err := ValidGroup(s); err != nil {
		return "", true, err
	}
	return s, true, nil
}

// Group returns the NHRP group p carries: the first Vendor-Private
// extension from Cisco. ok is false when there is none; err is set (with
// ok true) when that extension is not a valid group, and the caller should
// treat the packet as carrying no group. Other vendors' extensions are
// ignored and stay in p untouched.
func (p *Packet) Group() (group string, ok bool, err error) {
	for i := range p.Extensions {
		e := &p.Extensions[i]
		if e.Type != ExtensionVendorPrivate || e.raw() {
			continue
		}
		if g, ok, err := e.Vendor.Group(); ok {
			return g, true, err
		}
	}
	return "", false, nil
}

// SetGroup makes p carry group in a non-compulsory Vendor-Private
// extension, replacing the Cisco one p has, adding one (before End) when
// it has none. An empty group removes Cisco's Vendor-Private extensions;
// other vendors' stay.
func (p *Packet) SetGroup(group string) error {
	if group == "" {
		p.Extensions = slices.DeleteFunc(p.Extensions, func(e Extension) bool {
			return e.Type == ExtensionVendorPrivate && !e.raw() && e.Vendor.OUI == OUICisco
		})
		return nil
	}
	v, err := GroupVendorPrivate(group)
	if err != nil {
		return err
	}
	for i := range p.Extensions {
		e := &p.Extensions[i]
		if e.Type == ExtensionVendorPrivate && !e.raw() && e.Vendor.OUI == OUICisco {
			e.Vendor = v
			return nil
		}
	}
	p.AddExtension(Extension{Type: ExtensionVendorPrivate, Vendor: v})
	return nil
}
