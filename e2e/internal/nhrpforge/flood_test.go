package main

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGREIPv4(t *testing.T) {
	src, dst := netip.MustParseAddr("100.64.1.7"), netip.MustParseAddr("198.51.100.1")
	payload := []byte{1, 2, 3, 4}
	pkt := greIPv4(src, dst, 42, payload)
	withFlags := func(flags uint16, extra ...byte) []byte {
		// IP header, GRE flags and protocol, optional words, key, payload.
		b := append([]byte(nil), pkt[:20]...)
		b = append(b, byte(flags>>8), byte(flags), pkt[22], pkt[23])
		b = append(b, extra...)
		b = append(b, pkt[24:]...)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		key  uint32
		want []byte
		ok   bool
	}{
		{"own encoding", pkt, 42, payload, true},
		{"other key", pkt, 43, nil, false},
		{"checksum present", withFlags(0xa000, 0, 0, 0, 0), 42, payload, true},
		{"sequence present", append(withFlags(0x3000)[:28], append([]byte{0, 0, 0, 9}, payload...)...), 42, payload, true},
		{"no key", withFlags(0x0000)[:28], 42, nil, false},
		{"GRE version 1", withFlags(0x2001), 42, nil, false},
		{"not NHRP", append(append(append([]byte(nil), pkt[:22]...), 0x08, 0x00), pkt[24:]...), 42, nil, false},
		{"truncated", pkt[:26], 42, nil, false},
		{"not IPv4", append([]byte{0x65}, pkt[1:]...), 42, nil, false},
	} {
		got, ok := parseGREIPv4(tc.in, tc.key)
		if ok != tc.ok || !cmp.Equal(tc.want, got) {
			t.Errorf("%s: parseGREIPv4 = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSpokeAddrs(t *testing.T) {
	c := floodConfig{firstNBMA: netip.MustParseAddr("100.64.1.0"), firstProto: netip.MustParseAddr("10.0.1.0")}
	for _, tc := range []struct {
		i           int
		nbma, proto string
	}{
		{0, "100.64.1.0", "10.0.1.0"},
		{255, "100.64.1.255", "10.0.1.255"},
		{9999, "100.64.40.15", "10.0.40.15"},
	} {
		n, p := c.spokeAddrs(tc.i)
		if n.String() != tc.nbma || p.String() != tc.proto {
			t.Errorf("spoke %d: %v %v, want %s %s", tc.i, n, p, tc.nbma, tc.proto)
		}
	}
}

func TestDropsOf(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  47: 00000000:002F 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
 255: 00000000:00FF 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0
`
	if got, err := dropsOf(table, 4242); err != nil || got != 17 {
		t.Errorf("dropsOf(4242) = %d, %v; want 17", got, err)
	}
	if _, err := dropsOf(table, 1); err == nil {
		t.Error("dropsOf of a missing inode: no error")
	}
}
