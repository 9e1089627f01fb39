package routing_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// renderPlan renders a plan as stable, indented JSON (protojson output is
// deliberately unstable in whitespace, so it is re-indented).
func renderPlan(t *testing.T, p routing.Plan) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("{\n")
	sections := []struct {
		name string
		msgs []proto.Message
	}{
		{"start", []proto.Message{p.Start}},
		{"policies", msgs(p.Policies)},
		{"assignments", msgs(p.Assignments)},
		{"peer_groups", msgs(p.PeerGroups)},
		{"dynamic_neighbors", msgs(p.DynamicNeighbors)},
		{"peers", msgs(p.Peers)},
	}
	for i, s := range sections {
		var items []json.RawMessage
		for _, m := range s.msgs {
			b, err := protojson.Marshal(m)
			if err != nil {
				t.Fatalf("marshal %s: %v", s.name, err)
			}
			items = append(items, b)
		}
		raw, err := json.Marshal(items)
		if err != nil {
			t.Fatal(err)
		}
		var ind bytes.Buffer
		if err := json.Indent(&ind, raw, "  ", "  "); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("  \"" + s.name + "\": ")
		buf.Write(ind.Bytes())
		if i < len(sections)-1 {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
	}
	buf.WriteString("}\n")
	return buf.Bytes()
}

func msgs[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, 0, len(in))
	for _, m := range in {
		out = append(out, m)
	}
	return out
}

func baseHub() routing.Config {
	return routing.Config{
		ASN: 65000, RouterID: addr("10.0.0.1"), ListenAddress: addr("10.0.0.1"),
		Role:     routing.RoleHub,
		Prefixes: []netip.Prefix{pfx("172.16.0.0/24")},
		Hub:      routing.HubConfig{DynamicRange: pfx("10.0.0.0/24")},
		API:      "unix:///run/dmvpnd/gobgp.sock",
		Tunnel:   pfx("10.0.0.0/24"),
		Import:   routing.ImportConfig{Accept: []routing.PrefixRange{{Prefix: pfx("192.168.0.0/16"), GE: 24}}},
	}
}

func baseSpoke() routing.Config {
	return routing.Config{
		ASN: 65000, RouterID: addr("10.0.0.11"), ListenPort: -1,
		HoldTime: 9 * time.Second, ConnectRetry: time.Second,
		Role:     routing.RoleSpoke,
		Prefixes: []netip.Prefix{pfx("192.168.11.0/24")},
		Spoke: routing.SpokeConfig{Hubs: []routing.Neighbor{
			{Address: addr("10.0.0.1"), LocalAddress: addr("10.0.0.11")},
			{Address: addr("10.0.0.2"), LocalAddress: addr("10.0.0.11")},
		}},
		API:    "127.0.0.1:50051",
		Tunnel: pfx("10.0.0.0/24"),
		Import: routing.ImportConfig{Accept: []routing.PrefixRange{{Prefix: pfx("192.168.0.0/16"), GE: 24}}},
	}
}

func TestBuildPlanGolden(t *testing.T) {
	tests := []struct {
		name string
		cfg  func() routing.Config
	}{
		{"hub-reflect-ibgp", baseHub},
		{"hub-reflect-ebgp", func() routing.Config {
			c := baseHub()
			c.Hub.EBGPSpokes = true
			return c
		}},
		{"hub-summary", func() routing.Config {
			c := baseHub()
			c.Hub.Mode = routing.HubModeSummary
			c.Hub.Summaries = []netip.Prefix{pfx("0.0.0.0/0"), pfx("192.168.0.0/16")}
			c.Hub.PeerGroup = "spokes"
			c.Hub.ClusterID = addr("1.1.1.1")
			c.Hub.Peers = []routing.Neighbor{{Address: addr("10.0.0.2")}}
			return c
		}},
		{"spoke-ibgp", baseSpoke},
		{"spoke-ebgp", func() routing.Config {
			c := baseSpoke()
			c.ASN = 65011
			for i := range c.Spoke.Hubs {
				c.Spoke.Hubs[i].PeerAS = 65000
				c.Spoke.Hubs[i].Port = 1179
			}
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := routing.BuildPlan(tt.cfg())
			if err != nil {
				t.Fatalf("BuildPlan: %v", err)
			}
			golden.File(t, "plan-"+tt.name+".json", renderPlan(t, p))
		})
	}
}

