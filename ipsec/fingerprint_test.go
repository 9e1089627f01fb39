package ipsec

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strongswan/govici/vici"
)

// TestFingerprintMatchesCharon: the fingerprint of the responder
// connection as rendered equals the fingerprint of what charon 5.9.8
// reports for it in list-conns. The listing below is charon's own, taken
// with `swanctl --list-conns --raw` after loading the same connection:
//
//	list-conn event {dmvpn-responder {local_addrs=[192.0.2.1] remote_addrs=[%any]
//	version=IKEv2 reauth_time=0 rekey_time=14400 unique=UNIQUE_REPLACE dpd_delay=30
//	local-1 {id=192.0.2.1 class=pre-shared key groups=[] cert_policy=[] certs=[] cacerts=[]}
//	remote-1 {id=%any class=pre-shared key groups=[] cert_policy=[] certs=[] cacerts=[]}
//	children {gre {mode=TRANSPORT rekey_time=3600 rekey_bytes=0 rekey_packets=0
//	dpd_action=none close_action=none local-ts=[dynamic[gre]] remote-ts=[dynamic[gre]]}
//	gre-nat {mode=TUNNEL rekey_time=3600 rekey_bytes=0 rekey_packets=0 dpd_action=none
//	close_action=none local-ts=[192.0.2.1/32[gre]] remote-ts=[10.0.0.0/8[gre]]}}}}
func TestFingerprintMatchesCharon(t *testing.T) {
	cfg := Config{LocalNBMA: netip.MustParseAddr("192.0.2.1"), Auth: Auth{Method: AuthPSK, PSK: NewSecret("k")},
		NATInnerPrefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.props = proposals{ike: DefaultIKEProposals, esp: DefaultESPProposals}
	req := m.renderResponderConn()

	auth := func(id string) *vici.Message {
		return set(set(set(newMsg(), "id", id), "class", "pre-shared key"), "groups", []string{})
	}
	child := func(mode, l, r string) *vici.Message {
		c := set(newMsg(), "mode", mode)
		set(c, "rekey_time", "3600")
		set(c, "local-ts", []string{l})
		return set(c, "remote-ts", []string{r})
	}
	listed := newMsg()
	set(listed, "local_addrs", []string{"192.0.2.1"})
	set(listed, "remote_addrs", []string{"%any"})
	set(listed, "version", "IKEv2")
	set(listed, "unique", "UNIQUE_REPLACE")
	set(listed, "local-1", auth("192.0.2.1"))
	set(listed, "remote-1", auth("%any"))
	ch := newMsg()
	set(ch, "gre", child("TRANSPORT", "dynamic[gre]", "dynamic[gre]"))
	set(ch, "gre-nat", child("TUNNEL", "192.0.2.1/32[gre]", "10.0.0.0/8[gre]"))
	set(listed, "children", ch)

	want := requestFingerprint(section(req, responderConn))
	if diff := cmp.Diff(want, listedFingerprint(listed)); diff != "" {
		t.Errorf("fingerprints differ (-request +listed):\n%s", diff)
	}
	// Without /etc/protocols charon prints the protocol number.
	set(ch, "gre", child("TRANSPORT", "dynamic[47]", "dynamic[47]"))
	if got := listedFingerprint(listed); got != want {
		t.Errorf("[47] not taken for [gre]: %s", got)
	}
	// A different selector, mode or address is a difference.
	set(ch, "gre", child("TUNNEL", "dynamic[gre]", "dynamic[gre]"))
	if got := listedFingerprint(listed); got == want {
		t.Error("a tunnel-mode child has the transport child's fingerprint")
	}
}
