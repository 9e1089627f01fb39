package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

func TestSummarizeXfrmState(t *testing.T) {
	key := []byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04}
	tests := []struct {
		name string
		in   netlink.XfrmState
		want XfrmStateSummary
	}{
		{
			name: "all nil pointers",
			in:   netlink.XfrmState{},
			want: XfrmStateSummary{Proto: netlink.Proto(0).String(), Mode: "transport"},
		},
		{
			name: "nat-t aead",
			in: netlink.XfrmState{
				Src: net.IP{198, 51, 100, 1}, Dst: net.IP{203, 0, 113, 7}, Proto: netlink.XFRM_PROTO_ESP,
				Mode: netlink.XFRM_MODE_TUNNEL, Spi: 0x1234, Reqid: 3,
				Aead:       &netlink.XfrmStateAlgo{Name: "rfc4106(gcm(aes))", Key: key, ICVLen: 128},
				Encap:      &netlink.XfrmStateEncap{Type: netlink.XFRM_ENCAP_ESPINUDP, SrcPort: 4500, DstPort: 4501},
				Mark:       &netlink.XfrmMark{Value: 1, Mask: 0xffffffff},
				Statistics: netlink.XfrmStateStats{Bytes: 100, Packets: 2},
			},
			want: XfrmStateSummary{
				Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.7"), Proto: "esp",
				SPI: 0x1234, Mode: "tunnel", Reqid: 3, Algorithm: "rfc4106(gcm(aes))", Encap: "espinudp 4500:4501",
				Bytes: 100, Packets: 2, Mark: "0x1/0xffffffff",
			},
		},
		{
			name: "cipher and auth",
			in: netlink.XfrmState{
				Proto: netlink.XFRM_PROTO_ESP,
				Crypt: &netlink.XfrmStateAlgo{Name: "cbc(aes)", Key: key},
				Auth:  &netlink.XfrmStateAlgo{Name: "hmac(sha256)", Key: key, TruncateLen: 128},
			},
			want: XfrmStateSummary{Proto: "esp", Mode: "transport", Algorithm: "cbc(aes)/hmac(sha256)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarizeXfrmState(&tt.in)
			if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			// The summary is safe to print and never carries key material.
			s := fmt.Sprintf("%v %+v", got, got)
			if strings.Contains(s, "deadbeef") || strings.Contains(s, "222 173 190 239") {
				t.Errorf("summary leaks key material: %s", s)
			}
		})
	}
}

func TestSummarizeXfrmPolicy(t *testing.T) {
	_, src, _ := net.ParseCIDR("198.51.100.1/32")
	_, dst, _ := net.ParseCIDR("172.16.0.2/32")
	in := netlink.XfrmPolicy{
		Src: src, Dst: dst, Proto: 47, Dir: netlink.XFRM_DIR_OUT, Priority: 7, Index: 9,
		Tmpls: []netlink.XfrmPolicyTmpl{{Src: net.IP{198, 51, 100, 1}, Dst: net.IP{203, 0, 113, 7}, Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL, Reqid: 3}},
	}
	want := XfrmPolicySummary{
		Src: netip.MustParsePrefix("198.51.100.1/32"), Dst: netip.MustParsePrefix("172.16.0.2/32"),
		Proto: 47, Dir: "out", Action: "allow", Priority: 7, Index: 9,
		Templates: []XfrmTemplateSummary{{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.7"), Proto: "esp", Mode: "tunnel", Reqid: 3}},
	}
	got := summarizeXfrmPolicy(&in)
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	// nil selectors and no templates must not panic.
	_ = summarizeXfrmPolicy(&netlink.XfrmPolicy{Action: netlink.XFRM_POLICY_BLOCK})
}
