package kernel

import (
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestMulticastExprs(t *testing.T) {
	got, err := multicastExprs(2, 7, netip.MustParsePrefix("239.1.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	want := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(7)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{239, 1, 0, 0}},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_QTHRESHOLD, Group: 2, QThreshold: 1},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := multicastExprs(2, 0, LinkLocalMulticast); err == nil {
		t.Error("ifindex 0 accepted")
	}
}

func TestMulticastPrefixes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		groups  []string
		want    []string
		wantErr string
	}{
		{name: "default", want: []string{"224.0.0.0/24"}},
		{name: "extra sorted, masked, deduplicated, link-local covered",
			groups: []string{"239.2.0.0/16", "239.1.2.3/16", "224.0.0.5/32", "239.1.0.0/16"},
			want:   []string{"224.0.0.0/24", "239.1.0.0/16", "239.2.0.0/16"}},
		{name: "unicast", groups: []string{"10.0.0.0/8"}, wantErr: "group 10.0.0.0/8 is not an IPv4 multicast prefix (inside 224.0.0.0/4)"},
		{name: "too wide", groups: []string{"224.0.0.0/3"}, wantErr: "group 224.0.0.0/3 is not an IPv4 multicast prefix (inside 224.0.0.0/4)"},
		{name: "ipv6", groups: []string{"ff02::/16"}, wantErr: "group ff02::/16 is not an IPv4 multicast prefix (inside 224.0.0.0/4)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c MulticastConfig
			for _, g := range tc.groups {
				c.Groups = append(c.Groups, netip.MustParsePrefix(g))
			}
			got, err := c.prefixes()
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if _, err := NewMulticastTrap(c, nil); err == nil {
					t.Error("NewMulticastTrap accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gs []string
			for _, p := range got {
				gs = append(gs, p.String())
			}
			if d := cmp.Diff(tc.want, gs); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestMulticastBatchGolden pins the install batch: one transaction that
// replaces the table (add, delete, add), one chain, one rule per group.
func TestMulticastBatchGolden(t *testing.T) {
	c := MulticastConfig{Groups: []netip.Prefix{netip.MustParsePrefix("239.1.0.0/16")}}.withDefaults()
	got := captureBatch(t, func(cc *nftables.Conn) error { return queueMulticastInstall(cc, c, 7) })
	golden.File(t, "multicast_install.golden", got)
	want := []string{"batch-begin", "newtable", "deltable", "newtable", "newchain", "newrule", "newrule", "batch-end"}
	if d := cmp.Diff(want, batchTypes(got)); d != "" {
		t.Errorf("install batch (-want +got):\n%s", d)
	}
	got = captureBatch(t, func(cc *nftables.Conn) error { queueMulticastRemove(cc, c); return nil })
	if d := cmp.Diff([]string{"batch-begin", "newtable", "deltable", "batch-end"}, batchTypes(got)); d != "" {
		t.Errorf("remove batch (-want +got):\n%s", d)
	}
}
