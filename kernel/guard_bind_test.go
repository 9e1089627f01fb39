package kernel

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestBindExprs(t *testing.T) {
	gre := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_GRE}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{192, 0, 2, 1}},
	}
	th := func(off, n uint32) expr.Any {
		return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: n}
	}
	eq := func(b ...byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b} }
	drop := []expr.Any{&expr.Objref{Type: objectCounter, Name: "tunnel_src_unbound"}, &expr.Verdict{Kind: expr.VerdictDrop}}
	cat := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	lookup := func(src uint32) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: src, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: "tunnel_src", SetID: 1, Invert: true},
		}
	}
	mask24 := &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 0}, Xor: []byte{0, 0, 0, 0}}
	for _, tc := range []struct {
		name string
		bind SourceBinding
		want [][]expr.Any
	}{{
		name: "keyed tunnel: flags K, key at 4, inner source at 8+12",
		bind: SourceBinding{Prefix: netip.MustParsePrefix("10.0.0.1/24"), Key: 42},
		want: [][]expr.Any{
			cat(gre, []expr.Any{th(2, 2), eq(0x08, 0), th(0, 2), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0x20, 0}}}, drop),
			cat(gre, []expr.Any{th(0, 2), eq(0x20, 0), th(2, 2), eq(0x08, 0), th(4, 4), eq(0, 0, 0, 42),
				th(20, 4), mask24, eq(10, 0, 0, 0)}, lookup(20), drop),
		},
	}, {
		name: "no key: flags 0, inner source at 4+12",
		bind: SourceBinding{Prefix: netip.MustParsePrefix("10.0.0.0/24")},
		want: [][]expr.Any{
			cat(gre, []expr.Any{th(2, 2), eq(0x08, 0), th(0, 2), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0}}}, drop),
			cat(gre, []expr.Any{th(0, 2), eq(0, 0), th(2, 2), eq(0x08, 0),
				th(16, 4), mask24, eq(10, 0, 0, 0)}, lookup(16), drop),
		},
	}, {
		name: "host prefix: no mask",
		bind: SourceBinding{Prefix: netip.MustParsePrefix("10.9.9.9/32")},
		want: [][]expr.Any{
			cat(gre, []expr.Any{th(2, 2), eq(0x08, 0), th(0, 2), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0}}}, drop),
			cat(gre, []expr.Any{th(0, 2), eq(0, 0), th(2, 2), eq(0x08, 0), th(16, 4), eq(10, 9, 9, 9)}, lookup(16), drop),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := bindExprs(netip.MustParseAddr("192.0.2.1"), tc.bind, "tunnel_src", 1)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestSourceBindingValidate(t *testing.T) {
	if err := (SourceBinding{Prefix: netip.MustParsePrefix("fd00::/64")}).validate(); err == nil {
		t.Error("IPv6 tunnel prefix accepted")
	}
	if (SourceBinding{}).Enabled() {
		t.Error("zero binding enabled")
	}
}

func TestDiffBound(t *testing.T) {
	b := func(nbma, tun string) BoundSource {
		return BoundSource{netip.MustParseAddr(nbma), netip.MustParseAddr(tun)}
	}
	s1, s2, s3 := b("192.0.2.2", "10.0.0.2"), b("192.0.2.3", "10.0.0.3"), b("192.0.2.4", "10.0.0.4")
	moved := b("198.51.100.9", "10.0.0.2") // s1's tunnel address from another NBMA
	for _, tc := range []struct {
		name             string
		have, want       []BoundSource
		wantAdd, wantDel []BoundSource
	}{
		{"empty", nil, nil, nil, nil},
		{"first fill", nil, []BoundSource{s2, s1}, []BoundSource{s1, s2}, nil},
		{"same set: nothing", []BoundSource{s1, s2}, []BoundSource{s2, s1}, nil, nil},
		{"duplicates count once", nil, []BoundSource{s1, s1}, []BoundSource{s1}, nil},
		{"incremental", []BoundSource{s1, s2}, []BoundSource{s2, s3}, []BoundSource{s3}, []BoundSource{s1}},
		{"re-registered elsewhere", []BoundSource{s1}, []BoundSource{moved}, []BoundSource{moved}, []BoundSource{s1}},
		{"prune all", []BoundSource{s3, s1}, nil, nil, []BoundSource{s1, s3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			add, del := diffBound(tc.have, tc.want)
			if d := cmp.Diff(tc.wantAdd, add, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("add (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantDel, del, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("del (-want +got):\n%s", d)
			}
		})
	}
}

func TestBoundSourceKey(t *testing.T) {
	s := BoundSource{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("10.0.0.2")}
	k, err := s.key()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := boundSourceOf(k); !ok || got != s {
		t.Errorf("round trip %v -> %x -> %v", s, k, got)
	}
	if _, err := (BoundSource{netip.MustParseAddr("::1"), s.Tunnel}).key(); err == nil {
		t.Error("IPv6 NBMA accepted")
	}
	if _, ok := boundSourceOf([]byte{1, 2, 3}); ok {
		t.Error("short key decoded")
	}
}
