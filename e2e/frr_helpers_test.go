package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// Interop scenarios with FRR's nhrpd (issue 10). The topology is the one
// dmvpnLab builds: hub 198.51.100.1 / 10.0.0.1, spoke i 198.51.100.(1+i)
// / 10.0.0.(1+i) with LAN 10.1.i.1/24, mGRE key 42. Each node runs either
// dmvpnd or FRR (zebra + nhrpd in the node's namespace, pathspace -N).

// Node kinds for frrLab.
const (
	frrKindDMVPND = "dmvpnd"
	frrKindFRR    = "frr"
)

// frrNFLOGGroup is the NFLOG group of an FRR hub's hairpin rule.
const frrNFLOGGroup = 1

// frrNode is one node running FRR.
type frrNode struct {
	name    string
	nbma    netip.Addr
	tunnel  netip.Addr
	lan     netip.Prefix
	hub     bool
	hubNBMA netip.Addr
	node    *lab.Node
	frr     *lab.FRR
	charon  *lab.Charon // strongSwan alone (trap mode), when the lab uses IPsec
}

// nhrpdConf renders the node's nhrpd.conf: the hub redirects (Phase 3
// traffic indications from the NFLOG group), spokes register with the
// hub as a dynamic NHS and act on traffic indications.
func (f *frrNode) nhrpdConf() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname %s\nlog stdout debugging\ndebug nhrp common\ndebug nhrp event\ndebug nhrp kernel\n", f.name)
	if f.hub {
		fmt.Fprintf(&b, "nhrp nflog-group %d\n", frrNFLOGGroup)
	}
	b.WriteString("!\ninterface gre1\n ip nhrp network-id 1\n ip nhrp holdtime 300\n ip nhrp registration no-unique\n")
	if f.hub {
		b.WriteString(" ip nhrp redirect\n")
	} else {
		fmt.Fprintf(&b, " ip nhrp nhs dynamic nbma %s\n ip nhrp shortcut\n", f.hubNBMA)
	}
	b.WriteString(" tunnel source eth0\nexit\n")
	return b.String()
}

// setup creates the mGRE tunnel the way FRR expects it (bound to eth0,
// the tunnel address as a /32) and the sysctls FRR documents; on the
// hub also the hairpin NFLOG rule (with queue threshold 1, so the
// traffic indication leaves at once). With IPsec (f.charon set) packets
// waiting for a trap-mode SA are queued.
func (f *frrNode) setup(ctx context.Context) error {
	script := fmt.Sprintf(`set -e
ip tunnel add gre1 mode gre key 42 ttl 64 local %[1]s dev eth0
ip addr add %[2]s/32 dev gre1
ip link set gre1 up
sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 net.ipv4.conf.gre1.send_redirects=0 net.ipv4.ip_forward_use_pmtu=1
`, f.nbma, f.tunnel)
	if f.charon != nil {
		// Hold, not drop, a packet that hits a trap policy until its SA
		// is up: FRR does not retransmit resolution requests, and its
		// resolution reply sent straight to a peer it has just learnt
		// (no SA yet) would otherwise be lost, leaving the requester's
		// shortcut pending.
		script += "sysctl -qw net.core.xfrm_larval_drop=0\n"
	}
	if f.hub {
		script += fmt.Sprintf("iptables -A FORWARD -i gre1 -o gre1 -m hashlimit --hashlimit-upto 4/minute --hashlimit-burst 1 "+
			"--hashlimit-mode srcip,dstip --hashlimit-srcmask 24 --hashlimit-dstmask 24 --hashlimit-name l0 "+
			"-j NFLOG --nflog-group %d --nflog-size 128 --nflog-threshold 1\n", frrNFLOGGroup)
	}
	if _, err := f.node.Run(ctx, script); err != nil {
		return fmt.Errorf("%s: FRR tunnel setup: %w", f.name, err)
	}
	return nil
}

// start starts zebra and nhrpd.
func (f *frrNode) start(ctx context.Context) error {
	fr, err := f.node.StartFRR(ctx, map[string]string{
		"zebra": fmt.Sprintf("hostname %s\nlog stdout informational\n", f.name),
		"nhrpd": f.nhrpdConf(),
	})
	if err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	f.frr = fr
	return nil
}

