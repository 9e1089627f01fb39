package e2e

// Helpers for the redundancy, churn and NAT scenarios (issue 9, scenarios
// 4-6). Names start with "sc" so they do not collide with other scenario
// helpers of this package.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// scSpec is one dmvpnd node of a scenario topology.
type scSpec struct {
	name   string
	nbma   string // eth0 address (inside the NAT when behind is set)
	tunnel string // tunnel address (the tunnel prefix is /24)
	lan    string // LAN interface address with prefix length, or ""
	hub    bool
	behind *lab.NAT
}

// scLab boots a lab, builds the topology of specs and returns the nodes
// by name (not started). On failure the tail of every dmvpnd log is
// printed, after the lab's own dump list.
func scLab(t *testing.T, specs ...scSpec) (*lab.Lab, map[string]*dnode) {
	t.Helper()
	l, order := scBuild(t, specs)
	nodes := map[string]*dnode{}
	for _, d := range order {
		nodes[d.name] = d
	}
	return l, nodes
}

// scBuild is scLab returning the nodes in the order of specs; extra are
// namespaces on the same underlay that run no dmvpnd (an outsider, say).
func scBuild(t *testing.T, specs []scSpec, extra ...lab.NodeSpec) (*lab.Lab, []*dnode) {
	t.Helper()
	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	l := lab.New(t, lab.Options{})
	var topo lab.Topology
	var order []*dnode
	for _, s := range specs {
		d := &dnode{
			name:   s.name,
			nbma:   netip.MustParseAddr(s.nbma),
			tunnel: netip.MustParseAddr(s.tunnel),
			hub:    s.hub,
			bin:    bin,
			dir:    l.Scratch() + "/dmvpnd/" + s.name,
		}
		ns := lab.NodeSpec{Name: s.name, NBMA: d.nbma, Behind: s.behind}
		if s.lan != "" {
			d.lan = netip.MustParsePrefix(s.lan)
			ns.LANs = []netip.Prefix{d.lan}
		}
		order = append(order, d)
		topo.Nodes = append(topo.Nodes, ns)
	}
	topo.Nodes = append(topo.Nodes, extra...)
	l.Build(topo)
	for _, d := range order {
		d.node = l.Node(d.name)
		d.node.MustRun("sysctl -qw net.ipv4.ip_forward=1")
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range order {
				scLogTail(t, d, 40)
			}
		}
	})
	return l, order
}

// scLogTail logs the last n lines of a node's dmvpnd log.
func scLogTail(t *testing.T, d *dnode, n int) {
	t.Helper()
	if d.proc == nil {
		return
	}
	b, err := os.ReadFile(d.proc.Log)
	if err != nil {
		t.Logf("%s: dmvpnd log: %v", d.name, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("%s: last lines of %s:\n%s", d.name, d.proc.Log, strings.Join(lines, "\n"))
}

// scConfig renders a dmvpnd.yaml with the given nhrp block (YAML lines
// indented by two spaces, without the "nhrp:" line).
func scConfig(d *dnode, nhrp string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "tunnel: {name: gre1, key: 42, local_nbma: %s, address: %s/24}\n", d.nbma, d.tunnel)
	b.WriteString("nhrp:\n" + nhrp)
	fmt.Fprintf(&b, "control: {socket: %s}\nmetrics: {listen: \"\"}\nlog: {level: debug}\n", d.socket())
	b.WriteString(d.extra)
	return b.String()
}

// scHubNHRP is a hub's nhrp block; redirect enables Phase 3.
func scHubNHRP(holding string, redirect bool) string {
	return fmt.Sprintf("  role: hub\n  network_id: 1\n  holding_time: %s\n  redirect: %t\n", holding, redirect)
}

// scNHS is one NHS of a spoke.
type scNHS struct {
	hub      *dnode
	priority int
}

// scSpokeNHRP is a spoke's nhrp block.
func scSpokeNHRP(holding string, shortcut bool, registration string, nhss ...scNHS) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  role: spoke\n  network_id: 1\n  holding_time: %s\n  shortcut: %t\n", holding, shortcut)
	if registration != "" {
		fmt.Fprintf(&b, "  registration: %s\n", registration)
	}
	b.WriteString("  nhs:\n")
	for _, n := range nhss {
		fmt.Fprintf(&b, "    - {nbma: %s, protocol: %s, priority: %d}\n", n.hub.nbma, n.hub.tunnel, n.priority)
	}
	return b.String()
}

