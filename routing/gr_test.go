package routing_test

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
)

// grSpokeEnv makes TestGracefulRestartSpokeProcess run a spoke, in a child
// process of TestIntegrationGracefulRestart, until it is killed. Its value
// is "hub-addr:port prefix...".
const grSpokeEnv = "DMVPND_TEST_GR_SPOKE"

func withGracefulRestart(c *routing.Config) {
	// Restart and stale times well beyond the test's duration: what removes
	// a route here is only the restarted spoke's End-of-RIB.
	c.GracefulRestart = routing.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second, StaleTime: 120 * time.Second}
}

// startGRHub starts a reflecting hub with graceful restart on a free port
// and returns it with the address spokes peer with.
func startGRHub(t *testing.T) (*node, netip.AddrPort) {
	t.Helper()
	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	withGracefulRestart(&hcfg)
	return startNode(t, "hub", hcfg), netip.AddrPortFrom(hubAddr, uint16(port))
}

// TestGracefulRestartSpokeProcess is the spoke of
// TestIntegrationGracefulRestart. It runs only in the child process the
// test starts, and blocks until that process is killed.
func TestGracefulRestartSpokeProcess(t *testing.T) {
	spec := os.Getenv(grSpokeEnv)
	if spec == "" {
		t.Skip("helper process of TestIntegrationGracefulRestart")
	}
	f := strings.Fields(spec)
	hub := netip.MustParseAddrPort(f[0])
	cfg := spokeConfig(0, []netip.AddrPort{hub}, hubAS, hubAS)
	cfg.Prefixes = nil
	for _, p := range f[1:] {
		cfg.Prefixes = append(cfg.Prefixes, pfx(p))
	}
	withGracefulRestart(&cfg)
	lc := zap.NewDevelopmentConfig()
	lc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	sp, err := routing.NewSpeaker(cfg, routing.WithLogger(zap.Must(lc.Build())))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The parent never closes stdin; it kills this process.
	_, _ = io.Copy(io.Discard, os.Stdin)
	t.Fatal("stdin closed: the parent test ended without killing the spoke")
}

// spokeProcess is a spoke speaker in a child process, so that it can be
// killed with SIGKILL: the kernel closes its BGP session without a
// NOTIFICATION, as for a crashed or kill -9'ed dmvpnd. GoBGP offers no way
// to do that in process: BgpServer.Stop and StopBgp delete every neighbor
// with Cease/peer-deconfigured (pkg/server/server.go StopBgp,
// deleteNeighbor), and the peer ends graceful restart on a Cease.
type spokeProcess struct {
	cmd *exec.Cmd
	log string
}

func startSpokeProcess(t *testing.T, name string, hub netip.AddrPort, ps ...netip.Prefix) *spokeProcess {
	t.Helper()
	spec := []string{hub.String()}
	for _, p := range ps {
		spec = append(spec, p.String())
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGracefulRestartSpokeProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), grSpokeEnv+"="+strings.Join(spec, " "))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sp := &spokeProcess{cmd: cmd, log: logPath}
	t.Cleanup(func() {
		sp.kill()
		stdin.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s output:\n%s", name, out)
		}
	})
	return sp
}

