package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// HostNIC is a guest network card through which programs on the host
// reach one node, as an operator's tools reach a host's management
// address: an Ansible controller running natively on the host, where it is
// fast, against sshd in a node namespace. Each card is its own qemu
// user-mode network, restricted (the guest reaches nothing on the host or
// beyond) except for the TCP forwards from the host's loopback to Ports.
// Build moves the card into the node's namespace as HostNICName with the
// address HostNICAddr. VM mode only.
type HostNIC struct {
	Node  string
	Ports []int // TCP ports of the node reachable from the host (HostAddr)
}

const (
	// HostNICName is the card's name in its node.
	HostNICName = "mgmt0"
	// hostNICNet is every card's user-mode network (each card has its own
	// qemu network, so they do not collide); chosen outside the lab's
	// underlay, tunnel and LAN prefixes.
	hostNICNet = "172.30.0.0/24"
)

// HostNICAddr is the card's address in its node; the qemu side is .2.
var HostNICAddr = netip.MustParseAddr("172.30.0.15")

// hostNIC is a HostNIC with its MAC address and the host ports chosen.
type hostNIC struct {
	HostNIC
	mac   string
	ports map[int]int // node port -> host port
}

// hostNICs picks a MAC address per card and a free loopback port per
// forward.
func hostNICs(specs []HostNIC) ([]hostNIC, error) {
	var out []hostNIC
	seen := map[string]bool{}
	for i, s := range specs {
		if s.Node == "" || seen[s.Node] {
			return nil, fmt.Errorf("lab: host NIC %d: node %q empty or repeated", i, s.Node)
		}
		seen[s.Node] = true
		n := hostNIC{HostNIC: s, mac: fmt.Sprintf("52:54:00:4c:00:%02x", i+1), ports: map[int]int{}}
		for _, p := range s.Ports {
			hp, err := freeLoopbackPort()
			if err != nil {
				return nil, err
			}
			n.ports[p] = hp
		}
		out = append(out, n)
	}
	return out, nil
}

// freeLoopbackPort returns a TCP port free on 127.0.0.1 right now.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("lab: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// qemuArgs renders one user-mode network and its virtio card.
func (n hostNIC) qemuArgs(id int) []string {
	netdev := fmt.Sprintf("user,id=hostnic%d,net=%s,host=172.30.0.2,restrict=on", id, hostNICNet)
	for _, p := range n.Ports {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:%d", n.ports[p], HostNICAddr, p)
	}
	return []string{"-netdev", netdev, "-device", fmt.Sprintf("virtio-net-pci,netdev=hostnic%d,mac=%s", id, n.mac)}
}

// moveHostNICs moves each card into its node's namespace; Build runs it.
func (l *Lab) moveHostNICs(ctx context.Context, topo Topology) error {
	var b strings.Builder
	for i, n := range l.hostNICs {
		// Renamed before the move: the kernel named it like the node's
		// own eth0.
		fmt.Fprintf(&b, `dev=$(grep -lx %[1]s /sys/class/net/*/address | cut -d/ -f5)
[ -n "$dev" ] || { echo "no card with MAC %[1]s" >&2; exit 1; }
ip link set dev "$dev" name hostnic%[5]d
ip link set dev hostnic%[5]d netns %[2]s
ip -n %[2]s link set dev hostnic%[5]d name %[3]s
ip -n %[2]s addr add %[4]s/24 dev %[3]s
ip -n %[2]s link set dev %[3]s up
`, n.mac, topo.NS(n.Node), HostNICName, HostNICAddr, i)
	}
	if b.Len() == 0 {
		return nil
	}
	if _, err := l.Run(ctx, "set -e\n"+b.String()); err != nil {
		return fmt.Errorf("lab: host NICs: %w", err)
	}
	return nil
}

// HostAddr is the host's address (on its loopback) forwarded to port of
// node's HostNIC.
func (l *Lab) HostAddr(node string, port int) (netip.AddrPort, error) {
	for _, n := range l.hostNICs {
		if hp, ok := n.ports[port]; ok && n.Node == node {
			return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(hp)), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("lab: no host forward to %s port %d", node, port)
}