// vtysh runs one vtysh command on the node.
func (f *frrNode) vtysh(ctx context.Context, cmd string) (string, error) {
	res, err := f.frr.Vtysh(ctx, cmd)
	if err != nil {
		return "", fmt.Errorf("%s: vtysh %q: %w", f.name, cmd, err)
	}
	return string(res.Stdout), nil
}

// frrSite is one node of an interop lab, run by dmvpnd (d) or FRR (f).
type frrSite struct {
	name   string
	kind   string
	nbma   netip.Addr
	tunnel netip.Addr
	lan    netip.Prefix
	node   *lab.Node
	d      *dnode
	f      *frrNode
	charon *lab.Charon // the site's charon, when the lab uses IPsec
}

// frrLab is a lab whose first site is the hub.
type frrLab struct {
	t     *testing.T
	l     *lab.Lab
	sites []*frrSite
	// ipsec protects every node's GRE: FRR nodes by a charon of their own
	// with trap policies (FRR is not involved), dmvpnd nodes by their
	// charon driven by dmvpnd over VICI. Set before start.
	ipsec bool
}

// frrLabPSK is the IKE pre-shared key of every node.
const frrLabPSK = "frr-interop-lab-psk-5d41402abc4b2a76"

// The FRR nodes' proposals; the dmvpnd nodes of the same cloud pin the same
// ones (dmvpnd's own defaults, charon-aware with PFS, do not include them).
const (
	frrIKEProposal = "aes256gcm16-prfsha256-ecp256"
	frrESPProposal = "aes256gcm16"
)

// frrSwanctl is an FRR node's swanctl.conf: strongSwan alone protects GRE
// with an IKEv2 transport-mode SA to whoever it talks to, negotiated on
// the first packet (start_action = trap, remote %any: charon initiates to
// the acquired packet's destination) or accepted from any peer.
func frrSwanctl(nbma netip.Addr) string {
	return swanctlPSK(swanctlConn{name: "dmvpn", local: nbma, remote: "%any", trap: true}, frrLabPSK)
}

// newFRRLab boots a lab and builds the hub-and-spoke topology; kinds
// gives each node's implementation, the hub's first. Nothing is started.
func newFRRLab(t *testing.T, kinds ...string) *frrLab {
	t.Helper()
	l := lab.New(t, lab.Options{}) // skips unless DMVPND_LAB_TESTS=1
	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	il, topo := frrLabSites(t, l, bin, kinds...)
	l.Build(topo)
	il.attach()
	return il
}

// frrLabSites describes the sites of kinds (the hub's first) on l, with
// dmvpnd and dmvpnctl from bin, and the topology they need; attach binds
// them to the built nodes. A lab that builds the topology once can run
// several clouds on it in turn (make bench-lab).
func frrLabSites(t *testing.T, l *lab.Lab, bin string, kinds ...string) (*frrLab, lab.Topology) {
	t.Helper()
	il := &frrLab{t: t, l: l}
	var topo lab.Topology
	hubNBMA := netip.AddrFrom4([4]byte{198, 51, 100, 1})
	for i, kind := range kinds {
		s := &frrSite{
			name:   "hub",
			kind:   kind,
			nbma:   netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}),
			tunnel: netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i)}),
			lan:    netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), 1}), 24),
		}
		if i > 0 {
			s.name = fmt.Sprintf("s%d", i)
		}
		switch kind {
		case frrKindDMVPND:
			s.d = &dnode{
				name: s.name, nbma: s.nbma, tunnel: s.tunnel, lan: s.lan, hub: i == 0,
				bin: bin, dir: l.Scratch() + "/dmvpnd/" + s.name,
				nhsYAML: fmt.Sprintf("    - {nbma: %s, protocol: 10.0.0.1}\n", hubNBMA),
			}
		case frrKindFRR:
			s.f = &frrNode{name: s.name, nbma: s.nbma, tunnel: s.tunnel, lan: s.lan, hub: i == 0, hubNBMA: hubNBMA}
		default:
			t.Fatalf("unknown node kind %q", kind)
		}
		il.sites = append(il.sites, s)
		topo.Nodes = append(topo.Nodes, lab.NodeSpec{Name: s.name, NBMA: s.nbma, LANs: []netip.Prefix{s.lan}})
	}
	return il, topo
}

