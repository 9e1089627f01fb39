package kernel

import (
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

// TestPrivInspect reads back everything dmvpnctl shows, including an ESP SA
// and its policy, and checks the JSON rendering carries no key material.
func TestPrivInspect(t *testing.T) {
	fd, h, _ := singleNode(t)
	k := newKernel(t, fd)
	cfg := TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Key: 42, TTL: 64, MTU: 1400, Address: netip.MustParsePrefix("10.0.0.1/32")}
	idx, err := k.EnsureTunnel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	if err := k.ReplaceNeighbor(a("10.0.0.254"), a("172.16.9.254"), true); err != nil {
		t.Fatal(err)
	}
	routes := []Route{{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: a("10.0.0.254")}}
	if err := k.SetRoutes(routes); err != nil {
		t.Fatal(err)
	}
	key := []byte("0123456789abcdefSALT") // 16-byte AES key + 4-byte salt
	st := &netlink.XfrmState{
		Src: net.IP{172, 16, 9, 1}, Dst: net.IP{172, 16, 9, 2}, Proto: netlink.XFRM_PROTO_ESP,
		Mode: netlink.XFRM_MODE_TRANSPORT, Spi: 0x1000, Reqid: 7,
		Aead: &netlink.XfrmStateAlgo{Name: "rfc4106(gcm(aes))", Key: key, ICVLen: 128},
	}
	if err := h.XfrmStateAdd(st); err != nil {
		t.Fatalf("add ESP state (needs esp4): %v", err)
	}
	pol := &netlink.XfrmPolicy{
		Src:   &net.IPNet{IP: net.IP{172, 16, 9, 1}, Mask: net.CIDRMask(32, 32)},
		Dst:   &net.IPNet{IP: net.IP{172, 16, 9, 2}, Mask: net.CIDRMask(32, 32)},
		Proto: 47, Dir: netlink.XFRM_DIR_OUT,
		Tmpls: []netlink.XfrmPolicyTmpl{{Src: net.IP{172, 16, 9, 1}, Dst: net.IP{172, 16, 9, 2}, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT, Reqid: 7}},
	}
	if err := h.XfrmPolicyAdd(pol); err != nil {
		t.Fatal(err)
	}

	got, err := k.Inspect("gre1")
	if err != nil {
		t.Fatal(err)
	}
	want := State{
		Tunnel: TunnelInfo{
			Name: "gre1", Ifindex: idx, Up: true, Owned: true, Local: cfg.Local, Key: 42, TTL: 64,
			PMTUDisc: true, MTU: 1400, Addresses: []netip.Prefix{cfg.Address},
		},
		Neighbors: []Neighbor{{Addr: a("10.0.0.254"), NBMA: a("172.16.9.254"), State: NeighPermanent}},
		Routes:    routes,
		XfrmStates: []XfrmStateSummary{{
			Src: a("172.16.9.1"), Dst: a("172.16.9.2"), Proto: "esp", SPI: 0x1000, Mode: "transport",
			Reqid: 7, Algorithm: "rfc4106(gcm(aes))",
		}},
	}
	ignore := cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "XfrmPolicies" }, cmp.Ignore())
	if d := cmp.Diff(want, got, append(cmpAddrs, ignore)...); d != "" {
		t.Errorf("Inspect (-want +got):\n%s", d)
	}
	if len(got.XfrmPolicies) != 1 {
		t.Fatalf("policies: %+v", got.XfrmPolicies)
	}
	p := got.XfrmPolicies[0]
	wantPol := XfrmPolicySummary{
		Src: netip.MustParsePrefix("172.16.9.1/32"), Dst: netip.MustParsePrefix("172.16.9.2/32"), Proto: 47,
		Dir: "out", Action: "allow", Priority: p.Priority, Index: p.Index,
		Templates: []XfrmTemplateSummary{{Src: a("172.16.9.1"), Dst: a("172.16.9.2"), Proto: "esp", Mode: "transport", Reqid: 7}},
	}
	if d := cmp.Diff(wantPol, p, cmpAddrs...); d != "" {
		t.Errorf("policy (-want +got):\n%s", d)
	}
	js, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), "0123456789") || strings.Contains(string(js), "MDEyMzQ1Njc4") {
		t.Errorf("JSON leaks the key: %s", js)
	}
	if !strings.Contains(string(js), `"State":"PERMANENT"`) {
		t.Errorf("JSON neighbor state not readable: %s", js)
	}
}
