package nhrpdecode

import (
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
