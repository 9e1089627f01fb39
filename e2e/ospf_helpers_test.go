package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// OSPF timers of the scenarios: short so that the dead interval is
// measurable within a lab run.
const (
	ospfHello = 2 * time.Second
	ospfDead  = 8 * time.Second
)

// ospfSetup is an OSPF scenario's settings.
type ospfSetup struct {
	// network is the OSPF network type of gre1 on every node
	// ("point-to-multipoint" or "broadcast").
	network string
	holding time.Duration
	ipsec   string
	vici    map[string]string
}

// ospfConfig renders d's dmvpnd.yaml: no BGP; the hub copies multicast to
// every registered spoke, a spoke to its NHS.
func (s ospfSetup) ospfConfig(d *dnode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tunnel: {name: gre1, key: 42, local_nbma: %s, address: %s/24}\n", d.nbma, d.tunnel)
	fmt.Fprintf(&b, "nhrp:\n  network_id: 1\n  holding_time: %ds\n", int(s.holding.Seconds()))
	if d.hub {
		b.WriteString("  role: hub\n  redirect: true\n  multicast: {dynamic: true}\n")
	} else {
		fmt.Fprintf(&b, "  role: spoke\n  shortcut: true\n  multicast: {nhs: true}\n  nhs:\n%s", d.nhsYAML)
	}
	if s.ipsec != "" {
		fmt.Fprintf(&b, "ipsec:\n  enabled: true\n  vici_socket: %s\n%s", s.vici[d.name], s.ipsec)
	}
	fmt.Fprintf(&b, "control: {socket: %s}\nmetrics: {listen: \"\"}\nlog: {level: debug}\n", d.socket())
	return b.String()
}

// ospfdConf is d's ospfd.conf: gre1 and the LAN in area 0, gre1 of the
// scenario's network type; in broadcast networks only the hub may become
// DR (the spokes have priority 0).
func (s ospfSetup) ospfdConf(d *dnode) string {
	gre1 := []string{"ip ospf network " + s.network}
	if s.network == "broadcast" && !d.hub {
		gre1 = append(gre1, "ip ospf priority 0")
	}
	return ospfdConfig(d.name, d.tunnel, gre1, netip.MustParsePrefix("10.0.0.0/24"), d.lan.Masked())
}

// ospfdConfig renders an ospfd.conf: gre1 with the scenarios' timers and
// the interface lines gre1 (network type, priority), the networks in area
// 0.
func ospfdConfig(host string, routerID netip.Addr, gre1 []string, networks ...netip.Prefix) string {
	var b strings.Builder
	// Millisecond timestamps: the dead-interval check reads the time
	// of the hub's adjacency change from its log.
	fmt.Fprintf(&b, "hostname %s\nlog stdout informational\nlog timestamp precision 3\ninterface gre1\n", host)
	for _, l := range gre1 {
		fmt.Fprintf(&b, " %s\n", l)
	}
	fmt.Fprintf(&b, " ip ospf hello-interval %d\n ip ospf dead-interval %d\n", int(ospfHello.Seconds()), int(ospfDead.Seconds()))
	fmt.Fprintf(&b, "router ospf\n log-adjacency-changes detail\n ospf router-id %s\n", routerID)
	for _, n := range networks {
		fmt.Fprintf(&b, " network %s area 0\n", n)
	}
	return b.String()
}

// ospfStart writes d's configuration and starts dmvpnd.
func ospfStart(t *testing.T, l *lab.Lab, d *dnode, s ospfSetup) {
	t.Helper()
	d.startWith(t, l, s.ospfConfig(d))
}

// ospfStartAll starts dmvpnd on the hub, then on the spokes, waits until
// every spoke is registered (UP on the hub), then starts zebra and ospfd
// everywhere. It returns each node's FRR.
func ospfStartAll(t *testing.T, l *lab.Lab, nodes []*dnode, s ospfSetup) map[*dnode]*lab.FRR {
	t.Helper()
	startRegistered(t, nodes[0], nodes[1:], func(d *dnode) { ospfStart(t, l, d, s) })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	frr := map[*dnode]*lab.FRR{}
	for _, d := range nodes {
		f, err := d.node.StartFRR(ctx, map[string]string{
			"zebra": fmt.Sprintf("hostname %s\nlog stdout informational\n", d.name),
			"ospfd": s.ospfdConf(d),
		})
		if err != nil {
			t.Fatal(err)
		}
		frr[d] = f
	}
	return frr
}

