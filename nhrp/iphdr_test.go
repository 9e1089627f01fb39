package nhrp

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseIPHeader(t *testing.T) {
	hexb := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// IPv4, IHL 6 (one option word), DF and fragment offset 0x1234 set
	// but not MF, total length 84, protocol 47, 10.1.1.10 > 10.1.2.20.
	v4 := hexb("46000054abcd5234402fffff0a01010a0a010214" + "01010101")
	// IPv6: payload length 0x0010, next header 58 (ICMPv6),
	// 2001:db8::1 > 2001:db8::2.
	v6 := hexb("6000000000103a40" + "20010db8000000000000000000000001" + "20010db8000000000000000000000002")
	for _, tc := range []struct {
		name string
		in   []byte
		want IPHeader
		ok   bool
	}{
		{"ipv4 with an option", v4, IPHeader{Version: 4, Len: 24, Protocol: 47, Length: 84,
			Src: netip.MustParseAddr("10.1.1.10"), Dst: netip.MustParseAddr("10.1.2.20"), FragOffset: 0x1234}, true},
		// A Traffic Indication may carry the fixed header alone.
		{"ipv4 options cut off", v4[:20], IPHeader{Version: 4, Len: 24, Protocol: 47, Length: 84,
			Src: netip.MustParseAddr("10.1.1.10"), Dst: netip.MustParseAddr("10.1.2.20"), FragOffset: 0x1234}, true},
		{"ipv4 more fragments", append([]byte{0x45, 0, 0, 20, 0, 0, 0x20, 0}, v4[8:20]...), IPHeader{Version: 4, Len: 20, Protocol: 47, Length: 20,
			Src: netip.MustParseAddr("10.1.1.10"), Dst: netip.MustParseAddr("10.1.2.20"), MoreFragments: true}, true},
		{"ipv4 short", v4[:19], IPHeader{}, false},
		{"ipv4 IHL 4", append([]byte{0x44}, v4[1:]...), IPHeader{}, false},
		{"ipv6", v6, IPHeader{Version: 6, Len: 40, Protocol: 58, Length: 16,
			Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")}, true},
		{"ipv6 short", v6[:39], IPHeader{}, false},
		{"version 5", append([]byte{0x55}, v4[1:]...), IPHeader{}, false},
		{"empty", nil, IPHeader{}, false},
	} {
		got, ok := ParseIPHeader(tc.in)
		if ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.name, ok, tc.ok)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func FuzzParseIPHeader(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := ParseIPHeader(b)
		if !ok {
			return
		}
		switch {
		case h.Version == 4 && (h.Len < 20 || h.Len > 60 || !h.Src.Is4() || !h.Dst.Is4() || len(b) < 20):
			t.Errorf("ipv4 %+v from %d octets", h, len(b))
		case h.Version == 6 && (h.Len != 40 || !h.Src.Is6() || !h.Dst.Is6() || len(b) < 40):
			t.Errorf("ipv6 %+v from %d octets", h, len(b))
		case h.Version != 4 && h.Version != 6:
			t.Errorf("version %d accepted", h.Version)
		}
	})
}
