package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// OSPF across a mixed cloud (issue 18): a dmvpnd hub, an FRR nhrpd spoke
// replicating its multicast with `ip nhrp map multicast`, and a dmvpnd
// spoke, FRR ospfd on each, as deploy/OSPF.md ("Mixed clouds") describes.
//
// FRR's nhrpd wants a host address (/32) on its tunnel, and FRR's ospfd
// refuses a hello whose network mask differs from the receiving
// interface's prefix length, except on point-to-point links and on
// point-to-multipoint interfaces with a /32 (ospfd/ospf_packet.c,
// ospf_hello). So the hub runs point-to-multipoint on a /32 (its tunnel
// address, the tunnel prefix as a route: tunnel.host_address), the spokes point-to-point (the
// FRR spoke `point-to-point dmvpn`, as FRR documents for a spoke under a
// point-to-multipoint hub). The hub replicates its own OSPF packets to
// both spokes; it does not forward one spoke's link-local multicast to
// another (nor does a Cisco or FRR hub), and a spoke adjacent to the hub
// alone needs none.

// frrMcastNFLOGGroup is the NFLOG group of an FRR spoke's multicast
// capture (nhrp multicast-nflog-group; FRR's documentation uses 2).
const frrMcastNFLOGGroup = 2

// ospfMixedCloud runs the mixed-cloud recipe on a started frrLab whose
// hub runs dmvpnd with nhrp.multicast.dynamic, fs is an FRR spoke and ds
// a dmvpnd spoke with nhrp.multicast.nhs.
func ospfMixedCloud(ctx context.Context, t *testing.T, il *frrLab, fs, ds *frrSite) {
	hub := il.hub()
	t0 := time.Now()
	// The FRR spoke: FRR's documented NFLOG and drop rules, nhrpd's
	// group, the hub's NBMA as multicast target; rp_filter off on gre1 as
	// ospfd's documentation asks for an unnumbered interface; dmvpnd's
	// tunnel MTU (OSPF refuses a neighbour's larger MTU in its database
	// description: the adjacency stops in ExStart).
	fs.node.MustRun(fmt.Sprintf("iptables -A OUTPUT -d 224.0.0.0/24 -o gre1 -j NFLOG --nflog-group %[1]d && "+
		"iptables -A OUTPUT -d 224.0.0.0/24 -o gre1 -j DROP && sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.gre1.rp_filter=0 && "+
		"ip link set gre1 mtu 1400", frrMcastNFLOGGroup))
	if _, err := fs.f.frr.Vtysh(ctx, "configure terminal", fmt.Sprintf("nhrp multicast-nflog-group %d", frrMcastNFLOGGroup),
		"interface gre1", "ip nhrp map multicast "+hub.nbma.String()); err != nil {
		t.Fatal(err)
	}
	// The hub: gre1 carries its tunnel address as a host address (FRR's
	// convention) with the tunnel prefix as dmvpnd's route instead of the
	// /24 (tunnel.host_address), turned on by a reload of the running hub
	// (the FRR spokes stay registered). The hub's static routes to the
	// spokes' LANs go, OSPF's replace them.
	hubHost := netip.PrefixFrom(hub.tunnel, 32)
	tunnelNet := netip.MustParsePrefix("10.0.0.0/24")
	hub.d.hostAddress = true
	bgpCtlReload(ctx, t, il.l, hub.d, hub.d.config(), "tunnel.host_address")
	ospfHubHostLayout(ctx, t, hub, hubHost, tunnelNet)
	hub.node.MustRun(fmt.Sprintf("ip route del %s && ip route del %s", fs.lan.Masked(), ds.lan.Masked()))

	zebra := func(s *frrSite) string { return fmt.Sprintf("hostname %s\nlog stdout informational\n", s.name) }
	confs := map[*frrSite]map[string]string{
		hub: {"zebra": zebra(hub), "ospfd": ospfdConfig(hub.name, hub.tunnel, []string{"ip ospf network point-to-multipoint"}, tunnelNet, hub.lan.Masked())},
		ds:  {"zebra": zebra(ds), "ospfd": ospfdConfig(ds.name, ds.tunnel, []string{"ip ospf network point-to-point"}, tunnelNet, ds.lan.Masked())},
		// zebra runs beside nhrpd already.
		fs: {"ospfd": ospfdConfig(fs.name, fs.tunnel, []string{"ip ospf network point-to-point dmvpn"}, tunnelNet, fs.lan.Masked())},
	}
	ospf := map[*frrSite]*lab.FRR{}
	for _, s := range []*frrSite{hub, ds, fs} {
		f, err := s.node.StartFRR(ctx, confs[s])
		if err != nil {
			t.Fatal(err)
		}
		ospf[s] = f
	}

	want := map[*frrSite][]netip.Addr{hub: {fs.tunnel, ds.tunnel}, fs: {hub.tunnel}, ds: {hub.tunnel}}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	for _, s := range []*frrSite{hub, fs, ds} {
		if err := ospfWaitFull(wctx, s.name, ospf[s], want[s]); err != nil {
			ospfMixedDiag(ctx, t, hub, ospf[hub])
			t.Fatalf("OSPF adjacency: %v", err)
		}
	}
	t.Logf("timing: OSPF Full hub<->%s (FRR nhrpd) and hub<->%s (dmvpnd) %v after starting ospfd", fs.name, ds.name, bgpMS(time.Since(t0)))
	if n := ospfMaskMismatches(t, ospf[hub]); n > 0 {
		t.Errorf("hub's ospfd refused %d hellos for their network mask", n)
	}

	// Routes both ways: the hub learns each spoke's LAN from that spoke,
	// each spoke the hub's LAN and the other spoke's LAN via the hub.
	type route struct {
		lan netip.Prefix
		via netip.Addr
	}
	routes := map[*frrSite][]route{
		hub: {{fs.lan, fs.tunnel}, {ds.lan, ds.tunnel}},
		fs:  {{hub.lan, hub.tunnel}, {ds.lan, hub.tunnel}},
		ds:  {{hub.lan, hub.tunnel}, {fs.lan, hub.tunnel}},
	}
	for _, s := range []*frrSite{hub, fs, ds} {
		err := ospfWaitRoutes(wctx, s.node, fmt.Sprintf("OSPF routes %v", routes[s]), func(rs []ospfRoute) bool {
			for _, r := range routes[s] {
				if !ospfHasRoute(rs, r.lan.Masked(), r.via, "ospf") {
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatalf("OSPF routes: %v", err)
		}
	}
	t.Logf("timing: OSPF routes hub<->spokes and spoke<->spoke via the hub %v after starting ospfd", bgpMS(time.Since(t0)))
	for _, p := range [][2]*frrSite{{fs, ds}, {ds, fs}, {fs, hub}} {
		if _, err := p[0].node.Run(ctx, frrLANPing(p[0], p[1], 3, "0.2")); err != nil {
			t.Errorf("%s LAN -> %s LAN over OSPF's routes: %v", p[0].name, p[1].name, err)
		}
	}

	ospfMixedCopies(ctx, t, hub, fs, ds, ospf)
}

// ospfHubHostLayout checks the hub's gre1 as tunnel.host_address leaves
// it: the tunnel address only as hubHost, and one route to tunnelNet,
// dmvpnd's (protocol 157, scope link, source the tunnel address).
func ospfHubHostLayout(ctx context.Context, t *testing.T, hub *frrSite, hubHost, tunnelNet netip.Prefix) {
	t.Helper()
	res, err := hub.node.Run(ctx, "ip -4 -j addr show dev gre1")
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Addrs []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(res.Stdout, &links); err != nil {
		t.Fatalf("ip -j addr: %v\n%s", err, res.Stdout)
	}
	var addrs []string
	for _, l := range links {
		for _, a := range l.Addrs {
			addrs = append(addrs, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
		}
	}
	if len(addrs) != 1 || addrs[0] != hubHost.String() {
		t.Errorf("hub gre1 addresses %v, want only %s", addrs, hubHost)
	}
	res, err = hub.node.Run(ctx, fmt.Sprintf("ip -4 -j route show %s dev gre1 table main", tunnelNet))
	if err != nil {
		t.Fatal(err)
	}
	var routes []struct {
		Protocol string `json:"protocol"`
		Scope    string `json:"scope"`
		Src      string `json:"prefsrc"`
	}
	if err := json.Unmarshal(res.Stdout, &routes); err != nil {
		t.Fatalf("ip -j route: %v\n%s", err, res.Stdout)
	}
	// (ip names protocol 157 when rt_protos.d says "157 dmvpnd".)
	if len(routes) != 1 || (routes[0].Protocol != "157" && routes[0].Protocol != "dmvpnd") || routes[0].Scope != "link" || routes[0].Src != hubHost.Addr().String() {
		t.Errorf("hub routes to %s dev gre1: %+v, want one of protocol 157, scope link, src %s", tunnelNet, routes, hubHost.Addr())
	}
}

// ospfMixedCopies checks the hub's replication counters against what the
// FRR spoke's ospfd received: over a few hello intervals every OSPF
// packet the hub captured went to both spokes (one copy each in
// multicast_copies_to_NBMA), the FRR spoke's ospfd received the hub's
// hellos among them, and the dmvpnd spoke copied its own to the hub.
func ospfMixedCopies(ctx context.Context, t *testing.T, hub, fs, ds *frrSite, ospf map[*frrSite]*lab.FRR) {
	t.Helper()
	toFS, toDS, toHub := "multicast_copies_to_"+fs.nbma.String(), "multicast_copies_to_"+ds.nbma.String(), "multicast_copies_to_"+hub.nbma.String()
	start := time.Now()
	c0, err := nodeCounters(ctx, hub.d)
	if err != nil {
		t.Fatal(err)
	}
	d0, err := nodeCounters(ctx, ds.d)
	if err != nil {
		t.Fatal(err)
	}
	h0, err := ospfHelloIn(ctx, ospf[fs])
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-time.After(3 * ospfHello):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	h1, err := ospfHelloIn(ctx, ospf[fs])
	if err != nil {
		t.Fatal(err)
	}
	c1, err := nodeCounters(ctx, hub.d)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := nodeCounters(ctx, ds.d)
	if err != nil {
		t.Fatal(err)
	}
	captured := c1["multicast_packets"] - c0["multicast_packets"]
	copiesFS, copiesDS := c1[toFS]-c0[toFS], c1[toDS]-c0[toDS]
	hellos := h1 - h0
	t.Logf("over %v (%v between the reads): hub captured %d multicast packets, copied %d to %s (FRR) and %d to %s (dmvpnd); %s's ospfd received %d hellos; %s copied %d to the hub; hub totals %v",
		3*ospfHello, bgpMS(time.Since(start)), captured, copiesFS, fs.name, copiesDS, ds.name, fs.name, hellos, ds.name, d1[toHub]-d0[toHub], ospfMcastTotals(c1))
	if hellos < 2 {
		t.Errorf("%s's ospfd received %d hellos in %v, want at least 2 (hello interval %v)", fs.name, hellos, 3*ospfHello, ospfHello)
	}
	// A copy is counted before it is sent: a hello received in the window
	// was counted no later than the second read (one may have been
	// counted just before the first).
	if copiesFS+1 < uint64(hellos) {
		t.Errorf("hub counted %d copies to %s while its ospfd received %d hellos", copiesFS, fs.name, hellos)
	}
	for name, n := range map[string]uint64{fs.name: copiesFS, ds.name: copiesDS} {
		if n+1 < captured || n > captured+1 {
			t.Errorf("hub: %d copies to %s for %d captured packets, want one each", n, name, captured)
		}
	}
	if d1[toHub] == d0[toHub] {
		t.Errorf("%s: no multicast copies to the hub in %v", ds.name, 3*ospfHello)
	}
	if c1["multicast_send_errors"] != 0 || c1["multicast_rate_limited"] != 0 {
		t.Errorf("hub: multicast send errors %d, rate limited %d", c1["multicast_send_errors"], c1["multicast_rate_limited"])
	}
	// The same totals in Prometheus.
	s, err := obsScrape(ctx, hub.d)
	if err != nil {
		t.Fatal(err)
	}
	if got := s[obsSeries("dmvpnd_multicast_packets_total", "result", "copied")]; got < float64(c1["multicast_copies"]) {
		t.Errorf("hub metrics: dmvpnd_multicast_packets_total{result=\"copied\"} %v, below show counters' %d read before", got, c1["multicast_copies"])
	}
}

// ospfMcastTotals picks the replication totals from show counters.
func ospfMcastTotals(c map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range c {
		if strings.HasPrefix(k, "multicast_") && !strings.Contains(k, "_to_") {
			out[k] = v
		}
	}
	return out
}

// ospfHelloIn reads the hellos ospfd received on gre1 (show ip ospf
// interface traffic).
func ospfHelloIn(ctx context.Context, f *lab.FRR) (int, error) {
	res, err := f.Vtysh(ctx, "show ip ospf interface traffic gre1 json")
	if err != nil {
		return 0, err
	}
	// One interface asked for: {"gre1": {...}}.
	var v map[string]struct {
		HelloIn *int `json:"helloIn"`
	}
	if err := json.Unmarshal(res.Stdout, &v); err != nil {
		return 0, fmt.Errorf("show ip ospf interface traffic json: %v\n%s", err, res.Stdout)
	}
	i, ok := v["gre1"]
	if !ok || i.HelloIn == nil {
		return 0, fmt.Errorf("show ip ospf interface traffic json: no gre1 helloIn\n%s", res.Stdout)
	}
	return *i.HelloIn, nil
}

// ospfMaskMismatches counts the hellos ospfd refused for their network
// mask, from its log.
func ospfMaskMismatches(t *testing.T, f *lab.FRR) int {
	t.Helper()
	b, err := os.ReadFile(f.Procs["ospfd"].Log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "NetworkMask mismatch")
}

// ospfMixedDiag logs what the hub's ospfd and kernel see on gre1, for a
// failed adjacency.
func ospfMixedDiag(ctx context.Context, t *testing.T, hub *frrSite, f *lab.FRR) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if res, err := f.Vtysh(ctx, "show ip ospf interface gre1"); err == nil {
		t.Logf("hub show ip ospf interface gre1:\n%s", res.Stdout)
	}
	res, err := hub.node.Run(ctx, "ip -4 addr show dev gre1; ip maddr show dev gre1; nstat -az | grep -E 'IpIn|IpExtInMcast'; timeout 6 tcpdump -nni gre1 -c 6 ip proto 89 2>&1")
	if err == nil {
		t.Logf("hub gre1:\n%s", res.Stdout)
	}
}