// TestBuildPlanSemantics spells out the decisions the golden files encode,
// so that an -update cannot silently change them.
func TestBuildPlanSemantics(t *testing.T) {
	hub, err := routing.BuildPlan(baseHub())
	if err != nil {
		t.Fatal(err)
	}
	wantGroup := &api.PeerGroup{
		Conf:           &api.PeerGroupConf{PeerGroupName: routing.DefaultPeerGroup, PeerAsn: 65000},
		RouteReflector: &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: "10.0.0.1"},
		Timers:         &api.Timers{Config: &api.TimersConfig{ConnectRetry: 10, HoldTime: 90, KeepaliveInterval: 30}},
		Transport:      &api.Transport{PassiveMode: true},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
			Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true,
		}}},
	}
	if diff := cmp.Diff([]*api.AddPeerGroupRequest{{PeerGroup: wantGroup}}, hub.PeerGroups, protocmp.Transform()); diff != "" {
		t.Errorf("hub peer group (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]*api.AddDynamicNeighborRequest{{DynamicNeighbor: &api.DynamicNeighbor{Prefix: "10.0.0.0/24", PeerGroup: routing.DefaultPeerGroup}}},
		hub.DynamicNeighbors, protocmp.Transform()); diff != "" {
		t.Errorf("dynamic neighbors (-want +got):\n%s", diff)
	}
	if len(exportPolicies(hub.Policies)) != 0 || len(exportAssignments(hub.Assignments)) != 0 {
		t.Errorf("iBGP reflect hub has policies %v: reflection must keep next hops without one", hub.Policies)
	}
	// A spoke's path is rejected, not rewritten, when its next hop is not
	// the spoke: the hub's static import policy accepts nothing from
	// spokes and rewrites no next hop (the per-spoke statements are added
	// at runtime).
	for _, p := range hub.Policies {
		for _, st := range p.Policy.Statements {
			if st.GetActions().GetNexthop() != nil && p.Policy.Name == "dmvpn-import" {
				t.Errorf("hub import statement %s changes the next hop: %v", st.Name, st.Actions.Nexthop)
			}
		}
	}

	sc := baseHub()
	sc.Hub.Mode = routing.HubModeSummary
	sc.Hub.Summaries = []netip.Prefix{pfx("0.0.0.0/0")}
	sum, err := routing.BuildPlan(sc)
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy := &api.Policy{Name: "dmvpn-export", Statements: []*api.Statement{{
		Name:       "originated-only",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT, Nexthop: &api.NexthopAction{Self: true}},
	}}}
	if diff := cmp.Diff([]*api.AddPolicyRequest{{Policy: wantPolicy}}, exportPolicies(sum.Policies), protocmp.Transform()); diff != "" {
		t.Errorf("summary policy (-want +got):\n%s", diff)
	}
	wantAssign := &api.PolicyAssignment{Name: "global", Direction: api.PolicyDirection_EXPORT,
		Policies: []*api.Policy{{Name: "dmvpn-export"}}, DefaultAction: api.RouteAction_REJECT}
	if diff := cmp.Diff([]*api.AddPolicyAssignmentRequest{{Assignment: wantAssign}}, exportAssignments(sum.Assignments), protocmp.Transform()); diff != "" {
		t.Errorf("summary assignment (-want +got):\n%s", diff)
	}

	sp, err := routing.BuildPlan(baseSpoke())
	if err != nil {
		t.Fatal(err)
	}
	if got := sp.Start.Global.ListenPort; got != -1 {
		t.Errorf("spoke listen port %d, want -1 (no listener)", got)
	}
	if len(sp.Peers) != 2 || sp.Peers[1].Peer.Conf.NeighborAddress != "10.0.0.2" || sp.Peers[1].Peer.Transport.LocalAddress != "10.0.0.11" {
		t.Errorf("spoke peers = %v", sp.Peers)
	}
	if got := sp.Peers[0].Peer.Timers.Config; got.HoldTime != 9 || got.KeepaliveInterval != 3 || got.ConnectRetry != 1 {
		t.Errorf("spoke timers = %v, want hold 9 keepalive 3 retry 1", got)
	}
}