// scStart writes cfg as the node's dmvpnd.yaml and starts dmvpnd.
func scStart(t *testing.T, l *lab.Lab, d *dnode, cfg string) {
	t.Helper()
	d.startWith(t, l, cfg)
}

// scStop stops a node's dmvpnd (SIGTERM, then SIGKILL after 5 s).
func scStop(t *testing.T, d *dnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.proc.Stop(ctx); err != nil {
		t.Fatalf("%s: stop dmvpnd: %v", d.name, err)
	}
}

// scNHSList returns a spoke's show nhrp nhs view.
func scNHSList(ctx context.Context, d *dnode) ([]api.NHS, error) {
	return ctlJSON[[]api.NHS](ctx, d, "show nhrp nhs")
}

// scNHSStates renders "nbma=state" for every NHS, for messages.
func scNHSStates(v []api.NHS) string {
	parts := make([]string, 0, len(v))
	for _, n := range v {
		s := fmt.Sprintf("%s=%s", n.NBMA, n.State)
		if n.Reason != "" {
			s += " (" + n.Reason + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// scWaitNHS waits until every NHS named in want has the wanted state
// (responding or not) on spoke d; it returns the last view.
func scWaitNHS(ctx context.Context, d *dnode, timeout time.Duration, want map[netip.Addr]bool) ([]api.NHS, error) {
	last, err := ctlWait(ctx, d, timeout, "show nhrp nhs", func(v []api.NHS) error {
		for nbma, up := range want {
			i := slices.IndexFunc(v, func(n api.NHS) bool { return n.NBMA == nbma })
			if i < 0 {
				return lab.Permanent(fmt.Errorf("%s: NHS %s not configured: %s", d.name, nbma, scNHSStates(v)))
			}
			if (v[i].State == api.NHSResponding) != up {
				return fmt.Errorf("%s: NHS %s is %s, want responding=%t", d.name, nbma, v[i].State, up)
			}
		}
		return nil
	})
	if err != nil {
		return last, fmt.Errorf("%w; NHSs: %s", err, scNHSStates(last))
	}
	return last, nil
}

// scCache returns a node's NHRP cache.
func scCache(ctx context.Context, d *dnode) ([]api.CacheEntry, error) {
	return ctlJSON[[]api.CacheEntry](ctx, d, "show nhrp cache")
}

// scPeerMap indexes a show dmvpn view's peers by tunnel address.
func scPeerMap(v api.DMVPN) map[netip.Addr]api.Peer {
	out := map[netip.Addr]api.Peer{}
	for _, p := range v.Peers {
		out[p.Tunnel] = p
	}
	return out
}

// scWaitPeers waits until the node's show dmvpn lists every tunnel address
// of want as UP with the given claimed NBMA; it returns the last view.
func scWaitPeers(ctx context.Context, d *dnode, timeout time.Duration, want map[netip.Addr]netip.Addr) (map[netip.Addr]api.Peer, error) {
	view, err := ctlWait(ctx, d, timeout, "show dmvpn", func(view api.DMVPN) error {
		v := scPeerMap(view)
		for tun, nbma := range want {
			p, ok := v[tun]
			switch {
			case !ok:
				return fmt.Errorf("%s: no peer %s", d.name, tun)
			case p.State != api.PeerUp || p.NBMA != nbma:
				return fmt.Errorf("%s: peer %s is %s at %s, want UP at %s", d.name, tun, p.State, p.NBMA, nbma)
			}
		}
		return nil
	})
	last := scPeerMap(view)
	if err != nil {
		return last, fmt.Errorf("%w; peers: %+v", err, last)
	}
	return last, nil
}

// scPingResult is one ping run: probes sent and answered, as ping's
// summary counts them, and its output for messages.
type scPingResult struct {
	sent, received int
	out            string
}

// lossless reports whether every one of count probes was sent and
// answered.
func (r scPingResult) lossless(count int) bool { return r.sent == count && r.received == count }

// scPing sends count probes 0.1 s apart (each given 2 s) from node d to
// dst, from source address src unless it is invalid (then the route's).
// The error is for a ping that did not run or printed no summary; losses
// are the result's (ping exits 0 as soon as one reply came back).
func scPing(ctx context.Context, d *dnode, src, dst netip.Addr, count int) (scPingResult, error) {
	from := ""
	if src.IsValid() {
		from = " -I " + src.String()
	}
	res, err := d.node.Exec(ctx, fmt.Sprintf("ping -n -q -c %d -i 0.1 -W 2%s %s", count, from, dst))
	if err != nil {
		return scPingResult{}, err
	}
	r := scPingResult{out: string(res.Stdout) + string(res.Stderr)}
	var ok bool
	if r.sent, r.received, ok = pingSummary(string(res.Stdout)); !ok {
		return r, fmt.Errorf("%s: ping %s: no summary (exit %d)\n%s", d.name, dst, res.Exit, r.out)
	}
	return r, nil
}

// scLANPing pings to from the node's LAN address, count probes, and fails
// unless every probe is answered.
func scLANPing(ctx context.Context, from *dnode, to netip.Addr, count int) error {
	r, err := scPing(ctx, from, from.lan.Addr(), to, count)
	if err != nil {
		return err
	}
	if !r.lossless(count) {
		return fmt.Errorf("%s: ping %s from %s: %d of %d answered\n%s", from.name, to, from.lan.Addr(), r.received, count, r.out)
	}
	return nil
}

// scNeighbors returns the node's gre1 neighbor entries: tunnel address ->
// lladdr (the GRE destination; invalid when the entry has none), and ip's
// raw output for messages.
func scNeighbors(ctx context.Context, d *dnode) (map[netip.Addr]netip.Addr, string, error) {
	res, err := d.node.Run(ctx, "ip -4 neigh show dev gre1")
	if err != nil {
		return nil, "", err
	}
	out := map[netip.Addr]netip.Addr{}
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		out[a] = netip.Addr{}
		if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
			out[a], _ = netip.ParseAddr(f[i+1])
		}
	}
	return out, string(res.Stdout), nil
}

// scPinger is a continuous ping (one probe every 100 ms) running in a
// node, logging one line per reply with its timestamp.
type scPinger struct {
	d        *dnode
	proc     *lab.Proc
	interval time.Duration
}

// scStartPinger starts ping from d's LAN address to dst until stopped.
func scStartPinger(ctx context.Context, d *dnode, name string, dst netip.Addr) (*scPinger, error) {
	cmd := fmt.Sprintf("stdbuf -oL ping -n -D -i 0.1 -W 1 -I %s %s", d.lan.Addr(), dst)
	p, err := d.node.Start(ctx, name, cmd)
	if err != nil {
		return nil, err
	}
	return &scPinger{d: d, proc: p, interval: 100 * time.Millisecond}, nil
}

// scReply is one echo reply: sequence number and arrival time.
type scReply struct {
	seq int
	at  time.Time
}

// replies parses the replies logged so far (duplicates dropped).
func (p *scPinger) replies() ([]scReply, error) {
	f, err := os.Open(p.proc.Log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []scReply
	seen := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		// [1700000000.123456] 64 bytes from 10.1.2.1: icmp_seq=12 ttl=63 time=1.23 ms
		if !strings.HasPrefix(line, "[") || !strings.Contains(line, "bytes from") {
			continue
		}
		end := strings.IndexByte(line, ']')
		i := strings.Index(line, "icmp_seq=")
		if end < 0 || i < 0 {
			continue
		}
		ts, err := strconv.ParseFloat(line[1:end], 64)
		if err != nil {
			continue
		}
		rest := line[i+len("icmp_seq="):]
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			rest = rest[:j]
		}
		seq, err := strconv.Atoi(rest)
		if err != nil || seen[seq] {
			continue
		}
		seen[seq] = true
		sec := int64(ts)
		out = append(out, scReply{seq: seq, at: time.Unix(sec, int64((ts-float64(sec))*1e9))})
	}
	return out, sc.Err()
}