// attach binds the sites to the lab's built nodes.
func (il *frrLab) attach() {
	for _, s := range il.sites {
		s.node = il.l.Node(s.name)
		if s.d != nil {
			s.d.node = s.node
			s.node.MustRun("sysctl -qw net.ipv4.ip_forward=1")
		} else {
			s.f.node = s.node
		}
	}
}

func (il *frrLab) hub() *frrSite      { return il.sites[0] }
func (il *frrLab) spokes() []*frrSite { return il.sites[1:] }

// start starts every node (FRR's tunnels first, then the daemons), waits
// until every spoke is registered as the hub sees it, and installs the
// static routing of a Phase 3 cloud: spokes send 10.1.0.0/16 (FRR spokes
// also the tunnel subnet) to the hub, the hub routes each spoke's LAN to
// its tunnel address.
func (il *frrLab) start(ctx context.Context) {
	t := il.t
	t.Helper()
	t0 := time.Now()
	// The hub first, so that the spokes' first registrations find it;
	// then every spoke at once (each launch is a few commands in the
	// guest, slow under emulation).
	hub := il.hub()
	if il.ipsec {
		// The first ESP state after boot waits seconds for the kernel to
		// load the crypto modules: do it once outside the timed part.
		il.l.MustRun("ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode transport " +
			"aead 'rfc4106(gcm(aes))' 0x" + strings.Repeat("ab", 36) + " 128 && ip xfrm state flush")
	}
	if err := il.launch(ctx, hub); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, len(il.sites))
	var wg sync.WaitGroup
	for i, s := range il.spokes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = il.launch(ctx, s)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: daemons started %v", time.Since(t0).Round(time.Millisecond))
	if err := il.waitRegistered(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, s := range il.spokes() {
		if s.d != nil {
			s.d.waitReady(t, 60*time.Second)
		}
	}
	t.Logf("timing: all spokes registered %v after start", time.Since(t0).Round(time.Millisecond))
	var hubRoutes []string
	for _, s := range il.spokes() {
		cmd := "ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink"
		if s.f != nil {
			// FRR's tunnel address is a /32. nhrpd answers a resolution
			// request only when the requester's protocol address routes
			// over the NHRP interface (as a routing protocol would
			// advertise the tunnel subnet from the hub).
			cmd += " && ip route replace 10.0.0.0/24 via 10.0.0.1 dev gre1 onlink"
		}
		s.node.MustRun(cmd)
		hubRoutes = append(hubRoutes, fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}
	hub.node.MustRun(strings.Join(hubRoutes, " && "))
}

// launch starts one site's daemons: FRR's tunnel, zebra and nhrpd, or
// dmvpnd (which creates its tunnel itself). A dmvpnd hub is waited for.
func (il *frrLab) launch(ctx context.Context, s *frrSite) error {
	var charon *lab.Charon
	if il.ipsec {
		cfg := lab.CharonConfig{}
		if s.f != nil {
			cfg.Swanctl = frrSwanctl(s.nbma)
		}
		c, err := s.node.StartCharon(ctx, cfg)
		if err != nil {
			return err
		}
		if s.f != nil {
			if _, err := c.Swanctl(ctx, "--load-all"); err != nil {
				return fmt.Errorf("%s: swanctl --load-all: %w", s.name, err)
			}
		}
		charon, s.charon = c, c
	}
	if s.f != nil {
		s.f.charon = charon
		if err := s.f.setup(ctx); err != nil {
			return err
		}
		return s.f.start(ctx)
	}
	d := s.d
	if charon != nil {
		d.extra = fmt.Sprintf("ipsec: {enabled: true, vici_socket: %s, auth: {method: psk, psk: %q}, proposals: {ike: [%s], esp: [%s]}}\n",
			charon.Socket, frrLabPSK, frrIKEProposal, frrESPProposal)
	}
	if err := d.launch(ctx, il.l, d.config()); err != nil {
		return err
	}
	if d.hub {
		if _, err := d.ctl(ctx, "status --wait --timeout 60s"); err != nil {
			return fmt.Errorf("%s not ready: %w", d.name, err)
		}
	}
	return nil
}

// variants runs body as subtest plain, then as subtest ipsec (il.ipsec
// set), on the lab's one boot, the sites started by body and reset in
// between; each variant's dmvpnd logs are named after it. After a failed
// variant the other does not run: its state stays for the lab's dump.
func (il *frrLab) variants(t *testing.T, body func(*testing.T, *frrLab)) {
	t.Helper()
	for i, v := range []struct {
		name  string
		ipsec bool
	}{{"plain", false}, {"ipsec", true}} {
		saved := map[*dnode]dnode{}
		for _, s := range il.sites {
			if s.d != nil {
				saved[s.d] = *s.d
				s.d.variant = v.name
			}
		}
		if !t.Run(v.name, func(t *testing.T) {
			il.t, il.ipsec = t, v.ipsec
			body(t, il)
		}) {
			return
		}
		il.t = t
		if i == 1 {
			return // the last: nothing to start after it
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := il.reset(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after variant %s: %v", v.name, err)
		}
		for d, was := range saved {
			*d = was
		}
	}
}

// reset stops every site's daemons and charon and removes each site's
// gre1 (with its routes and neighbours), XFRM states and policies and
// FORWARD rules (the FRR hub's hairpin trigger), and restores the
// larval-drop default, so the sites can start again on the same boot.
func (il *frrLab) reset(ctx context.Context) error {
	var errs []error
	for _, s := range il.sites {
		if s.f != nil && s.f.frr != nil {
			for _, p := range s.f.frr.Procs {
				errs = append(errs, p.Stop(ctx))
			}
			s.f.frr, s.f.charon = nil, nil
		}
		if s.d != nil && s.d.proc != nil {
			errs = append(errs, s.d.proc.Stop(ctx))
		}
		if s.charon != nil {
			errs = append(errs, s.charon.Proc.Stop(ctx))
			s.charon = nil
		}
	}
	for _, s := range il.sites {
		_, err := s.node.Run(ctx, "{ ! ip link show gre1 >/dev/null 2>&1 || ip link del gre1; } && ip xfrm state flush && ip xfrm policy flush && "+
			"iptables -F FORWARD && sysctl -qw net.core.xfrm_larval_drop=1")
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitRegistered waits until the hub knows every spoke: a dmvpnd hub
// lists it in show dmvpn, an FRR hub has programmed the spoke's kernel
// neighbour entry (tunnel address -> NBMA), which nhrpd does on
// registration.
func (il *frrLab) waitRegistered(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hub := il.hub()
	var missing []string
	err := lab.WaitFor(ctx, 300*time.Millisecond, func(ctx context.Context) error {
		missing = missing[:0]
		if hub.d != nil {
			v, err := hub.d.showDMVPN(ctx)
			if err != nil {
				return err
			}
			for _, s := range il.spokes() {
				if !slices.ContainsFunc(v.Peers, func(p api.Peer) bool { return p.Tunnel == s.tunnel && p.NBMA == s.nbma }) {
					missing = append(missing, s.name)
				}
			}
		} else {
			res, err := hub.node.Run(ctx, "ip -4 neigh show dev gre1")
			if err != nil {
				return err
			}
			for _, s := range il.spokes() {
				if !strings.Contains(string(res.Stdout), fmt.Sprintf("%s lladdr %s ", s.tunnel, s.nbma)) {
					missing = append(missing, s.name)
				}
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("hub (%s) has not registered %v", hub.kind, missing)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registration: %w", err)
	}
	return nil
}

// lanPing pings dst's LAN address from src's LAN address.
func frrLANPing(src, dst *frrSite, count int, interval string) string {
	return fmt.Sprintf("ping -n -q -c %d -i %s -W 2 -I %s %s", count, interval, src.lan.Addr(), dst.lan.Addr())
}

// frrHasShortcut reports whether s's kernel routes hold the shortcut route to
// dst's LAN via dst's tunnel address: proto 157 for dmvpnd, proto nhrp
// (191) for FRR.
func frrHasShortcut(ctx context.Context, s, dst *frrSite) (bool, string, error) {
	proto := "157"
	if s.f != nil {
		proto = "nhrp"
	}
	res, err := s.node.Run(ctx, "ip -4 route show proto "+proto)
	if err != nil {
		return false, "", err
	}
	out := string(res.Stdout)
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "via "+dst.tunnel.String()+" ") {
			continue
		}
		if strings.HasPrefix(line, dst.lan.Masked().String()+" ") {
			return true, out, nil
		}
		// dmvpnd binds only the target host when the responder answered
		// straight to it instead of through the hub (FRR does when it
		// already holds the requester): nothing vouched for its prefix.
		if f := strings.Fields(line); s.d != nil && len(f) > 0 {
			if a, err := netip.ParseAddr(f[0]); err == nil && dst.lan.Contains(a) {
				return true, out, nil
			}
		}
	}
	return false, out, nil
}

// waitShortcuts sends LAN-to-LAN pings from src to dst through the hub
// until each of want (pairs [from, to]) has its shortcut route, within
// timeout. It returns how long that took from the first packet.
func (il *frrLab) waitShortcuts(ctx context.Context, src, dst *frrSite, timeout time.Duration, want ...[2]*frrSite) (time.Duration, error) {
	t0 := time.Now()
	// The first packets go through the hub and trigger its redirect.
	if _, err := src.node.Run(ctx, frrLANPing(src, dst, 3, "0.2")); err != nil {
		return 0, fmt.Errorf("%s LAN -> %s LAN through the hub: %w", src.name, dst.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	err := lab.WaitFor(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		for _, w := range want {
			ok, routes, err := frrHasShortcut(ctx, w[0], w[1])
			if err != nil {
				return err
			}
			if !ok {
				last = fmt.Sprintf("%s has no shortcut to %s (%s via %s); routes:\n%s", w[0].name, w[1].name, w[1].lan.Masked(), w[1].tunnel, routes)
				// Keep the flow alive: shortcut state follows traffic.
				_, _ = src.node.Exec(ctx, frrLANPing(src, dst, 1, "0.2"))
				return fmt.Errorf("%s", last)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("shortcut: %s: %w", last, err)
	}
	return time.Since(t0), nil
}

// checkDirect proves the flow src -> dst goes over the shortcut: 20 echo
// requests and their replies, while the hub's tunnel receive counter
// grows by fewer than 10 packets (NHRP refreshes may add a few).
func (il *frrLab) checkDirect(ctx context.Context, src, dst *frrSite) error {
	hub := il.hub()
	before, err := frrRxPackets(ctx, hub.node)
	if err != nil {
		return err
	}
	if _, err := src.node.Run(ctx, frrLANPing(src, dst, 20, "0.05")); err != nil {
		return fmt.Errorf("%s LAN -> %s LAN over the shortcut: %w", src.name, dst.name, err)
	}
	after, err := frrRxPackets(ctx, hub.node)
	if err != nil {
		return err
	}
	if after-before >= 10 {
		return fmt.Errorf("hub gre1 received %d packets during 20 pings %s -> %s over the shortcut: traffic still goes through the hub", after-before, src.name, dst.name)
	}
	return nil
}

// frrRxPackets reads gre1's receive packet counter in n's namespace.
func frrRxPackets(ctx context.Context, n *lab.Node) (int, error) {
	res, err := n.Run(ctx, "cat /sys/class/net/gre1/statistics/rx_packets")
	if err != nil {
		return 0, err
	}
	var v int
	_, err = fmt.Sscanf(strings.TrimSpace(string(res.Stdout)), "%d", &v)
	return v, err
}

// frrLineWith reports whether one line of out contains every field.
func frrLineWith(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		all := true
		for _, f := range fields {
			if !slices.Contains(words, f) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// frrCapture is a full-size tcpdump on the underlay bridge (the lab's
// Capture truncates to 256 octets; NHRP decoding needs whole packets).
type frrCapture struct {
	proc *lab.Proc
	path string
}

// frrStartCapture captures everything crossing the underlay bridge
// into DIR/pcap/NAME.pcap.
func frrStartCapture(ctx context.Context, l *lab.Lab, name string) (*frrCapture, error) {
	topo := l.Topology()
	path := filepath.Join(l.Dir(), "pcap", name+".pcap")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	p, err := l.Node(topo.Switch).Start(ctx, "tcpdump-"+name, fmt.Sprintf("tcpdump -n -U -s 0 -i %s -w %s", topo.Switch, path))
	if err != nil {
		return nil, err
	}
	// The log is in the results directory, the same path on this side.
	err = lab.WaitFor(ctx, 100*time.Millisecond, func(context.Context) error {
		b, _ := os.ReadFile(p.Log)
		if !strings.Contains(string(b), "listening on") {
			return fmt.Errorf("tcpdump not listening yet: %q", b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", name, err)
	}
	return &frrCapture{proc: p, path: path}, nil
}

// stop ends the capture (tcpdump flushes on SIGTERM).
func (c *frrCapture) stop(ctx context.Context) error { return c.proc.Stop(ctx) }

// frrNHRPTypeNames are Wireshark's names of the NHRP packet types.
var frrNHRPTypeNames = map[string]string{
	"1": "resolution-request", "2": "resolution-reply", "3": "registration-request",
	"4": "registration-reply", "5": "purge-request", "6": "purge-reply",
	"7": "error-indication", "8": "traffic-indication",
}

// frrDecodeCheck stops the capture and checks that both tshark and
// `dmvpnctl nhrp decode` decode every NHRP packet in it: no malformed
// packet or expert error in tshark, no record with a decode error or
// truncation in dmvpnctl, the same number of NHRP packets in both, and
// every type in want present. It returns the per-type counts.
func frrDecodeCheck(ctx context.Context, c *frrCapture, want ...string) (map[string]int, error) {
	if err := c.stop(ctx); err != nil {
		return nil, err
	}
	tshark := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "tshark", append([]string{"-r", c.path}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("tshark %v: %w: %s", args, err, stderr.String())
		}
		return string(out), nil
	}
	bad, err := tshark("-Y", "nhrp && (_ws.malformed || _ws.expert.severity >= 0x00800000)", "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Info", "-e", "_ws.expert.message")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(bad) != "" {
		return nil, fmt.Errorf("tshark: malformed or expert errors in %s:\n%s", c.path, bad)
	}
	types, err := tshark("-Y", "nhrp", "-T", "fields", "-e", "nhrp.hdr.op.type")
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	total := 0
	for _, ty := range strings.Fields(types) {
		name := frrNHRPTypeNames[ty]
		if name == "" {
			name = "type-" + ty
		}
		counts[name]++
		total++
	}
	for _, w := range want {
		if counts[w] == 0 {
			return counts, fmt.Errorf("tshark: no %s in %s (counts %v)", w, c.path, counts)
		}
	}

	bin, err := binaries()
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin+"/dmvpnctl", "nhrp", "decode", "--json", c.path).Output()
	if err != nil {
		return nil, fmt.Errorf("dmvpnctl nhrp decode %s: %w", c.path, err)
	}
	var recs []struct {
		Frame     int             `json:"frame"`
		Truncated bool            `json:"capture_truncated"`
		Error     json.RawMessage `json:"error"`
		Packet    *struct {
			Type string `json:"type"`
		} `json:"packet"`
	}
	if err := json.Unmarshal(out, &recs); err != nil {
		return nil, fmt.Errorf("dmvpnctl nhrp decode --json: %w", err)
	}
	for _, r := range recs {
		if r.Error != nil || r.Truncated || r.Packet == nil {
			return nil, fmt.Errorf("dmvpnctl nhrp decode: frame %d does not decode cleanly: error %s truncated %v", r.Frame, r.Error, r.Truncated)
		}
	}
	if len(recs) != total {
		return nil, fmt.Errorf("dmvpnctl nhrp decode found %d NHRP packets, tshark %d", len(recs), total)
	}
	return counts, nil
}
