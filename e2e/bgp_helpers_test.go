package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// gobgpTarget is the gobgp CLI's --target for d's GoBGP API: dmvpnd's
// default unix socket beside its control socket (read-only).
func gobgpTarget(d *dnode) string { return "unix://" + d.dir + "/gobgp.sock" }

// bgpSetup is one scenario's NHRP and BGP settings; bgpConfig renders a
// node's dmvpnd.yaml from it. dnode.config (dmvpnd_test.go) fixes the NHRP
// section, so the BGP scenarios render their own.
type bgpSetup struct {
	// hubMode is "reflect" (Phase 2) or "summary" (Phase 3).
	hubMode   string
	summaries []netip.Prefix
	// holding is the NHRP holding time (0: 300 s). It is also the
	// lifetime of a shortcut that is not refreshed.
	holding time.Duration
	// redirect makes the hub send traffic indications.
	redirect bool
	// shortcut is the spokes' nhrp.shortcut.
	shortcut bool
	// hubLAN makes the hub originate its own LAN prefix.
	hubLAN bool
	// ipsec, when set, is the YAML of each node's ipsec section (indented
	// by two spaces, without the "ipsec:" line) minus enabled and
	// vici_socket, which comes from vici (node name -> socket path).
	ipsec string
	vici  map[string]string
	// bgpExtra is YAML appended to every node's bgp section (indented by
	// two spaces), e.g. graceful restart.
	bgpExtra string
}

// prefixes is what d originates by default in the scenario.
func (s bgpSetup) prefixes(d *dnode) []netip.Prefix {
	if d.hub && !s.hubLAN {
		return nil
	}
	return []netip.Prefix{d.lan.Masked()}
}