// waitReplies waits until at least n replies arrived with sequence numbers
// above after, consecutively at the end of the log (no loss among them).
func (p *scPinger) waitReplies(ctx context.Context, timeout time.Duration, after, n int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return lab.WaitFor(ctx, 200*time.Millisecond, func(context.Context) error {
		rs, err := p.replies()
		if err != nil {
			return err
		}
		// Trailing run of consecutive sequence numbers above after.
		run := 0
		for i := len(rs) - 1; i >= 0 && rs[i].seq > after; i-- {
			run++
			if i == 0 || rs[i-1].seq != rs[i].seq-1 {
				break
			}
		}
		if run < n {
			last := 0
			if len(rs) > 0 {
				last = rs[len(rs)-1].seq
			}
			return fmt.Errorf("%s: %d consecutive replies after icmp_seq %d, want %d (last reply icmp_seq %d)", p.d.name, run, after, n, last)
		}
		return nil
	})
}

// lastSeq is the highest sequence number answered so far (0 if none).
func (p *scPinger) lastSeq() int {
	rs, err := p.replies()
	if err != nil || len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].seq
}

// stop ends ping with SIGINT and waits for it to exit.
func (p *scPinger) stop(ctx context.Context) error {
	if _, err := p.d.node.Exec(ctx, fmt.Sprintf("kill -INT %d", p.proc.PID)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return lab.WaitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		if p.proc.Alive(ctx) {
			return errors.New("ping still running")
		}
		return nil
	})
}