func TestOriginateWithdrawRequests(t *testing.T) {
	add, err := routing.OriginateRequest(pfx("192.168.11.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	del, err := routing.WithdrawRequest(pfx("192.168.11.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	var nlri api.IPAddressPrefix
	if err := add.Path.Nlri.UnmarshalTo(&nlri); err != nil {
		t.Fatal(err)
	}
	if nlri.Prefix != "192.168.11.0" || nlri.PrefixLen != 24 {
		t.Errorf("nlri = %v", &nlri)
	}
	if diff := cmp.Diff(add.Path, del.Path, protocmp.Transform()); diff != "" {
		t.Errorf("withdraw must name the same path (-add +del):\n%s", diff)
	}
	if len(del.Uuid) != 0 || del.Path == nil {
		t.Error("withdraw must name a path: an empty delete request removes every local path")
	}
	for _, bad := range []netip.Prefix{{}, pfx("192.168.11.1/24"), pfx("2001:db8::/32")} {
		if _, err := routing.OriginateRequest(bad); err == nil {
			t.Errorf("OriginateRequest(%v) succeeded", bad)
		}
		if _, err := routing.WithdrawRequest(bad); err == nil {
			t.Errorf("WithdrawRequest(%v) succeeded", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*routing.Config)
		fields []string // ConfigError fields expected, in order
	}{
		{"valid hub", func(*routing.Config) {}, nil},
		{"no asn", func(c *routing.Config) { c.ASN = 0 }, []string{"asn"}},
		{"ipv6 router id", func(c *routing.Config) { c.RouterID = addr("2001:db8::1") }, []string{"router_id"}},
		{"bad role", func(c *routing.Config) { c.Role = "leaf" }, []string{"role"}},
		{"keepalive above hold", func(c *routing.Config) { c.HoldTime = 9 * time.Second; c.KeepaliveInterval = 10 * time.Second }, []string{"keepalive_interval"}},
		{"short hold", func(c *routing.Config) { c.HoldTime = time.Second }, []string{"hold_time"}},
		{"host bits", func(c *routing.Config) { c.Prefixes = []netip.Prefix{pfx("172.16.0.1/24")} }, []string{"prefixes[0]"}},
		{"api not loopback", func(c *routing.Config) { c.API = "0.0.0.0:50051" }, []string{"api"}},
		{"api relative socket", func(c *routing.Config) { c.API = "unix://gobgp.sock" }, []string{"api"}},
		{"api garbage", func(c *routing.Config) { c.API = "localhost" }, []string{"api"}},
		{"no range", func(c *routing.Config) { c.Hub.DynamicRange = netip.Prefix{} }, []string{"hub.dynamic_range"}},
		{"summary without summaries", func(c *routing.Config) { c.Hub.Mode = routing.HubModeSummary }, []string{"hub.summaries"}},
		{"bad mode", func(c *routing.Config) { c.Hub.Mode = "mesh" }, []string{"hub.mode"}},
		{"hub with spoke section", func(c *routing.Config) { c.Spoke.Hubs = []routing.Neighbor{{Address: addr("10.0.0.2")}} }, []string{"spoke.hubs"}},
		{"spoke without hubs", func(c *routing.Config) { c.Role = routing.RoleSpoke; c.Hub = routing.HubConfig{} }, []string{"spoke.hubs"}},
		{"two problems", func(c *routing.Config) { c.ASN = 0; c.Hub.Mode = "mesh" }, []string{"asn", "hub.mode"}},
		// GoBGP would still reflect what the FIB drops.
		{"drop on a hub", func(c *routing.Config) { c.MaxPrefixes = 10; c.MaxPrefixAction = routing.MaxPrefixDrop }, []string{"max_prefix_action"}},
		{"drop on a spoke", func(c *routing.Config) {
			c.Role, c.Hub = routing.RoleSpoke, routing.HubConfig{}
			c.Spoke.Hubs = []routing.Neighbor{{Address: addr("10.0.0.1")}}
			c.MaxPrefixes, c.MaxPrefixAction = 10, routing.MaxPrefixDrop
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseHub()
			tt.mutate(&c)
			err := c.Validate()
			var got []string
			for _, e := range unwrapAll(err) {
				var ce *routing.ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("error %v is not a *ConfigError", e)
				}
				got = append(got, ce.Field)
				if !strings.HasPrefix(e.Error(), "routing: ") {
					t.Errorf("error %q lacks the package prefix", e)
				}
			}
			if diff := cmp.Diff(tt.fields, got); diff != "" {
				t.Errorf("invalid fields (-want +got):\n%s", diff)
			}
			if _, perr := routing.BuildPlan(c); (perr == nil) != (err == nil) {
				t.Errorf("BuildPlan error %v disagrees with Validate %v", perr, err)
			}
		})
	}
}

func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestOriginated(t *testing.T) {
	c := baseHub()
	c.Prefixes = []netip.Prefix{pfx("172.16.1.0/24"), pfx("172.16.0.0/24"), pfx("172.16.0.0/24")}
	c.Hub.Summaries = []netip.Prefix{pfx("0.0.0.0/0")}
	want := []netip.Prefix{pfx("0.0.0.0/0"), pfx("172.16.0.0/24"), pfx("172.16.1.0/24")}
	if diff := cmp.Diff(want, c.Originated(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("Originated (-want +got):\n%s", diff)
	}
}

func exportPolicies(ps []*api.AddPolicyRequest) []*api.AddPolicyRequest {
	var out []*api.AddPolicyRequest
	for _, p := range ps {
		if p.Policy.Name == "dmvpn-export" {
			out = append(out, p)
		}
	}
	return out
}

func exportAssignments(as []*api.AddPolicyAssignmentRequest) []*api.AddPolicyAssignmentRequest {
	var out []*api.AddPolicyAssignmentRequest
	for _, a := range as {
		if a.Assignment.Direction == api.PolicyDirection_EXPORT {
			out = append(out, a)
		}
	}
	return out
}