// bgpConfig renders d's configuration originating prefixes.
func (s bgpSetup) bgpConfig(d *dnode, prefixes []netip.Prefix) string {
	holding := s.holding
	if holding == 0 {
		holding = 300 * time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tunnel: {name: gre1, key: 42, local_nbma: %s, address: %s/24}\n", d.nbma, d.tunnel)
	fmt.Fprintf(&b, "nhrp:\n  network_id: 1\n  holding_time: %ds\n", int(holding.Seconds()))
	if d.hub {
		fmt.Fprintf(&b, "  role: hub\n  redirect: %t\n", s.redirect)
	} else {
		fmt.Fprintf(&b, "  role: spoke\n  shortcut: %t\n  nhs:\n%s", s.shortcut, d.nhsYAML)
	}
	if s.ipsec != "" {
		fmt.Fprintf(&b, "ipsec:\n  enabled: true\n  vici_socket: %s\n%s", s.vici[d.name], s.ipsec)
	}
	b.WriteString("bgp:\n  enabled: true\n  asn: 65000\n")
	if d.hub {
		fmt.Fprintf(&b, "  dynamic: {prefix: 10.0.0.0/24}\n  hub_mode: %s\n", s.hubMode)
		if len(s.summaries) > 0 {
			fmt.Fprintf(&b, "  summaries: [%s]\n", bgpJoinPrefixes(s.summaries))
		}
	} else {
		b.WriteString("  neighbors:\n    - address: 10.0.0.1\n")
	}
	fmt.Fprintf(&b, "  prefixes: [%s]\n", bgpJoinPrefixes(prefixes))
	b.WriteString(s.bgpExtra)
	fmt.Fprintf(&b, "control: {socket: %s}\nmetrics: {listen: \"\"}\nlog: {level: debug}\n", d.socket())
	return b.String()
}

func bgpJoinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// bgpLab builds hub + spokes (not started) and arranges for a failed
// test to log every node's view and log tail.
func bgpLab(t *testing.T, spokes int) (*lab.Lab, []*dnode) {
	t.Helper()
	l, nodes := dmvpnLab(t, spokes)
	t.Cleanup(func() {
		if t.Failed() {
			bgpReportNodes(t, nodes)
		}
	})
	return l, nodes
}

// bgpStartTimes are when the daemons were started and how long
// registration and readiness took.
type bgpStartTimes struct {
	start      time.Time
	registered time.Duration // every spoke UP on the hub
	ready      time.Duration // every spoke registered and its BGP session established
}

// bgpWithIPsec starts a charon on every node and returns setup with
// dmvpnd's ipsec section (PSK) pointing at them.
func bgpWithIPsec(t *testing.T, l *lab.Lab, nodes []*dnode, setup bgpSetup) bgpSetup {
	t.Helper()
	// The first ESP state after boot waits seconds for the kernel to load
	// the crypto modules: load them now with a throw-away state.
	l.MustRun("ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode transport " +
		"aead 'rfc4106(gcm(aes))' 0x0102030405060708091011121314151617181920 128 && ip xfrm state flush")
	setup.vici = map[string]string{}
	setup.ipsec = "  auth: {method: psk, psk: lab-preshared-key-0123456789}\n" +
		"  proposals: {ike: [aes256gcm16-prfsha256-ecp256], esp: [aes256gcm16]}\n"
	for _, d := range nodes {
		c := d.node.MustStartCharon(lab.CharonConfig{})
		setup.vici[d.name] = c.Socket
	}
	return setup
}

// bgpWaitSA waits until d's dmvpnctl show ipsec lists peer's NBMA address
// as ESTABLISHED.
func bgpWaitSA(ctx context.Context, d, peer *dnode) error {
	var last string
	err := lab.WaitFor(ctx, 250*time.Millisecond, func(ctx context.Context) error {
		out, err := d.ctl(ctx, "show ipsec")
		if err != nil {
			return err
		}
		last = out
		for line := range strings.SplitSeq(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == peer.nbma.String() && f[1] == "ESTABLISHED" {
				return nil
			}
		}
		return fmt.Errorf("%s: no ESTABLISHED SA with %s (%s)", d.name, peer.name, peer.nbma)
	})
	if err != nil {
		return fmt.Errorf("%w\ndmvpnctl show ipsec:\n%s", err, last)
	}
	return nil
}

// bgpStartAll starts the cloud (startRegistered), then waits until each
// spoke is ready (registered and its BGP session established). Times count
// from the spokes' start.
func bgpStartAll(t *testing.T, l *lab.Lab, nodes []*dnode, setup bgpSetup) bgpStartTimes {
	t.Helper()
	t0, registered := startRegistered(t, nodes[0], nodes[1:], func(d *dnode) { bgpStart(t, l, d, setup) })
	st := bgpStartTimes{start: t0, registered: registered}
	for _, d := range nodes[1:] {
		d.waitReady(t, 90*time.Second)
	}
	st.ready = time.Since(t0)
	t.Logf("timing: every spoke ready (registered, BGP session established) %v after starting them", bgpMS(st.ready))
	return st
}

// startRegistered starts dmvpnd on the hub with start, waits until its
// control loop runs (with IPsec, its charon then answers the spokes' first
// IKE_SA_INIT), starts the spokes and waits until the hub lists every
// spoke as registered (UP). It returns when the spokes were started and
// how long they took to register.
func startRegistered(t *testing.T, hub *dnode, spokes []*dnode, start func(*dnode)) (time.Time, time.Duration) {
	t.Helper()
	th := time.Now()
	start(hub)
	hub.waitReady(t, 90*time.Second)
	t.Logf("timing: hub dmvpnd running %v after its start", bgpMS(time.Since(th)))
	t0 := time.Now()
	for _, d := range spokes {
		start(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	want := bgpTunnelAddrs(spokes)
	var mismatch error
	err := lab.WaitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		v, err := hub.showDMVPN(ctx)
		if err != nil {
			return err
		}
		if got := bgpUpPeers(v); !slices.Equal(got, want) {
			mismatch = fmt.Errorf("hub: registered (UP) peers %v, want %v", got, want)
			return mismatch
		}
		return nil
	})
	if err != nil {
		if mismatch != nil {
			err = fmt.Errorf("gave up waiting: %w", mismatch)
		}
		t.Fatalf("registration: %v", err)
	}
	registered := time.Since(t0)
	t.Logf("timing: registration after start: all %d spokes UP on the hub %v after starting them", len(spokes), bgpMS(registered))
	return t0, registered
}

// bgpStart writes d's configuration and starts dmvpnd.
func bgpStart(t *testing.T, l *lab.Lab, d *dnode, setup bgpSetup) {
	t.Helper()
	d.startWith(t, l, setup.bgpConfig(d, setup.prefixes(d)))
}

// bgpReload rewrites d's configuration with new prefixes (which must
// differ from those in effect), sends SIGHUP and waits until show
// running-config --json has them in effect; a rejected reload keeps the
// old ones and fails the wait (the reason is in d's log).
func bgpReload(t *testing.T, l *lab.Lab, d *dnode, setup bgpSetup, prefixes []netip.Prefix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.WriteFile(ctx, d.dir+"/dmvpnd.yaml", []byte(setup.bgpConfig(d, prefixes)), 0o600); err != nil {
		t.Fatalf("%s: write config: %v", d.name, err)
	}
	if _, err := d.node.Run(ctx, fmt.Sprintf("kill -HUP %d", d.proc.PID)); err != nil {
		t.Fatalf("%s: SIGHUP: %v", d.name, err)
	}
	want := bgpJoinPrefixes(prefixes)
	_, err := ctlWait(ctx, d, 50*time.Second, "show running-config", func(rc api.RunningConfig) error {
		var c struct {
			BGP struct {
				Prefixes []string `yaml:"prefixes"`
			} `yaml:"bgp"`
		}
		if err := yaml.Unmarshal([]byte(rc.YAML), &c); err != nil {
			return lab.Permanent(fmt.Errorf("%s: running-config: %v", d.name, err))
		}
		if got := strings.Join(c.BGP.Prefixes, ", "); got != want {
			return fmt.Errorf("%s: bgp.prefixes in effect [%s], want [%s] (a rejected reload is in %s)", d.name, got, want, d.proc.Log)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// bgpRoute is one kernel route of dmvpnd's protocol, as "PREFIX via ADDR".
type bgpRoute string

func bgpRt(prefix, via string) bgpRoute { return bgpRoute(prefix + " via " + via) }

// bgpKernelRoutes lists the node's kernel routes of dmvpnd's protocol (157):
// BGP routes and shortcuts, sorted.
func bgpKernelRoutes(ctx context.Context, d *dnode) ([]bgpRoute, error) {
	res, err := d.node.Run(ctx, "ip -4 route show proto 157")
	if err != nil {
		return nil, err
	}
	var out []bgpRoute
	for line := range strings.SplitSeq(strings.TrimSpace(string(res.Stdout)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		via := "-"
		if i := slices.Index(f, "via"); i >= 0 && i+1 < len(f) {
			via = f[i+1]
		}
		out = append(out, bgpRt(dst, via))
	}
	slices.Sort(out)
	return out, nil
}

// waitShortcutRoute waits for from's shortcut route to to's LAN via to's
// tunnel address (Phase 3), keeping a LAN-to-LAN flow alive meanwhile so
// that the shortcut's direct path can be confirmed.
func waitShortcutRoute(ctx context.Context, from, to *dnode) error {
	shortcut := bgpRt(to.lan.Masked().String(), to.tunnel.String())
	return lab.WaitFor(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		got, err := bgpKernelRoutes(ctx, from)
		if err != nil {
			return err
		}
		if !slices.Contains(got, shortcut) {
			_ = scLANPing(ctx, from, to.lan.Addr(), 1)
			return fmt.Errorf("%s: no shortcut route %q; proto 157 routes: %q", from.name, shortcut, got)
		}
		return nil
	})
}

// bgpWaitConverged waits, up to 60 s a node, until each node's dmvpnd
// routes are exactly want(node), and fails the test if one never gets
// there.
func bgpWaitConverged(ctx context.Context, t *testing.T, nodes []*dnode, want func(*dnode) []bgpRoute) {
	t.Helper()
	bgpWaitAll(ctx, t, "BGP convergence", nodes, want, false)
}

// bgpWaitAll is bgpWaitConverged with lanOnly (see bgpWaitRoutes); what
// names the step in the failure.
func bgpWaitAll(ctx context.Context, t *testing.T, what string, nodes []*dnode, want func(*dnode) []bgpRoute, lanOnly bool) {
	t.Helper()
	for _, d := range nodes {
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		err := bgpWaitRoutes(wctx, d, want(d), lanOnly)
		wcancel()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// gobgpWantEstablished checks with the stock gobgp CLI that the hub's
// established neighbors are exactly want (sorted), and logs its output.
func gobgpWantEstablished(ctx context.Context, t *testing.T, hub *dnode, want ...string) {
	t.Helper()
	nbr, err := gobgpCLI(ctx, hub, "neighbor")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hub: gobgp neighbor\n%s", nbr)
	if got := gobgpEstablished(nbr); !slices.Equal(got, want) {
		t.Errorf("gobgp neighbor on the hub: established %v, want %v", got, want)
	}
}

// bgpWaitRoutes waits until d's dmvpnd routes are exactly want. With
// lanOnly, host routes inside the tunnel prefix (Phase 2 shortcuts to a
// peer's tunnel address) are left out of the comparison.
func bgpWaitRoutes(ctx context.Context, d *dnode, want []bgpRoute, lanOnly bool) error {
	want = slices.Sorted(slices.Values(want))
	var mismatch error
	err := lab.WaitFor(ctx, 250*time.Millisecond, func(ctx context.Context) error {
		got, err := bgpKernelRoutes(ctx, d)
		if err != nil {
			return err
		}
		if lanOnly {
			got = slices.DeleteFunc(got, bgpTunnelHostRoute)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			mismatch = fmt.Errorf("%s: kernel routes (ip route show proto 157) (-want +got):\n%s", d.name, diff)
			return mismatch
		}
		return nil
	})
	if err != nil && mismatch != nil {
		// The last attempt was most likely cut by the deadline: report
		// what was seen, not the cancelled command.
		return fmt.Errorf("gave up waiting: %w", mismatch)
	}
	return err
}

// bgpTunnelHostRoute reports whether r is a host route inside the tunnel
// prefix 10.0.0.0/24.
func bgpTunnelHostRoute(r bgpRoute) bool {
	dst, _, _ := strings.Cut(string(r), " ")
	p, err := netip.ParsePrefix(dst)
	return err == nil && p.IsSingleIP() && netip.MustParsePrefix("10.0.0.0/24").Contains(p.Addr())
}

// bgpNeighbor returns the lladdr of d's gre1 neighbor entry for addr and its
// state ("" when there is none).
func bgpNeighbor(ctx context.Context, d *dnode, addr netip.Addr) (lladdr, state string, err error) {
	res, err := d.node.Run(ctx, "ip -4 neigh show "+addr.String()+" dev gre1")
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(string(res.Stdout))
	if len(f) == 0 {
		return "", "", nil
	}
	if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
		lladdr = f[i+1]
	}
	return lladdr, f[len(f)-1], nil
}

// waitDirectNeighbors waits until, for each pair, the first node's gre1
// neighbor entry for the second's tunnel address points at the second's
// NBMA address (Phase 2: resolved, direct).
func waitDirectNeighbors(ctx context.Context, pairs ...[2]*dnode) error {
	return lab.WaitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		for _, p := range pairs {
			ll, st, err := bgpNeighbor(ctx, p[0], p[1].tunnel)
			if err != nil {
				return err
			}
			if ll != p[1].nbma.String() {
				return fmt.Errorf("%s: neighbor %s is %q (%s), want lladdr %s (%s's NBMA)", p[0].name, p[1].tunnel, ll, st, p[1].nbma, p[1].name)
			}
		}
		return nil
	})
}

// bgpIfindex reads gre1's ifindex on d.
func bgpIfindex(ctx context.Context, d *dnode) (int, error) {
	res, err := d.node.Run(ctx, "cat /sys/class/net/gre1/ifindex")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
}

// bgpProveDirect proves that from's LAN-to-LAN flow to to goes spoke to
// spoke over their own SA: the SA is up, directPings pings leave at most
// half as many packets on the hub's gre1 (through the hub they would add
// at least as many), and to's underlay port carries only ESP meanwhile
// (capture named capture).
func bgpProveDirect(ctx context.Context, t *testing.T, l *lab.Lab, hub, from, to *dnode, capture string) {
	t.Helper()
	if err := bgpWaitSA(ctx, from, to); err != nil {
		t.Fatalf("spoke-to-spoke SA: %v", err)
	}
	var relayed int
	err := l.CheckESPOnUnderlay(ctx, to.name, capture, directPings, func(ctx context.Context) error {
		var err error
		relayed, err = hubRelayed(ctx, hub, from, to, directPings)
		return err
	})
	if err != nil {
		t.Fatalf("LAN to LAN spoke to spoke: %v", err)
	}
	t.Logf("hub gre1 received %d packets during %d pings %s LAN -> %s LAN; only ESP on %s's underlay port",
		relayed, directPings, from.name, to.name, to.name)
	if relayed >= directPings/2 {
		t.Errorf("hub gre1 received %d packets during %d pings %s -> %s: traffic still goes through the hub",
			relayed, directPings, from.name, to.name)
	}
}

// gobgpCLI runs the stock gobgp CLI against the hub's API.
func gobgpCLI(ctx context.Context, hub *dnode, args string) (string, error) {
	res, err := hub.node.Run(ctx, fmt.Sprintf("gobgp --target %s %s", gobgpTarget(hub), args))
	if err != nil {
		return "", fmt.Errorf("gobgp %s on %s: %w", args, hub.name, err)
	}
	return string(res.Stdout), nil
}

// gobgpEstablished returns the neighbor addresses that `gobgp neighbor` shows
// as Establ.
func gobgpEstablished(table string) []string {
	var out []string
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && slices.Contains(f, "Establ") {
			if _, err := netip.ParseAddr(f[0]); err == nil {
				out = append(out, f[0])
			}
		}
	}
	slices.Sort(out)
	return out
}

// gobgpRIBHas reports whether a gobgp RIB table has a line for prefix with
// next hop nh.
func gobgpRIBHas(table string, prefix netip.Prefix, nh netip.Addr) bool {
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		if slices.Contains(f, prefix.String()) && slices.Contains(f, nh.String()) {
			return true
		}
	}
	return false
}

// gobgpRIBHasPrefix reports whether a gobgp RIB table mentions prefix at all.
func gobgpRIBHasPrefix(table string, prefix netip.Prefix) bool {
	for line := range strings.SplitSeq(table, "\n") {
		if slices.Contains(strings.Fields(line), prefix.String()) {
			return true
		}
	}
	return false
}

// bgpPeer returns the show dmvpn entry for tunnel address addr.
func bgpPeer(v api.DMVPN, addr netip.Addr) (api.Peer, bool) {
	for _, p := range v.Peers {
		if p.Tunnel == addr {
			return p, true
		}
	}
	return api.Peer{}, false
}

// bgpUpPeers returns the tunnel addresses of the hub's UP peers.
func bgpUpPeers(v api.DMVPN) []netip.Addr {
	var out []netip.Addr
	for _, p := range v.Peers {
		if p.State == api.PeerUp {
			out = append(out, p.Tunnel)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// bgpTunnelAddrs returns the tunnel addresses of nodes.
func bgpTunnelAddrs(nodes []*dnode) []netip.Addr {
	var out []netip.Addr
	for _, d := range nodes {
		out = append(out, d.tunnel)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// bgpReportNodes logs, for a failed test, what each node's dmvpnd thinks and
// the tail of its log, so that the failure reads without opening files.
func bgpReportNodes(t *testing.T, nodes []*dnode) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, d := range nodes {
		if d.proc == nil {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "==== %s (tunnel %s, NBMA %s) ====\n", d.name, d.tunnel, d.nbma)
		cctx, ccancel := context.WithTimeout(ctx, 15*time.Second)
		out, err := d.ctl(cctx, "show dmvpn")
		ccancel()
		if err == nil {
			b.WriteString(out)
		} else {
			fmt.Fprintf(&b, "dmvpnctl show dmvpn: %v\n", err)
			if errors.Is(err, context.DeadlineExceeded) || cctx.Err() != nil {
				// The daemon does not answer: have Go dump its goroutines
				// into its log (SIGQUIT), to see where it is stuck.
				_, _ = d.node.Exec(ctx, fmt.Sprintf("kill -QUIT %d; sleep 1", d.proc.PID))
				fmt.Fprintf(&b, "%s does not answer; sent SIGQUIT: goroutine dump in %s\n", d.name, d.proc.Log)
			}
		}
		if res, err := d.node.Exec(ctx, "ip -4 route show dev gre1; ip -4 neigh show dev gre1"); err == nil {
			fmt.Fprintf(&b, "-- routes and neighbors on gre1:\n%s", res.Stdout)
		}
		if log, err := os.ReadFile(d.proc.Log); err == nil {
			lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
			fmt.Fprintf(&b, "-- last lines of %s:\n%s\n", d.proc.Log, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
		t.Log(b.String())
	}
}

// bgpMS rounds a duration for timing logs.
func bgpMS(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// bgpPingThroughHub sends the first 3 packets of a LAN-to-LAN flow from
// from to to, which go through the hub (no shortcut yet), fails the test
// unless one is answered, and returns the guest's clock right before them.
func bgpPingThroughHub(ctx context.Context, t *testing.T, from, to *dnode) time.Time {
	t.Helper()
	g1, res, err := bgpPingFrom(ctx, from, to, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Exit != 0 {
		t.Fatalf("LAN to LAN through the hub: ping exit %d\n%s", res.Exit, res.Stdout)
	}
	return g1
}

// bgpPingFrom pings to's LAN from from's LAN like scLANPing and also
// returns the guest's clock right before the first packet, to compare with
// the timestamps in dmvpnd's logs.
func bgpPingFrom(ctx context.Context, from, to *dnode, count int) (time.Time, lab.Result, error) {
	res, err := from.node.Exec(ctx, fmt.Sprintf("date +%%s.%%N; exec ping -n -c %d -i 0.2 -W 2 -I %s %s", count, from.lan.Addr(), to.lan.Addr()))
	if err != nil {
		return time.Time{}, res, err
	}
	first, rest, _ := strings.Cut(string(res.Stdout), "\n")
	res.Stdout = []byte(rest)
	sec, frac, _ := strings.Cut(strings.TrimSpace(first), ".")
	s, err1 := strconv.ParseInt(sec, 10, 64)
	ns, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, res, fmt.Errorf("%s: guest clock %q", from.name, first)
	}
	return time.Unix(s, ns), res, nil
}

// bgpLogTime returns the timestamp of the first line of d's dmvpnd log
// that contains every part.
func bgpLogTime(d *dnode, parts ...string) (time.Time, bool) {
	b, err := os.ReadFile(d.proc.Log)
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if !all {
			continue
		}
		_, ts, ok := strings.Cut(line, `"ts":"`)
		if !ok {
			continue
		}
		ts, _, _ = strings.Cut(ts, `"`)
		if tm, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return tm, true
		}
	}
	return time.Time{}, false
}

// bgpShortcutUpAfter reports, from d's log, how long after t0 the shortcut
// for prefix via the peer came up (the controller installs its route at
// that moment).
func bgpShortcutUpAfter(d *dnode, t0 time.Time, prefix netip.Prefix) (time.Duration, bool) {
	tm, ok := bgpLogTime(d, "shortcut proto=", "prefix="+prefix.String()+" ", "state=up")
	if !ok {
		return 0, false
	}
	return tm.Sub(t0), true
}