// kill sends SIGKILL to the child (by its pid) and reaps it.
func (p *spokeProcess) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// waitRIB polls the node's RIB until ok holds.
func (n *node) waitRIB(ctx context.Context, t *testing.T, what string, ok func([]routing.RIBEntry) bool) []routing.RIBEntry {
	t.Helper()
	for {
		rib, err := n.sp.RIB(ctx)
		if err == nil && ok(rib) {
			return rib
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %s: RIB %+v, err %v: %v", n.name, what, rib, err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fromSpoke renders the RIB paths learned from a as "prefix stale=bool".
func fromSpoke(rib []routing.RIBEntry, a netip.Addr) []string {
	var out []string
	for _, e := range rib {
		if e.From == a {
			out = append(out, e.Prefix.String()+" stale="+map[bool]string{false: "no", true: "yes"}[e.Stale])
		}
	}
	return out
}

// TestIntegrationGracefulRestart (RFC 4724) with a hub and a spoke, both
// with graceful restart: the spoke's process is killed (SIGKILL: its
// session ends without a NOTIFICATION); the hub keeps the spoke's routes as
// stale, and neither its FIB nor another spoke's (it keeps reflecting
// them) ever withdraws them; the restarted spoke announces only one of its
// two prefixes; after its End-of-RIB that one is current again and the
// other is removed, on the hub and on the other spoke.
func TestIntegrationGracefulRestart(t *testing.T) {
	ctx := testCtx(t)
	hub, hubAP := startGRHub(t)
	spoke := spokeAddrs[0]
	kept, gone := spokeLAN(0), pfx("192.168.20.0/24")

	ocfg := spokeConfig(1, []netip.AddrPort{hubAP}, hubAS, hubAS)
	withGracefulRestart(&ocfg)
	other := startNode(t, "spoke1", ocfg)

	// What the hub and the other spoke install with both of the spoke's
	// routes, and with only the one the restarted spoke announces again.
	via := func(p netip.Prefix, a netip.Addr) string { return p.String() + " via " + a.String() }
	otherLAN, hubRoute := via(spokeLAN(1), spokeAddrs[1]), via(hubLAN, hubAddr)
	hubBoth := routesText(routing.DefaultRouteMetric, via(kept, spoke), via(gone, spoke), otherLAN)
	hubOnly := routesText(routing.DefaultRouteMetric, via(kept, spoke), otherLAN)
	otherBoth := routesText(routing.DefaultRouteMetric, via(kept, spoke), via(gone, spoke), hubRoute)
	otherOnly := routesText(routing.DefaultRouteMetric, via(kept, spoke), hubRoute)

	first := startSpokeProcess(t, "spoke-run1", hubAP, kept, gone)
	hub.waitEstablished(ctx, t, spoke)
	hub.waitRoutes(ctx, t, hubBoth)
	other.waitRoutes(ctx, t, otherBoth)
	hubInstalled := len(hub.sink.History()) - 1
	otherInstalled := len(other.sink.History()) - 1

	first.kill()
	hub.waitState(ctx, t, spoke, func(s routing.NeighborState) bool { return s != routing.StateEstablished })
	wantStale := []string{kept.String() + " stale=yes", gone.String() + " stale=yes"}
	hub.waitRIB(ctx, t, "spoke's paths kept as stale", func(rib []routing.RIBEntry) bool {
		return slices.Equal(fromSpoke(rib, spoke), wantStale)
	})
	// A window of several connect-retry and keepalive intervals with the
	// spoke gone, not a wait for state: nothing may change meanwhile.
	<-time.After(3 * time.Second)
	if got := hub.sink.String(); got != hubBoth {
		t.Fatalf("hub FIB while the spoke is down (-want +got):\n%s", cmp.Diff(hubBoth, got))
	}
	if got := other.sink.String(); got != otherBoth {
		t.Fatalf("other spoke's FIB while the spoke is down (-want +got):\n%s", cmp.Diff(otherBoth, got))
	}
	if rib, err := hub.sp.RIB(ctx); err != nil || !slices.Equal(fromSpoke(rib, spoke), wantStale) {
		t.Fatalf("hub RIB while the spoke is down: %+v, %v", rib, err)
	}

	startSpokeProcess(t, "spoke-run2", hubAP, kept)
	hub.waitState(ctx, t, spoke, func(s routing.NeighborState) bool { return s == routing.StateEstablished })
	hub.waitRoutes(ctx, t, hubOnly)
	other.waitRoutes(ctx, t, otherOnly)
	hub.waitRIB(ctx, t, "re-announced path current, the other one gone", func(rib []routing.RIBEntry) bool {
		return slices.Equal(fromSpoke(rib, spoke), []string{kept.String() + " stale=no"})
	})

	// Every route set the FIBs pushed since the spoke's routes were
	// installed: both routes throughout the restart, then only the one
	// announced again. No set without them, no flap.
	if diff := cmp.Diff([]string{hubBoth, hubOnly}, slices.Compact(hub.sink.History()[hubInstalled:])); diff != "" {
		t.Errorf("hub FIB history since installation (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{otherBoth, otherOnly}, slices.Compact(other.sink.History()[otherInstalled:])); diff != "" {
		t.Errorf("other spoke's FIB history since installation (-want +got):\n%s", diff)
	}
}

// TestIntegrationGracefulRestartCease: Speaker.Stop is not a graceful
// restart. GoBGP's StopBgp sends Cease/peer-deconfigured to every neighbor
// (pkg/server/server.go StopBgp, deleteNeighbor), and a received Cease
// ends graceful restart (pkg/server/fsm.go: only read/write failures, a
// hold timer expiry, or with RFC 8538 a Cease that is not a Hard Reset
// keep the routes; StopBgp's subcode is mapped to Hard Reset). So the hub
// withdraws a stopped spoke's routes at once although both have graceful
// restart: only a crash or kill -9 keeps them.
func TestIntegrationGracefulRestartCease(t *testing.T) {
	ctx := testCtx(t)
	hub, hubAP := startGRHub(t)
	scfg := spokeConfig(0, []netip.AddrPort{hubAP}, hubAS, hubAS)
	withGracefulRestart(&scfg)
	spoke := startNode(t, "spoke0", scfg)
	hub.waitRoutes(ctx, t, expectedHub(1, 2))
	if err := spoke.sp.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	hub.waitRoutes(ctx, t, "")
	hub.waitRIB(ctx, t, "no path of the stopped spoke", func(rib []routing.RIBEntry) bool {
		return len(fromSpoke(rib, spokeAddrs[0])) == 0
	})
}

// TestIntegrationGracefulStop: StopGraceful ends the sessions so that a
// neighbor keeps the routes as stale, as after a crash: the hub's FIB
// never withdraws the stopped spoke's routes; after the spoke's restart
// (announcing one of its two prefixes) the other one is removed.
func TestIntegrationGracefulStop(t *testing.T) {
	ctx := testCtx(t)
	hub, hubAP := startGRHub(t)
	kept, gone := spokeLAN(0), pfx("192.168.20.0/24")
	scfg := spokeConfig(0, []netip.AddrPort{hubAP}, hubAS, hubAS)
	scfg.Prefixes = []netip.Prefix{kept, gone}
	withGracefulRestart(&scfg)
	spoke := startNode(t, "spoke0", scfg)
	both := routesText(routing.DefaultRouteMetric, kept.String()+" via "+spokeAddrs[0].String(), gone.String()+" via "+spokeAddrs[0].String())
	only := routesText(routing.DefaultRouteMetric, kept.String()+" via "+spokeAddrs[0].String())
	hub.waitRoutes(ctx, t, both)
	installed := len(hub.sink.History()) - 1

	if err := spoke.sp.StopGraceful(ctx); err != nil {
		t.Fatalf("StopGraceful: %v", err)
	}
	hub.waitState(ctx, t, spokeAddrs[0], func(s routing.NeighborState) bool { return s != routing.StateEstablished })
	hub.waitRIB(ctx, t, "spoke's paths kept as stale", func(rib []routing.RIBEntry) bool {
		return slices.Equal(fromSpoke(rib, spokeAddrs[0]), []string{kept.String() + " stale=yes", gone.String() + " stale=yes"})
	})
	<-time.After(2 * time.Second) // a window with the spoke gone, not a wait for state
	if got := hub.sink.String(); got != both {
		t.Fatalf("hub FIB while the spoke is stopped (-want +got):\n%s", cmp.Diff(both, got))
	}

	if err := spoke.sp.SetPrefixes(ctx, nil); !errors.Is(err, routing.ErrNotRunning) {
		t.Fatalf("SetPrefixes on a stopped speaker: %v", err)
	}
	restarted := startNode(t, "spoke0-again", func() routing.Config { c := scfg; c.Prefixes = []netip.Prefix{kept}; return c }())
	restarted.waitEstablished(ctx, t, hubAddr)
	hub.waitRoutes(ctx, t, only)
	hub.waitRIB(ctx, t, "re-announced path current, the other one gone", func(rib []routing.RIBEntry) bool {
		return slices.Equal(fromSpoke(rib, spokeAddrs[0]), []string{kept.String() + " stale=no"})
	})
	if diff := cmp.Diff([]string{both, only}, slices.Compact(hub.sink.History()[installed:])); diff != "" {
		t.Errorf("hub FIB history since installation (-want +got):\n%s", diff)
	}
}
