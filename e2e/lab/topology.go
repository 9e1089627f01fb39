package lab

import (
	"fmt"
	"net/netip"
	"strings"
)

// Topology describes the lab network: an underlay bridge (the "internet")
// living in its own namespace, nodes as namespaces attached to it through
// veth pairs, optional NAT routers in front of chosen nodes, and per-node
// LAN prefixes on dummy interfaces.
//
// Inside a node the underlay interface is always eth0; its bridge port in
// the switch namespace carries the node's name, so captures on the underlay
// are Capture(ctx, SwitchNode, "s1").
type Topology struct {
	// Underlay is the internet prefix; default 198.51.100.0/24.
	Underlay netip.Prefix
	// Switch names the namespace and the bridge of the underlay; default "inet".
	Switch string
	// Prefix is prepended to every namespace name. Lab sets it in native
	// mode so lab namespaces never collide with the host's.
	Prefix string
	Nodes  []NodeSpec
}

// NodeSpec is one namespace on the underlay.
type NodeSpec struct {
	Name string
	// NBMA is eth0's address: on the underlay, or inside the NAT's private
	// network when Behind is set.
	NBMA netip.Addr
	// LANs are interface addresses with their prefix length ("10.1.0.1/24"),
	// one dummy interface lan0, lan1, ... per entry.
	LANs []netip.Prefix
	// Behind puts a NAT router namespace between the node and the underlay.
	Behind *NAT
}

// NAT is a router namespace that masquerades a node behind its public address.
type NAT struct {
	Name   string
	Public netip.Addr   // router's address on the underlay
	Inside netip.Prefix // router's inside address and prefix, e.g. 192.168.2.1/24
}

// DefaultUnderlay is the internet prefix when Topology.Underlay is unset.
var DefaultUnderlay = netip.MustParsePrefix("198.51.100.0/24")

func (t Topology) withDefaults() Topology {
	if !t.Underlay.IsValid() {
		t.Underlay = DefaultUnderlay
	}
	if t.Switch == "" {
		t.Switch = "inet"
	}
	return t
}

// NS returns the namespace name of a node, router or the switch.
func (t Topology) NS(name string) string { return t.Prefix + name }

// Namespaces lists every namespace the plan creates, switch first.
func (t Topology) Namespaces() []string {
	t = t.withDefaults()
	out := []string{t.NS(t.Switch)}
	for _, n := range t.Nodes {
		if n.Behind != nil {
			out = append(out, t.NS(n.Behind.Name))
		}
		out = append(out, t.NS(n.Name))
	}
	return out
}

func (t Topology) validate() error {
	seen := map[string]bool{t.Switch: true}
	// Addresses are unique per address space: the underlay, and the
	// inside of each NAT router (two NATs may hide the same private
	// addresses, issue 13 item 7).
	type scoped struct {
		nat string
		a   netip.Addr
	}
	addrs := map[scoped]string{}
	checkName := func(kind, name string) error {
		switch {
		case name == "" || len(name) > 15 || strings.ContainsAny(name, " /\t'\"$") || name == "lo":
			return fmt.Errorf("lab: %s name %q: want 1-15 plain characters (it names an interface)", kind, name)
		case seen[name]:
			return fmt.Errorf("lab: duplicate name %q", name)
		}
		seen[name] = true
		return nil
	}
	checkAddr := func(who, nat string, a netip.Addr) error {
		if !a.Is4() {
			return fmt.Errorf("lab: %s: address %v is not IPv4", who, a)
		}
		if other, ok := addrs[scoped{nat, a}]; ok {
			return fmt.Errorf("lab: %s: address %v already used by %s", who, a, other)
		}
		addrs[scoped{nat, a}] = who
		return nil
	}
	if !t.Underlay.Addr().Is4() {
		return fmt.Errorf("lab: underlay %v is not IPv4", t.Underlay)
	}
	for _, n := range t.Nodes {
		if err := checkName("node", n.Name); err != nil {
			return err
		}
		var nat string
		if n.Behind != nil {
			nat = n.Behind.Name
		}
		if err := checkAddr(n.Name, nat, n.NBMA); err != nil {
			return err
		}
		if n.Behind == nil {
			if !t.Underlay.Contains(n.NBMA) {
				return fmt.Errorf("lab: node %s: NBMA %v outside underlay %v", n.Name, n.NBMA, t.Underlay)
			}
		} else {
			r := n.Behind
			if err := checkName("NAT router", r.Name); err != nil {
				return err
			}
			if !t.Underlay.Contains(r.Public) {
				return fmt.Errorf("lab: NAT %s: public %v outside underlay %v", r.Name, r.Public, t.Underlay)
			}
			if err := checkAddr(r.Name, "", r.Public); err != nil {
				return err
			}
			if err := checkAddr(r.Name, r.Name, r.Inside.Addr()); err != nil {
				return err
			}
			if !r.Inside.Contains(n.NBMA) {
				return fmt.Errorf("lab: node %s: NBMA %v outside NAT inside %v", n.Name, n.NBMA, r.Inside)
			}
		}
		for _, l := range n.LANs {
			if !l.Addr().Is4() {
				return fmt.Errorf("lab: node %s: LAN %v is not IPv4", n.Name, l)
			}
		}
	}
	return nil
}

