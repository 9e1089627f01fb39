package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// smokeNode is one DMVPN member of the smoke topology.
type smokeNode struct {
	name    string
	nbma    netip.Addr
	overlay netip.Addr
}

var smokeNodes = []smokeNode{
	{"hub", netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("10.0.0.1")},
	{"s1", netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("10.0.0.2")},
	{"s2", netip.MustParseAddr("198.51.100.3"), netip.MustParseAddr("10.0.0.3")},
}

func smokeTopology() lab.Topology {
	var topo lab.Topology
	for i, n := range smokeNodes {
		topo.Nodes = append(topo.Nodes, lab.NodeSpec{
			Name: n.name, NBMA: n.nbma,
			LANs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.1.%d.1/24", i))},
		})
	}
	return topo
}

// mgreCommands sets up n's multipoint GRE tunnel with static neighbour
// entries for every other node, as one ip batch.
func mgreCommands(n smokeNode, key int) string {
	cmds := []string{
		fmt.Sprintf("tunnel add gre1 mode gre key %d ttl 64 local %s", key, n.nbma),
		fmt.Sprintf("addr add %s/32 dev gre1", n.overlay),
		"link set gre1 up",
		"route add 10.0.0.0/24 dev gre1",
	}
	for _, o := range smokeNodes {
		if o.name != n.name {
			cmds = append(cmds, fmt.Sprintf("neigh replace %s lladdr %s dev gre1 nud permanent", o.overlay, o.nbma))
		}
	}
	return "ip -batch - <<'EOF'\n" + strings.Join(cmds, "\n") + "\nEOF"
}

// swanctlConf is a PSK IKEv2 connection protecting GRE between the node's
// own address and remote (%any on a responder) in transport mode.
func swanctlConf(local netip.Addr, remote string) string {
	return swanctlPSK(swanctlConn{name: "gre", local: local, remote: remote, id: local.String()}, "lab-smoke-not-a-secret")
}

// swanctlConn is one PSK IKEv2 connection that protects GRE in transport
// mode (AES-GCM, the proposals the FRR cloud pins too).
type swanctlConn struct {
	name   string
	local  netip.Addr
	remote string // an address, or %any to accept any peer
	id     string // the local identity; "" leaves charon's default
	// trap installs a trap policy: charon initiates to the destination of
	// the first packet (start_action = trap).
	trap bool
}

// swanctlPSK renders swanctl.conf: the connection and its PSK.
func swanctlPSK(c swanctlConn, psk string) string {
	id, trap := "", ""
	if c.id != "" {
		id = "\n\t\t\tid = " + c.id
	}
	if c.trap {
		trap = "\n\t\t\t\tstart_action = trap"
	}
	return fmt.Sprintf(`connections {
	%[1]s {
		version = 2
		local_addrs = %[2]s
		remote_addrs = %[3]s
		proposals = %[4]s
		mobike = no
		local {
			auth = psk%[5]s
		}
		remote {
			auth = psk
		}
		children {
			gre {
				mode = transport
				local_ts = dynamic[gre]
				remote_ts = dynamic[gre]
				esp_proposals = %[6]s%[7]s
			}
		}
	}
}
secrets {
	ike-%[1]s {
		secret = %[8]q
	}
}
`, c.name, c.local, c.remote, frrIKEProposal, id, frrESPProposal, trap, psk)
}

// pingAll checks the overlay between every ordered pair.
func pingAll(ctx context.Context, l *lab.Lab) error {
	for _, a := range smokeNodes {
		for _, b := range smokeNodes {
			if a.name == b.name {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := l.Node(a.name).WaitPing(pctx, b.overlay)
			cancel()
			if err != nil {
				return fmt.Errorf("%s -> %s: %w", a.name, b.name, err)
			}
		}
	}
	return nil
}

// errgroup runs functions concurrently and returns the first error.
type errgroup struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (g *errgroup) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, err)
			g.mu.Unlock()
		}
	}()
}

func (g *errgroup) Wait() error {
	g.wg.Wait()
	return errors.Join(g.errs...)
}