// scLoss summarises a continuous ping.
type scLoss struct {
	replies int
	lost    int           // sequence numbers without reply between the first and last reply
	maxRun  int           // longest run of consecutive lost probes
	window  time.Duration // longest gap between two replies minus one interval
	gapFrom int           // last sequence answered before that gap
}

func (l scLoss) String() string {
	return fmt.Sprintf("%d replies, %d lost, longest run %d probes after icmp_seq %d, loss window %v",
		l.replies, l.lost, l.maxRun, l.gapFrom, l.window.Round(time.Millisecond))
}

// loss computes the loss statistics from the replies.
func (p *scPinger) loss() (scLoss, error) {
	rs, err := p.replies()
	if err != nil {
		return scLoss{}, err
	}
	if len(rs) == 0 {
		return scLoss{}, fmt.Errorf("%s: ping got no reply at all (log %s)", p.d.name, p.proc.Log)
	}
	slices.SortFunc(rs, func(a, b scReply) int { return a.seq - b.seq })
	s := scLoss{replies: len(rs)}
	for i := 1; i < len(rs); i++ {
		missing := rs[i].seq - rs[i-1].seq - 1
		s.lost += missing
		if missing > s.maxRun {
			s.maxRun = missing
		}
		if gap := rs[i].at.Sub(rs[i-1].at) - p.interval; missing > 0 && gap > s.window {
			s.window, s.gapFrom = gap, rs[i-1].seq
		}
	}
	return s, nil
}