// ospfNeighbors returns d's OSPF neighbors on gre1: router id -> state
// ("Full/DROther", "Full/-", ...).
func ospfNeighbors(ctx context.Context, f *lab.FRR) (map[string]string, error) {
	res, err := f.Vtysh(ctx, "show ip ospf neighbor json")
	if err != nil {
		return nil, err
	}
	var v struct {
		Neighbors map[string][]struct {
			State    string `json:"state"`
			NbrState string `json:"nbrState"`
		} `json:"neighbors"`
	}
	if err := json.Unmarshal(res.Stdout, &v); err != nil {
		return nil, fmt.Errorf("show ip ospf neighbor json: %v\n%s", err, res.Stdout)
	}
	out := map[string]string{}
	for id, ns := range v.Neighbors {
		for _, n := range ns {
			st := n.State
			if st == "" {
				st = n.NbrState
			}
			out[id] = st
		}
	}
	return out, nil
}

// ospfWaitFull waits until the ospfd of f (on node name) has exactly the
// neighbors want, all Full.
func ospfWaitFull(ctx context.Context, name string, f *lab.FRR, want []netip.Addr) error {
	var last map[string]string
	err := lab.WaitFor(ctx, 250*time.Millisecond, func(ctx context.Context) error {
		got, err := ospfNeighbors(ctx, f)
		if err != nil {
			return err
		}
		last = got
		if len(got) != len(want) {
			return fmt.Errorf("%s: OSPF neighbors %v, want Full with %v", name, got, want)
		}
		for _, w := range want {
			if !strings.HasPrefix(got[w.String()], "Full") {
				return fmt.Errorf("%s: OSPF neighbors %v, want Full with %v", name, got, want)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w (last %v)", err, last)
	}
	return nil
}

// ospfRoute is one kernel route to a LAN prefix.
type ospfRoute struct {
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Protocol string `json:"protocol"`
	Metric   int    `json:"metric"`
}

func (r ospfRoute) String() string {
	return fmt.Sprintf("%s via %s proto %s metric %d", r.Dst, r.Gateway, r.Protocol, r.Metric)
}

// ospfKernelRoutes lists n's IPv4 routes to prefixes inside 10.1.0.0/16.
func ospfKernelRoutes(ctx context.Context, n *lab.Node) ([]ospfRoute, error) {
	res, err := n.Run(ctx, "ip -j -4 route show root 10.1.0.0/16")
	if err != nil {
		return nil, err
	}
	var rs []ospfRoute
	if err := json.Unmarshal(res.Stdout, &rs); err != nil {
		return nil, fmt.Errorf("%s: ip -j route: %v\n%s", n.Name, err, res.Stdout)
	}
	return rs, nil
}

// ospfHasRoute reports whether rs holds dst via gw of protocol proto
// ("ospf", or "157" for dmvpnd's shortcuts).
func ospfHasRoute(rs []ospfRoute, dst netip.Prefix, gw netip.Addr, proto string) bool {
	return slices.ContainsFunc(rs, func(r ospfRoute) bool {
		return r.Dst == dst.String() && r.Gateway == gw.String() && r.Protocol == proto
	})
}

// ospfWaitRoutes waits until cond holds for n's LAN routes.
func ospfWaitRoutes(ctx context.Context, n *lab.Node, what string, cond func([]ospfRoute) bool) error {
	var last []ospfRoute
	err := lab.WaitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		rs, err := ospfKernelRoutes(ctx, n)
		if err != nil {
			return err
		}
		last = rs
		if !cond(rs) {
			return fmt.Errorf("%s: %s", n.Name, what)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; routes %v", err, last)
	}
	return nil
}
