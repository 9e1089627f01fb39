package engine_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

func withGroup(g string) func(*engine.Config) { return func(c *engine.Config) { c.Group = g } }

// groupsOf renders nd's cache as proto/kind -> group.
func groupsOf(nd *nhrpsim.Node) map[string]string {
	m := map[string]string{}
	for _, ce := range nd.Engine.Cache() {
		m[ce.Proto.String()+"/"+ce.Kind.String()] = ce.Group
	}
	return m
}

// TestGroupRegistrationAndResolution: spokes send their group in
// registrations and resolutions; the hub records it per registration, and
// each spoke records the other's on its shortcut (requester side and
// resolved side), in the snapshot and in events.
func TestGroupRegistrationAndResolution(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(tp *topo, s2, s3 *nhrpsim.Node)
	}{
		// Phase 2 style: the hub answers for spoke 3 from its registration.
		{"answered by hub", func(tp *topo, s2, _ *nhrpsim.Node) {
			s2.Engine.NeighborMiss(addr("10.255.0.3"))
			tp.run()
		}},
		// Phase 3: a redirect; spoke 3 answers for itself.
		{"answered by spoke", func(tp *topo, _, _ *nhrpsim.Node) {
			tp.hub.Engine.Hairpin(ipv4("10.0.2.5", "10.0.3.7"))
			tp.run()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			s2 := tp.spoke(2, "198.51.100.2", nil, withGroup("branch-2m"))
			s3 := tp.spoke(3, "198.51.100.3", nil, withGroup("branch-10m"))
			tp.start()
			tp.run()
			want := map[string]string{
				"10.255.0.2/registered": "branch-2m",
				"10.255.0.3/registered": "branch-10m",
			}
			if diff := cmp.Diff(want, groupsOf(tp.hub)); diff != "" {
				t.Errorf("hub groups (-want +got):\n%s", diff)
			}
			var up []string
			for _, ev := range tp.hub.EventsOf(engine.EventPeerUp) {
				up = append(up, ev.Proto.String()+" "+ev.Group)
			}
			if diff := cmp.Diff([]string{"10.255.0.2 branch-2m", "10.255.0.3 branch-10m"}, up); diff != "" {
				t.Errorf("hub peer-up events (-want +got):\n%s", diff)
			}

			tc.run(tp, s2, s3)
			resolved := false
			for _, ce := range s2.Engine.Cache() {
				if ce.Kind == engine.KindResolved {
					resolved = true
					if ce.Group != "branch-10m" {
						t.Errorf("spoke2's resolved entry %s has group %q, want spoke3's branch-10m", ce.Proto, ce.Group)
					}
				}
			}
			if !resolved {
				t.Fatalf("spoke2 resolved nothing; cache %+v", s2.Engine.Cache())
			}
			for _, ce := range s3.Engine.Cache() {
				if ce.Proto == addr("10.255.0.2") && ce.Group != "branch-2m" {
					t.Errorf("spoke3's entry for spoke2 (%s) has group %q, want branch-2m", ce.Kind, ce.Group)
				}
			}
			wantCounter(t, tp.hub, "drop_group_invalid", 0)
		})
	}
}

// TestGroupClaims: what a registering client claims about its group, and
// what the hub makes of it.
func TestGroupClaims(t *testing.T) {
	reg := func(t *testing.T, id uint32, vendor *nhrp.VendorPrivate) []byte {
		p := nhrp.NewRegistrationRequest(addr("198.51.100.2"), addr("10.255.0.2"), addr(hubProto), id, 600, 0, false)
		if vendor != nil {
			p.AddExtension(nhrp.Extension{Type: nhrp.ExtensionVendorPrivate, Vendor: *vendor})
		}
		return marshal(t, p)
	}
	cisco := func(data string) *nhrp.VendorPrivate {
		return &nhrp.VendorPrivate{OUI: nhrp.OUICisco, Data: []byte(data)}
	}
	for _, tc := range []struct {
		name    string
		vendor  *nhrp.VendorPrivate
		group   string
		invalid uint64
	}{
		{"none", nil, "", 0},
		{"valid", cisco("branch-2m"), "branch-2m", 0},
		// Another vendor's extension is not a group and not an error.
		{"other vendor", &nhrp.VendorPrivate{OUI: [3]byte{0, 0, 0x5e}, Data: []byte("branch-2m")}, "", 0},
		// Invalid claims are ignored and counted; the registration stands.
		{"too long", cisco(string(make([]byte, nhrp.MaxGroupLen+1))), "", 1},
		{"control octets", cisco("a\nb"), "", 1},
		{"empty", cisco(""), "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			sent := r.recv("198.51.100.2", reg(t, 1, tc.vendor))
			if diff := cmp.Diff([]string{"success"}, codes(sent)); diff != "" {
				t.Fatalf("reply codes (-want +got):\n%s", diff)
			}
			if got := r.node.Engine.Group(addr("10.255.0.2")); got != tc.group {
				t.Errorf("recorded group %q, want %q", got, tc.group)
			}
			if got := r.counter("drop_group_invalid"); got != tc.invalid {
				t.Errorf("drop_group_invalid = %d, want %d", got, tc.invalid)
			}
		})
	}
}

// TestGroupChangeOnRefresh: a refresh that changes (or drops) the group
// updates the record and reports EventGroup; a refresh with the same group
// reports nothing.
func TestGroupChangeOnRefresh(t *testing.T) {
	r := newRig(t)
	var events []string
	send := func(id uint32, group string) {
		p := nhrp.NewRegistrationRequest(addr("198.51.100.2"), addr("10.255.0.2"), addr(hubProto), id, 600, 0, false)
		if err := p.SetGroup(group); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"success"}, codes(r.recv("198.51.100.2", marshal(t, p)))); diff != "" {
			t.Fatalf("reply codes (-want +got):\n%s", diff)
		}
	}
	send(1, "branch-2m")
	send(2, "branch-2m")
	send(3, "branch-10m")
	send(4, "")
	for _, ev := range r.node.EventsOf(engine.EventGroup) {
		events = append(events, ev.String())
	}
	want := []string{
		`group proto=10.255.0.2 nbma=198.51.100.2 kind=registered group=branch-10m reason="group changed"`,
		`group proto=10.255.0.2 nbma=198.51.100.2 kind=registered reason="group changed"`,
	}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("group events (-want +got):\n%s", diff)
	}
	if got := r.node.Engine.Group(addr("10.255.0.2")); got != "" {
		t.Errorf("group after a refresh without one: %q", got)
	}
}

func TestGroupConfigValidated(t *testing.T) {
	cfg := spokeConfig(2)
	cfg.Group = "has space"
	if _, err := nhrpsim.New().AddNode("s", "198.51.100.2", nil, cfg); err == nil {
		t.Error("an invalid group was accepted")
	}
}
