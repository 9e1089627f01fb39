package nhrpdecode

import (
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// A header number without a name is printed as the number, in the format
// of its field.
func TestHeaderNumberNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{addrTypeText(nhrp.AddrTypeNSAP), ""},
		{addrTypeText(nhrp.AddrTypeE164), "(e164)"},
		{addrTypeText(0x80), "(type 0x80)"},
		{afnText(nhrp.AFNIPv6), "ipv6"},
		{afnText(15), "15"},
		{protoText(nhrp.ProtocolIPv4), "ipv4"},
		{protoText(0x88be), "0x88be"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestIPSummary(t *testing.T) {
	v6 := make([]byte, 48)
	v6[0], v6[5], v6[6] = 0x60, 8, 58 // version 6, payload length 8, ICMPv6
	src, dst := netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("2001:db8::2").As16()
	copy(v6[8:], src[:])
	copy(v6[24:], dst[:])
	v4 := make([]byte, 20)
	v4[0], v4[3], v4[9] = 0x45, 84, 1 // version 4, total length 84, ICMP
	copy(v4[12:], []byte{192, 0, 2, 1, 192, 0, 2, 2})
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{v6, "ipv6 2001:db8::1 > 2001:db8::2 next-header 58 payload-length 8"},
		{v6[:39], ""},
		{v4, "ipv4 192.0.2.1 > 192.0.2.2 proto 1 length 84"},
		{v4[:19], ""},
		{[]byte{0x50}, ""},
		{nil, ""},
	} {
		if got := ipSummary(tc.b); got != tc.want {
			t.Errorf("ipSummary(% x) = %q, want %q", tc.b, got, tc.want)
		}
	}
}