func TestSmoke(t *testing.T) {
	t0 := time.Now()
	l := lab.New(t, lab.Options{})
	boot := time.Since(t0)
	t1 := time.Now()
	step := func(name string, start time.Time) {
		t.Logf("timing: %-22s %v", name, time.Since(start).Round(time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	s := time.Now()
	l.Build(smokeTopology())
	step("topology", s)

	s = time.Now()
	for _, n := range smokeNodes {
		l.Node(n.name).MustRun(mgreCommands(n, 42))
	}
	if err := pingAll(ctx, l); err != nil {
		t.Fatalf("overlay pings: %v", err)
	}
	step("mgre + 6 pings", s)

	// IPsec between hub and s1 (lab.New has warmed up the ESP crypto).
	hub, s1 := l.Node("hub"), l.Node("s1")
	s = time.Now()
	// Both charons start (and load their configuration) concurrently.
	charons := make([]*lab.Charon, 2)
	var g errgroup
	for i, remote := range []string{"%any", smokeNodes[0].nbma.String()} {
		g.Go(func() error {
			c, err := l.Node(smokeNodes[i].name).StartCharon(ctx, lab.CharonConfig{Swanctl: swanctlConf(smokeNodes[i].nbma, remote)})
			if err != nil {
				return err
			}
			charons[i] = c
			_, err = c.Swanctl(ctx, "--load-all")
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	s1Charon := charons[1]
	step("charon x2 + load", s)
	s = time.Now()
	if _, err := s1Charon.Swanctl(ctx, "--initiate", "--child", "gre", "--timeout", "30"); err != nil {
		t.Fatal(err)
	}
	step("IKE initiate", s)

	s = time.Now()
	traffic := func(ctx context.Context) error { return hub.Ping(ctx, smokeNodes[1].overlay, 5) }
	if err := l.CheckESPOnUnderlay(ctx, "s1", "esp", 3, traffic); err != nil {
		t.Fatalf("with the SA up: %v", err)
	}
	step("ESP check", s)

	// Negative: without SAs and policies the same traffic is cleartext GRE,
	// and the check must say so.
	s = time.Now()
	for _, n := range []*lab.Node{hub, s1} {
		n.MustRun("ip xfrm state flush && ip xfrm policy flush")
	}
	err := l.CheckESPOnUnderlay(ctx, "s1", "cleartext", 3, traffic)
	if err == nil {
		t.Fatal("ESP check passed with the SAs flushed")
	}
	if !strings.Contains(err.Error(), "cleartext GRE") {
		t.Errorf("ESP check with SAs flushed: %v, want a cleartext GRE complaint", err)
	}
	t.Logf("negative ESP check failed as it must: %v", err)
	step("ESP negative", s)

	// Negative GRE checks: a missing neighbour entry, a wrong key.
	s = time.Now()
	l.Node("s1").MustRun("ip neigh del 10.0.0.3 dev gre1")
	if err := l.Node("s1").Ping(ctx, smokeNodes[2].overlay, 2); err == nil {
		t.Error("s1 -> s2 ping succeeded without a neighbour entry")
	}
	l.Node("s1").MustRun("ip neigh replace 10.0.0.3 lladdr 198.51.100.3 dev gre1 nud permanent")
	if err := l.Node("s1").WaitPing(ctx, smokeNodes[2].overlay); err != nil {
		t.Errorf("s1 -> s2 after restoring the neighbour: %v", err)
	}
	l.Node("s2").MustRun("ip tunnel change gre1 mode gre key 43 ttl 64 local 198.51.100.3")
	if err := l.Node("hub").Ping(ctx, smokeNodes[2].overlay, 2); err == nil {
		t.Error("hub -> s2 ping succeeded with mismatched GRE keys")
	}
	// and restoring the key restores the path, so the failure was the key.
	l.Node("s2").MustRun("ip tunnel change gre1 mode gre key 42 ttl 64 local 198.51.100.3")
	if err := l.Node("hub").WaitPing(ctx, smokeNodes[2].overlay); err != nil {
		t.Errorf("hub -> s2 after restoring the key: %v", err)
	}
	step("GRE negatives", s)

	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("scenario deadline hit")
	}
	t.Logf("timing: boot %v (%v), scenario %v, total %v",
		boot.Round(time.Millisecond), l.Timings, time.Since(t1).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}