// Plan renders the shell commands that build the topology, in order. The
// plan is deterministic: the same Topology always gives the same lines.
// Commands for one namespace are grouped into one "ip -batch" each, since
// every process start is slow under emulation.
func (t Topology) Plan() ([]string, error) {
	t = t.withDefaults()
	if err := t.validate(); err != nil {
		return nil, err
	}
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	batches := map[string][]string{} // namespace -> ip batch lines
	var order []string
	batch := func(ns, format string, args ...any) {
		if _, ok := batches[ns]; !ok {
			order = append(order, ns)
		}
		batches[ns] = append(batches[ns], fmt.Sprintf(format, args...))
	}
	sw := t.NS(t.Switch)
	bits := t.Underlay.Bits()

	// Namespaces first, so veth peers can be placed into them.
	var adds []string
	for _, ns := range t.Namespaces() {
		adds = append(adds, "netns add "+ns)
	}
	add("ip -batch - <<'EOF'\n%s\nEOF", strings.Join(adds, "\n"))
	for _, ns := range t.Namespaces()[1:] {
		add("ip netns exec %s sysctl -qw net.ipv4.ip_forward=1", ns)
	}
	batch(sw, "link set lo up")
	batch(sw, "link add %s type bridge", t.Switch)
	batch(sw, "link set %s up", t.Switch)
	// The switch ports first (all in the switch namespace), then each
	// namespace's own configuration.
	for _, n := range t.Nodes {
		port, ns := n.Name, t.NS(n.Name)
		if n.Behind != nil {
			port, ns = n.Behind.Name, t.NS(n.Behind.Name)
		}
		batch(sw, "link add %s type veth peer name eth0 netns %s", port, ns)
		batch(sw, "link set %s master %s up", port, t.Switch)
	}
	var nat []string
	for _, n := range t.Nodes {
		ns := t.NS(n.Name)
		if r := n.Behind; r != nil {
			rns := t.NS(r.Name)
			batch(rns, "link set lo up")
			batch(rns, "addr add %s/%d dev eth0", r.Public, bits)
			batch(rns, "link set eth0 up")
			batch(rns, "link add eth1 type veth peer name eth0 netns %s", ns)
			batch(rns, "addr add %s dev eth1", r.Inside)
			batch(rns, "link set eth1 up")
			nat = append(nat, fmt.Sprintf(`ip netns exec %s nft 'add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }; add rule ip nat post oifname "eth0" masquerade'`, rns))
		}
	}
	for _, n := range t.Nodes {
		ns := t.NS(n.Name)
		batch(ns, "link set lo up")
		if r := n.Behind; r == nil {
			batch(ns, "addr add %s/%d dev eth0", n.NBMA, bits)
			batch(ns, "link set eth0 up")
		} else {
			batch(ns, "addr add %s/%d dev eth0", n.NBMA, r.Inside.Bits())
			batch(ns, "link set eth0 up")
			batch(ns, "route add default via %s", r.Inside.Addr())
		}
		for i, l := range n.LANs {
			batch(ns, "link add lan%d type dummy", i)
			batch(ns, "addr add %s dev lan%d", l, i)
			batch(ns, "link set lan%d up", i)
		}
	}
	for _, ns := range order {
		add("ip -n %s -batch - <<'EOF'\n%s\nEOF", ns, strings.Join(batches[ns], "\n"))
	}
	p = append(p, nat...)
	return p, nil
}
