package nhrp_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

func TestValidGroup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group string
		ok    bool
	}{
		{"simple", "branch-2m", true},
		{"punctuation", "A_b.c/d:1", true},
		{"max length", strings.Repeat("g", nhrp.MaxGroupLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("g", nhrp.MaxGroupLen+1), false},
		{"space", "branch 2m", false},
		{"nul", "branch\x00", false},
		{"control", "a\nb", false},
		{"non-ascii", "bränch", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := nhrp.ValidGroup(tc.group)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidGroup(%q) = %v, want ok %v", tc.group, err, tc.ok)
			}
			if err != nil && !errors.Is(err, nhrp.ErrGroup) {
				t.Errorf("error %v is not ErrGroup", err)
			}
		})
	}
}

// TestGroupRoundTrip: a group set on a packet survives encode/decode, is
// carried as Cisco's OUI plus the name's octets, and leaves other vendors'
// extensions alone.
func TestGroupRoundTrip(t *testing.T) {
	p := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 1, 600, 0, true)
	other := nhrp.Extension{Type: nhrp.ExtensionVendorPrivate, Vendor: nhrp.VendorPrivate{OUI: [3]byte{0, 0, 0x5e}, Data: []byte("x")}}
	p.AddExtension(other)
	if err := p.SetGroup("branch-2m"); err != nil {
		t.Fatal(err)
	}
	if err := p.SetGroup("branch-10m"); err != nil { // replaces, does not add
		t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x00, 0x08, 0x00, 13, 0x00, 0x00, 0x0c}, "branch-10m"...)
	if !bytes.Contains(b, want) {
		t.Fatalf("encoding %x lacks the group extension %x", b, want)
	}
	q, err := nhrp.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	g, ok, err := q.Group()
	if g != "branch-10m" || !ok || err != nil {
		t.Fatalf("Group() = %q, %v, %v; want branch-10m", g, ok, err)
	}
	var vendors []nhrp.VendorPrivate
	for _, e := range q.Extensions {
		if e.Type == nhrp.ExtensionVendorPrivate {
			vendors = append(vendors, e.Vendor)
		}
	}
	wantV := []nhrp.VendorPrivate{other.Vendor, {OUI: nhrp.OUICisco, Data: []byte("branch-10m")}}
	if diff := cmp.Diff(wantV, vendors); diff != "" {
		t.Errorf("vendor-private extensions (-want +got):\n%s", diff)
	}
	if err := q.SetGroup(""); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := q.Group(); ok {
		t.Error("SetGroup(\"\") left a group")
	}
	if q.Extension(nhrp.ExtensionVendorPrivate) == nil {
		t.Error("SetGroup(\"\") removed another vendor's extension")
	}
	if err := q.SetGroup("bad group"); !errors.Is(err, nhrp.ErrGroup) {
		t.Errorf("SetGroup of an invalid name: %v, want ErrGroup", err)
	}
}

// TestGroupInvalidStaysRaw: a Cisco Vendor-Private extension that is not a
// valid group reports an error, and the packet still re-encodes to the
// same octets (its content is kept, not dropped).
func TestGroupInvalidStaysRaw(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"nul-terminated", []byte("branch\x00")},
		{"too long", bytes.Repeat([]byte("g"), nhrp.MaxGroupLen+1)},
		{"binary", []byte{0x00, 0x01, 0x02}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 1, 600, 0, true)
			p.AddExtension(nhrp.Extension{Type: nhrp.ExtensionVendorPrivate, Vendor: nhrp.VendorPrivate{OUI: nhrp.OUICisco, Data: tc.data}})
			b, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			q, err := nhrp.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if g, ok, err := q.Group(); !ok || !errors.Is(err, nhrp.ErrGroup) {
				t.Errorf("Group() = %q, %v, %v; want ok and ErrGroup", g, ok, err)
			}
			if err := roundTrip(b, (*nhrp.Packet).Marshal); err != nil {
				t.Error(err)
			}
		})
	}
}