// scMS rounds a duration for reports.
func scMS(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// scRegistrationRTT reads, from the node's dmvpnd log, the time between
// the last "registration sent" to nbma and the "registered" state that
// followed it: the registration round trip as dmvpnd saw it, without the
// emulator's process start-up and dmvpnctl polling.
func scRegistrationRTT(t *testing.T, d *dnode, nbma netip.Addr) (time.Duration, bool) {
	t.Helper()
	b, err := os.ReadFile(d.proc.Log)
	if err != nil {
		t.Fatalf("%s: %v", d.name, err)
	}
	var sent, done time.Time
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			TS     time.Time `json:"ts"`
			Msg    string    `json:"msg"`
			NBMA   string    `json:"nbma"`
			Reason string    `json:"reason"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "nhs state" || e.NBMA != nbma.String() {
			continue
		}
		switch e.Reason {
		case "registration sent":
			sent, done = e.TS, time.Time{}
		case "registered":
			if done.IsZero() && !sent.IsZero() {
				done = e.TS
			}
		}
	}
	if sent.IsZero() || done.IsZero() {
		return 0, false
	}
	return done.Sub(sent), true
}

// scWaitDirect sends traffic from a's LAN to b's LAN until both have a
// Phase 3 shortcut to the other's LAN and their neighbor entries for each
// other point straight at the peer: a's at bNBMA, b's at aNBMA (the
// addresses GRE goes to, which depend on NAT and IPsec).
func scWaitDirect(ctx context.Context, a, b *dnode, bNBMA, aNBMA netip.Addr) error {
	type want struct {
		peer, nbma netip.Addr
		route      string
	}
	wants := map[*dnode]want{
		a: {b.tunnel, bNBMA, fmt.Sprintf("%s via %s", b.lan.Masked(), b.tunnel)},
		b: {a.tunnel, aNBMA, fmt.Sprintf("%s via %s", a.lan.Masked(), a.tunnel)},
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error // the last state seen, kept when the deadline cuts a command short
	err := lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) (err error) {
		defer func() {
			if err != nil && ctx.Err() == nil {
				last = err
			}
		}()
		_, _ = a.node.Exec(ctx, fmt.Sprintf("ping -n -q -c 3 -i 0.2 -W 1 -I %s %s", a.lan.Addr(), b.lan.Addr()))
		for _, s := range []*dnode{a, b} {
			w := wants[s]
			res, err := s.node.Run(ctx, "ip route show proto 157")
			if err != nil {
				return err
			}
			if !strings.Contains(string(res.Stdout), w.route) {
				return fmt.Errorf("%s: no shortcut %q; proto 157 routes:\n%s", s.name, w.route, res.Stdout)
			}
			neigh, raw, err := scNeighbors(ctx, s)
			if err != nil {
				return err
			}
			if neigh[w.peer] != w.nbma {
				return fmt.Errorf("%s: neighbor %s is %v, want %s (direct); gre1 neighbors:\n%s", s.name, w.peer, neigh[w.peer], w.nbma, raw)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w (last state: %v)", err, last)
	}
	return nil
}

// scNotViaHub pings a's LAN -> b's LAN 20 times and fails unless every
// probe is answered and the hub's gre1 received (almost) nothing meanwhile.
func scNotViaHub(ctx context.Context, hub, a, b *dnode) error {
	relayed, err := hubRelayed(ctx, hub, a, b, 20)
	if err != nil {
		return fmt.Errorf("LAN to LAN over the shortcut %s -> %s: %w", a.name, b.name, err)
	}
	// 20 requests would add 20 packets through the hub; NHRP refreshes may
	// add a few.
	if relayed >= 10 {
		return fmt.Errorf("hub gre1 received %d packets during 20 pings %s -> %s over the shortcut: traffic still goes through the hub", relayed, a.name, b.name)
	}
	return nil
}

// scAddBehind puts one more node behind an existing NAT router of the
// topology (the lab's NodeSpec.Behind gives each router one node): a veth
// pair router:ifname <-> node:eth0 with its own inside prefix, a default
// route via the router, and a LAN dummy. The router's masquerade on eth0
// covers it; traffic between two inside networks is routed, not NATed.
// The node is not part of the lab's dumps.
func scAddBehind(t *testing.T, l *lab.Lab, router, ifname string, inside netip.Prefix, d *dnode) {
	t.Helper()
	topo := l.Topology()
	rns, ns := topo.NS(router), topo.NS(d.name)
	l.MustRun(fmt.Sprintf(`set -e
ip netns add %[2]s
ip link add %[3]s netns %[1]s type veth peer name eth0 netns %[2]s
ip -n %[1]s addr add %[4]s dev %[3]s
ip -n %[1]s link set %[3]s up
ip -n %[2]s link set lo up
ip -n %[2]s addr add %[5]s/%[6]d dev eth0
ip -n %[2]s link set eth0 up
ip -n %[2]s route add default via %[7]s
ip -n %[2]s link add lan0 type dummy
ip -n %[2]s addr add %[8]s dev lan0
ip -n %[2]s link set lan0 up
ip netns exec %[2]s sysctl -qw net.ipv4.ip_forward=1`,
		rns, ns, ifname, inside, d.nbma, inside.Bits(), inside.Addr(), d.lan))
	d.node = l.Node(d.name)
}
