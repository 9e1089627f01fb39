package engine

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// peerMap keys an IPv4 address by its four bytes and any other address
// as is: an IPv4 address and the same address mapped into IPv6 are two
// entries, as in a map[netip.Addr]*peer.
func TestPeerMap(t *testing.T) {
	var m peerMap
	addrs := []netip.Addr{
		netip.MustParseAddr("10.0.0.2"),
		netip.MustParseAddr("::ffff:10.0.0.2"),
		netip.MustParseAddr("2001:db8::2"),
		netip.MustParseAddr("10.0.0.3"),
	}
	for _, a := range addrs {
		if m.get(a) != nil {
			t.Fatalf("empty map holds %s", a)
		}
		m.set(&peer{proto: a})
	}
	if m.len() != len(addrs) {
		t.Fatalf("len %d after %d distinct sets", m.len(), len(addrs))
	}
	for _, a := range addrs {
		if pe := m.get(a); pe == nil || pe.proto != a {
			t.Errorf("get(%s) = %v", a, pe)
		}
	}
	m.del(addrs[0])
	m.del(addrs[2])
	m.del(netip.MustParseAddr("10.9.9.9")) // absent: nothing happens
	var got []netip.Addr
	for pe := range m.all() {
		got = append(got, pe.proto)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	want := []netip.Addr{addrs[3], addrs[1]}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("entries after two deletions (-want +got):\n%s", d)
	}
	if m.get(addrs[0]) != nil || m.get(addrs[1]) == nil {
		t.Errorf("deleting 10.0.0.2 changed ::ffff:10.0.0.2 or left 10.0.0.2")
	}
}
