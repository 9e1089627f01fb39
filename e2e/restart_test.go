package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

// TestRestartKeepsShortcut proves that a restarted dmvpnd adopts the
// kernel state (issue 5, issue 8) and, with IPsec, charon's SAs (issue 16):
// with a Phase 3 shortcut from s1 to s2 carrying a ping every 100 ms from
// s1's LAN to s2's LAN, dmvpnd on s1 is killed with SIGKILL and started
// again with the same config. Checked, in subtest plain and then, on the
// same lab with a fresh tunnel and a charon per node (PSK), in subtest
// ipsec:
//   - the ping loses no packet (every sequence number up to the last one
//     sent before the ping was stopped got its reply);
//   - gre1 keeps its ifindex (not re-created);
//   - `ip monitor route neigh` on s1, running across the restart, shows no
//     event at all for the shortcut route (neither deleted nor re-added)
//     and never shows s2's neighbor entry deleted, FAILED or pointing
//     elsewhere than s2's NBMA address;
//   - the restarted dmvpnd owns the shortcut again in its own view
//     (dmvpnctl show nhrp shortcuts) and says it adopted the kernel state;
//   - ipsec: the ESP SAs between s1 and s2 (their SPIs in s1's kernel)
//     are the ones from before the kill, and s2's charon holds one IKE_SA
//     with s1: the SA was neither torn down nor negotiated again.
//
// plain also checks the flow under fast neighbor aging, and a negative
// control shows that the loss check catches a 1 s outage.
func TestRestartKeepsShortcut(t *testing.T) {
	l, nodes := dmvpnLab(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	t.Run("plain", func(t *testing.T) {
		restartKeepsShortcut(ctx, t, l, nodes, nil)
		restartAgingAndControl(ctx, t, l, nodes[1], nodes[2])
	})

	// The IPsec run starts from nothing: the plain run's tunnel, routes
	// and entries are not its to adopt.
	for _, d := range nodes {
		if d.proc != nil {
			if err := d.proc.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		}
		d.node.MustRun("ip link del gre1 2>/dev/null; true")
	}
	charons := ipdStartCharons(t, nodes...)
	t.Run("ipsec", func(t *testing.T) { restartKeepsShortcut(ctx, t, l, nodes, charons) })
}

// restartKeepsShortcut is TestRestartKeepsShortcut on started or stopped
// nodes (hub, s1, s2); charons are the nodes' charons when the run uses
// IPsec, else nil.
func restartKeepsShortcut(ctx context.Context, t *testing.T, l *lab.Lab, nodes []*dnode, charons map[*dnode]*lab.Charon) {
	hub, s1, s2 := nodes[0], nodes[1], nodes[2]
	for _, d := range nodes {
		d.start(t, l)
	}
	for _, s := range []*dnode{s1, s2} {
		s.waitReady(t, 60*time.Second)
	}
	for _, s := range []*dnode{s1, s2} {
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}
	shortcut := fmt.Sprintf("%s via %s", s2.lan.Masked(), s2.tunnel)
	establishShortcut(ctx, t, s1, s2, shortcut)

	ifindexBefore := strings.TrimSpace(s1.node.MustRun("cat /sys/class/net/gre1/ifindex"))
	mon := startMonitor(ctx, t, l, s1)

	ping, err := s1.node.Start(ctx, "ping-restart", fmt.Sprintf("ping -n -O -i 0.1 -I %s %s", s1.lan.Addr(), s2.lan.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	waitReplies(ctx, t, l, ping, 20)
	var spisBefore []string
	if charons != nil {
		spisBefore = espSPIs(ctx, t, s1, s2)
		if len(spisBefore) != 2 {
			t.Fatalf("s1: ESP SAs with s2 before the restart: %v, want one per direction", spisBefore)
		}
	}

	t0 := time.Now()
	if err := s1.proc.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	s1.start(t, l)
	s1.waitReady(t, 60*time.Second)
	t.Logf("timing: kill -9 to ready again %v", time.Since(t0).Round(time.Millisecond))
	if err := lab.WaitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		out, err := s1.ctl(ctx, "show nhrp shortcuts --json")
		if err != nil {
			return err
		}
		var scs []api.Shortcut
		if err := json.Unmarshal([]byte(out), &scs); err != nil {
			return lab.Permanent(fmt.Errorf("show nhrp shortcuts --json: %v: %s", err, out))
		}
		for _, sc := range scs {
			if sc.Prefix == s2.lan.Masked() && sc.Via == s2.tunnel {
				return nil
			}
		}
		return fmt.Errorf("s1 shortcuts: %s", out)
	}); err != nil {
		t.Fatalf("restarted s1 does not own the shortcut again: %v", err)
	}
	t.Logf("timing: kill -9 to shortcut re-learnt %v", time.Since(t0).Round(time.Millisecond))
	// Keep the flow going a little on the re-learnt state.
	waitReplies(ctx, t, l, ping, countReplies(t, ping)+30)

	res := stopPing(ctx, t, l, ping)
	t.Logf("ping across the restart: %d sent, %d answered, missing %v", res.sent, len(res.replied), res.missing)
	if len(res.missing) > 0 || res.sent < 50 {
		t.Errorf("ping across the restart lost packets: missing icmp_seq %v of %d sent (log %s)", res.missing, res.sent, ping.Log)
	}
	if charons != nil {
		if after := espSPIs(ctx, t, s1, s2); !slices.Equal(after, spisBefore) {
			t.Errorf("s1: ESP SAs with s2 %v before the restart, %v after: the SA was negotiated again", spisBefore, after)
		}
		ike, child, raw, err := ipdCharonSAs(ctx, charons[s2], s1.nbma)
		if err != nil {
			t.Fatal(err)
		}
		if ike != 1 || child != 1 {
			t.Errorf("s2's charon: %d IKE_SAs, %d CHILD_SAs with s1 after the restart, want 1 and 1:\n%s", ike, child, raw)
		}
	}

	if after := strings.TrimSpace(s1.node.MustRun("cat /sys/class/net/gre1/ifindex")); after != ifindexBefore {
		t.Errorf("gre1 ifindex %s before the restart, %s after: the tunnel was re-created", ifindexBefore, after)
	}
	if routes := s1.node.MustRun("ip route show proto 157"); !strings.Contains(routes, shortcut) {
		t.Errorf("s1 lost the shortcut route %q; proto 157 routes:\n%s", shortcut, routes)
	}
	events := mon.stop(ctx, t)
	for _, line := range events {
		switch {
		case strings.Contains(line, s2.lan.Masked().String()+" "):
			t.Errorf("ip monitor: the shortcut route was touched during the restart: %q", line)
		case strings.Contains(line, s2.tunnel.String()+" dev gre1") &&
			(strings.Contains(line, "Deleted") || strings.Contains(line, "FAILED") ||
				(strings.Contains(line, "lladdr") && !strings.Contains(line, "lladdr "+s2.nbma.String()))):
			t.Errorf("ip monitor: s2's neighbor entry was disturbed during the restart: %q", line)
		}
	}
	t.Logf("ip monitor during the restart: %d events (log %s)", len(events), mon.proc.Log)
	log, err := os.ReadFile(s1.proc.Log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "adopted kernel state of a previous run") {
		t.Errorf("restarted s1 did not log the adoption (log %s)", s1.proc.Log)
	}
}

// espSPIs returns the SPIs of the ESP SAs between s1 and s2 in s1's
// kernel, s1 to s2 first.
func espSPIs(ctx context.Context, t *testing.T, s1, s2 *dnode) []string {
	t.Helper()
	var out []string
	for _, dir := range [][2]netip.Addr{{s1.nbma, s2.nbma}, {s2.nbma, s1.nbma}} {
		res, err := s1.node.Run(ctx, fmt.Sprintf("ip xfrm state list src %s dst %s proto esp", dir[0], dir[1]))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range spiRE.FindAllStringSubmatch(string(res.Stdout), -1) {
			out = append(out, fmt.Sprintf("%s>%s %s", dir[0], dir[1], m[1]))
		}
	}
	return out
}

var spiRE = regexp.MustCompile(`proto esp spi (0x[0-9a-f]+)`)

// restartAgingAndControl follows the plain restart: the flow under fast
// neighbor aging, then the negative control of the loss check.
func restartAgingAndControl(ctx context.Context, t *testing.T, l *lab.Lab, s1, s2 *dnode) {
	// Steady state after the restart, with s1's neighbor entries aging
	// every few seconds: each time the kernel asks about s2's entry (PROBE)
	// dmvpnd writes it again before it fails, and the flow loses nothing.
	s1.node.MustRun("sysctl -qw net.ipv4.neigh.gre1.base_reachable_time_ms=2000 net.ipv4.neigh.gre1.delay_first_probe_time=1")
	refreshesBefore := counter(ctx, t, s1, "kernel_neighbor_refreshes")
	out, err := s1.node.Run(ctx, fmt.Sprintf("ping -n -c 150 -i 0.1 -W 1 -I %s %s", s1.lan.Addr(), s2.lan.Addr()))
	aging := parsePing(string(out.Stdout))
	refreshes := counter(ctx, t, s1, "kernel_neighbor_refreshes") - refreshesBefore
	t.Logf("ping with fast neighbor aging: %d sent, missing %v, %d neighbor refreshes", aging.sent, aging.missing, refreshes)
	if err != nil || len(aging.missing) > 0 || aging.sent != 150 {
		t.Errorf("ping with fast neighbor aging lost packets: missing %v of %d (%v)", aging.missing, aging.sent, err)
	}
	if refreshes < 1 {
		// Seen on an idle machine: the kernel did not age the entry to
		// PROBE during the 15 s (not understood yet; on a loaded machine
		// it did, 8-10 times). The mechanism itself is covered by the
		// controller's TestResolvedNeighborRefreshedOnProbe; here only
		// the lossless flow is asserted.
		t.Logf("no neighbor refresh during 15 s of traffic with 1-3 s reachable time: aging was not exercised in this run")
	}

	// Negative control: the same check reports a 1 s outage (s2 drops its
	// replies to s1's LAN).
	ctrl, err := s1.node.Start(ctx, "ping-control", fmt.Sprintf("ping -n -O -i 0.1 -I %s %s", s1.lan.Addr(), s2.lan.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	waitReplies(ctx, t, l, ctrl, 10)
	blackhole := fmt.Sprintf("ip route %%s blackhole %s metric 1", s1.lan.Masked())
	s2.node.MustRun(fmt.Sprintf(blackhole, "add") + " && sleep 1 && " + fmt.Sprintf(blackhole, "del"))
	waitReplies(ctx, t, l, ctrl, countReplies(t, ctrl)+10)
	cres := stopPing(ctx, t, l, ctrl)
	t.Logf("negative control: %d sent, missing %v", cres.sent, cres.missing)
	if len(cres.missing) < 5 {
		t.Errorf("negative control: a 1 s outage lost %d packets, want >= 5: the loss check cannot fail", len(cres.missing))
	}
}

// counter reads one of dmvpnctl show counters.
func counter(ctx context.Context, t *testing.T, d *dnode, name string) uint64 {
	t.Helper()
	out, err := d.ctl(ctx, "show counters --json")
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]uint64
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("%s: show counters --json: %v\n%s", d.name, err, out)
	}
	return c[name]
}

// establishShortcut sends LAN traffic from s1 to s2 until s1 has the
// shortcut route.
func establishShortcut(ctx context.Context, t *testing.T, s1, s2 *dnode, want string) {
	t.Helper()
	ping := fmt.Sprintf("ping -n -c 1 -W 1 -I %s %s", s1.lan.Addr(), s2.lan.Addr())
	err := lab.WaitFor(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		_, _ = s1.node.Exec(ctx, ping)
		res, err := s1.node.Run(ctx, "ip route show proto 157")
		if err != nil {
			return err
		}
		if !strings.Contains(string(res.Stdout), want) {
			return fmt.Errorf("no shortcut route %q; proto 157 routes:\n%s", want, res.Stdout)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("s1: %v", err)
	}
}

// monitor is `ip monitor` running on a node.
type monitor struct {
	proc *lab.Proc
	node *lab.Node
	l    *lab.Lab
}

// startMonitor runs `ip -ts monitor route neigh` on d and waits until it
// reports a marker route, so that it listens before the test goes on.
func startMonitor(ctx context.Context, t *testing.T, l *lab.Lab, d *dnode) *monitor {
	t.Helper()
	p, err := d.node.Start(ctx, "ipmon", "ip -ts monitor route neigh")
	if err != nil {
		t.Fatal(err)
	}
	// Add and remove a marker route until the monitor reports it.
	marker := "192.0.2.99"
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = lab.WaitFor(wctx, 200*time.Millisecond, func(ctx context.Context) error {
		_, _ = d.node.Exec(ctx, "ip route add "+marker+"/32 dev lo; ip route del "+marker+"/32 dev lo")
		b, err := os.ReadFile(p.Log)
		if err != nil || !strings.Contains(string(b), marker) {
			return fmt.Errorf("ip monitor not listening yet (%v)", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return &monitor{proc: p, node: d.node, l: l}
}

// stop ends the monitor and returns its lines after the marker's.
func (m *monitor) stop(ctx context.Context, t *testing.T) []string {
	t.Helper()
	if err := m.proc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(m.proc.Log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(line, "192.0.2.99") {
			out = out[:0]
			continue
		}
		out = append(out, line)
	}
	return out
}

var (
	replyRE   = regexp.MustCompile(`icmp_seq=(\d+) ttl=`)
	sentRE    = regexp.MustCompile(`(\d+) packets transmitted`)
	summaryRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
)

// pingSummary reads "N packets transmitted, M received" from a finished
// ping's output (ping exits 0 as soon as any reply came back, so the exit
// status alone does not prove that nothing was lost).
func pingSummary(out string) (sent, received int, ok bool) {
	m := summaryRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received, true
}

// countReplies counts the echo replies in a running ping's log.
func countReplies(t *testing.T, p *lab.Proc) int {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return len(replyRE.FindAll(b, -1))
}

// waitReplies waits until a running ping's log holds n replies.
func waitReplies(ctx context.Context, t *testing.T, l *lab.Lab, p *lab.Proc, n int) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Duration(n)*time.Second/5+30*time.Second)
	defer cancel()
	err := lab.WaitFor(wctx, 200*time.Millisecond, func(ctx context.Context) error {
		if got := countReplies(t, p); got < n {
			if !p.Alive(ctx) {
				return lab.Permanent(fmt.Errorf("ping exited after %d replies (log %s)", got, p.Log))
			}
			return fmt.Errorf("%d replies, want %d", got, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pingResult is what a stopped ping saw.
type pingResult struct {
	sent    int
	replied []int
	// missing are the sequence numbers before the last reply that got no
	// reply (the last request may still be in flight when ping is
	// interrupted; it is not counted).
	missing []int
}

// stopPing interrupts a running ping and reads its log.
func stopPing(ctx context.Context, t *testing.T, l *lab.Lab, p *lab.Proc) pingResult {
	t.Helper()
	if _, err := l.Run(ctx, fmt.Sprintf("kill -INT %d", p.PID)); err != nil {
		t.Fatal(err)
	}
	err := lab.WaitFor(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		if p.Alive(ctx) {
			return fmt.Errorf("ping %d still running", p.PID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return parsePing(string(b))
}

func parsePing(log string) pingResult {
	var r pingResult
	seen := map[int]bool{}
	for _, m := range replyRE.FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		if !seen[n] {
			seen[n] = true
			r.replied = append(r.replied, n)
		}
	}
	slices.Sort(r.replied)
	if m := sentRE.FindStringSubmatch(log); m != nil {
		r.sent, _ = strconv.Atoi(m[1])
	}
	last := 0
	if len(r.replied) > 0 {
		last = r.replied[len(r.replied)-1]
	}
	for seq := 1; seq < last; seq++ {
		if !seen[seq] {
			r.missing = append(r.missing, seq)
		}
	}
	if r.sent > last+1 { // more than the one in flight at the interrupt
		for seq := last + 1; seq < r.sent; seq++ {
			r.missing = append(r.missing, seq)
		}
	}
	return r
}

// TestDaemonProcess runs cmd/dmvpnd's TestProcess (the real binary under a
// fake systemd: READY, WATCHDOG, a rejected SIGHUP, SIGTERM) as root in the
// lab, where it can create its GRE tunnel. Both the test binary and dmvpnd
// are built on the host (DMVPND_BIN).
func TestDaemonProcess(t *testing.T) {
	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	l := lab.New(t, lab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	testBin := filepath.Join(l.Dir(), "gotest", "cmd_dmvpnd.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", testBin, "./cmd/dmvpnd")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./cmd/dmvpnd: %v\n%s", err, out)
	}
	res, err := l.ExecRequest(ctx, agent.Request{
		Cmd: testBin + " -test.v -test.count=1 -test.run '^TestProcess$' 2>&1",
		Dir: filepath.Join(root, "cmd", "dmvpnd"),
		Env: []string{"DMVPND_PRIVILEGED=1", "DMVPND_BIN=" + bin + "/dmvpnd"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Stdout)
	logPath := filepath.Join(l.Dir(), "gotest", "cmd_dmvpnd.log")
	if err := os.WriteFile(logPath, res.Stdout, 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("cmd/dmvpnd TestProcess in the lab (exit %d, log %s):\n%s", res.Exit, logPath, out)
	if res.Exit != 0 {
		t.Fatalf("TestProcess failed in the lab (exit %d)", res.Exit)
	}
	if !strings.Contains(out, "--- PASS: TestProcess") {
		t.Fatalf("TestProcess did not run (skipped?):\n%s", out)
	}
}

// TestParsePing checks the loss arithmetic the lab tests rely on.
func TestParsePing(t *testing.T) {
	reply := func(seq int) string {
		return fmt.Sprintf("64 bytes from 10.1.2.1: icmp_seq=%d ttl=63 time=1.2 ms\n", seq)
	}
	for _, tc := range []struct {
		name    string
		log     string
		sent    int
		missing []int
	}{
		{"all answered", reply(1) + reply(2) + reply(3) + "3 packets transmitted, 3 received, 0% packet loss", 3, nil},
		{"last in flight at the interrupt", reply(1) + reply(2) + "3 packets transmitted, 2 received", 3, nil},
		{"gap", reply(1) + "no answer yet for icmp_seq=2\n" + reply(3) + reply(4) + "4 packets transmitted, 3 received", 4, []int{2}},
		{"tail lost", reply(1) + "5 packets transmitted, 1 received", 5, []int{2, 3, 4}},
		{"nothing answered", "4 packets transmitted, 0 received", 4, []int{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parsePing(tc.log)
			if got.sent != tc.sent || !slices.Equal(got.missing, tc.missing) {
				t.Errorf("parsePing: sent %d missing %v, want %d %v", got.sent, got.missing, tc.sent, tc.missing)
			}
		})
	}
}
