// Package lab runs dmvpnd's end-to-end scenarios on a real Linux dataplane.
//
// The development and CI machines' kernels lack ip_gre and esp4, so by
// default a lab is a qemu guest (TCG; KVM only when asked for) booting the
// Debian kernel that e2e/scripts/deps.sh unpacks into .cache/kernel. The
// guest's root is the host's / shared read-only over 9p under a tmpfs
// overlay, so every host program (the project's binaries, strongSwan, FRR,
// iproute2, tcpdump) is there, and nothing the guest does survives it. A
// second, writable 9p share is the run's results directory, mounted at the
// same path in the guest: logs, pcaps, dumps and the guest console land
// there and paths mean the same on both sides. Commands reach the guest
// through a small agent (e2e/lab/agent) on a virtio-serial port; the guest
// has no network card, except the Options.HostNICs a scenario asks for: a
// restricted qemu user-mode card per node, moved into the node as mgmt0,
// through which a program on the host reaches the node's TCP ports
// (Lab.HostAddr; TestAnsibleRollout's SSH). The guest boots the kernel's uncompressed vmlinux
// through its PVH entry with qboot firmware (cached in .cache/lab/ with the
// initramfs, both keyed by content hash), loads DefaultModules and warms up
// the ESP crypto before New returns.
//
// On a host whose own kernel has ip_gre and esp4 and where the tests run as
// root, the same API runs in network namespaces directly on the host
// (native mode): no VM, faster. DMVPND_LAB=vm|native forces either.
//
// Lab tests skip unless DMVPND_LAB_TESTS=1.
//
// # Using it
//
//	func TestX(t *testing.T) {
//		l := lab.New(t, lab.Options{})            // boots; cleaned up with t
//		l.Build(lab.Topology{Nodes: []lab.NodeSpec{
//			{Name: "hub", NBMA: netip.MustParseAddr("198.51.100.1")},
//			{Name: "s1", NBMA: netip.MustParseAddr("198.51.100.2"),
//				LANs: []netip.Prefix{netip.MustParsePrefix("10.1.1.1/24")}},
//		}})
//		hub := l.Node("hub")
//		hub.MustRun("ip tunnel add gre1 mode gre key 42 ttl 64 local 198.51.100.1")
//		d, err := hub.Start(ctx, "dmvpnd", "/path/to/dmvpnd --config ...") // log in DIR/nodes/hub/dmvpnd.log
//		c := hub.MustStartCharon(lab.CharonConfig{Swanctl: conf})      // own vici socket: c.Socket
//		pcap, _ := l.Node("inet").Capture(ctx, "s1", "underlay")      // bridge port of s1
//		err = hub.Ping(ctx, netip.MustParseAddr("10.0.0.2"), 3)
//		...
//	}
//
// Every call takes a context (its deadline becomes the command's timeout
// in the guest) or, for the Must* helpers, is bounded by
// Options.StepTimeout and fails the test. Exec returns a command's result
// whatever its exit status; Run turns a non-zero exit into a *CommandError.
//
// The topology: the underlay is a bridge named "inet" inside its own
// namespace "inet" (the lab's root namespace is never configured); every
// node is a namespace whose eth0 is a veth into that bridge, the bridge
// port carrying the node's name. A node may sit behind a NAT router
// namespace (masquerade on the router's eth0); LAN prefixes are dummy
// interfaces lan0, lan1, .... Topology.Plan renders the exact shell
// commands (see testdata/plan.txt).
//
// Per-node daemons: Node.Start runs any command detached with its output in
// DIR/nodes/NODE/NAME.log; Node.StartCharon runs a charon with its own
// strongswan.conf (install_routes = no, bypass-lan off), vici socket and
// /run; Node.StartFRR runs FRR daemons with pathspace -N NS. Lab.GoTest runs
// another package's compiled test binary in the lab as root with
// DMVPND_PRIVILEGED=1. Every command is logged with its duration and exit
// status in DIR/commands.log. When a test fails, Lab.Dump writes each namespace's
// links, addresses, routes, neighbours, XFRM state and policies to
// DIR/dump/ and the paths are logged.
package lab
