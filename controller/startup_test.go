package controller

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
)

// errInjected is the failure the test fakes below return.
var errInjected = errors.New("injected failure")

// refusingGuard is a guard the kernel refuses to install.
type refusingGuard struct{ kerneltest.Guard }

func (*refusingGuard) Install(netip.Addr, kernel.SourceBinding) error { return errInjected }

// deafMisses is a neighbor miss source that cannot subscribe.
type deafMisses struct{}

func (deafMisses) WatchMisses(context.Context) (<-chan kernel.Miss, error) { return nil, errInjected }

// deafHairpins installs the trigger but cannot open its NFLOG source.
type deafHairpins struct{ trigger Hairpins }

func (d deafHairpins) Install(ifindex int) error { return d.trigger.Install(ifindex) }
func (d deafHairpins) Remove() error             { return d.trigger.Remove() }

func (deafHairpins) Hairpins(context.Context) (<-chan kernel.Hairpin, error) { return nil, errInjected }

// refusingIPsec is a strongSwan side that refuses every desired peer set.
type refusingIPsec struct{ fakeIPsec }

func (refusingIPsec) SetPeers([]ipsec.Peer) error { return errInjected }

// stubBGP is a BGP speaker whose Start and SetPrefixes fail on demand and
// whose summary the test sets (setSummary), as GoBGP's sessions move.
type stubBGP struct {
	prefixRecorder
	startErr, prefixErr error

	sumMu  sync.Mutex
	sum    []routing.NeighborSummary
	sumErr error
}

func (s *stubBGP) setSummary(sum []routing.NeighborSummary, err error) {
	s.sumMu.Lock()
	defer s.sumMu.Unlock()
	s.sum, s.sumErr = sum, err
}

func (s *stubBGP) Summary(context.Context) ([]routing.NeighborSummary, error) {
	s.sumMu.Lock()
	defer s.sumMu.Unlock()
	return slices.Clone(s.sum), s.sumErr
}

func (s *stubBGP) Start(context.Context) error { return s.startErr }
func (s *stubBGP) Reconfigure(ctx context.Context, cfg routing.Config) error {
	if s.prefixErr != nil {
		return s.prefixErr
	}
	return s.prefixRecorder.Reconfigure(ctx, cfg)
}

func (s *stubBGP) SetPrefixes(ctx context.Context, p []netip.Prefix) error {
	if s.prefixErr != nil {
		return s.prefixErr
	}
	return s.prefixRecorder.SetPrefixes(ctx, p)
}

const spokeBGP = "bgp: {enabled: true, asn: 65000, neighbors: [{address: 10.0.0.1}], prefixes: [192.168.1.0/24]}\n"

// TestRunFailsOnStartupErrors: a node whose kernel, sockets, IPsec or BGP
// side fails while starting stops with that error (wrapped, prefixed
// "controller:") instead of running half set up, and undoes what it had
// already started (the hairpin trigger, the multicast capture).
func TestRunFailsOnStartupErrors(t *testing.T) {
	hub := hubYAML("198.51.100.1", "10.0.0.1/24")
	spoke := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")
	for _, tc := range []struct {
		name string
		yaml string
		mod  func(*Deps)
		// after checks what the failed run left.
		after func(t *testing.T, n *node)
	}{
		{name: "tunnel refused", yaml: spoke, mod: func(d *Deps) {
			d.Dataplane.(*kerneltest.Fake).FailNext("EnsureTunnel", errInjected)
		}},
		{name: "guard refused", yaml: spoke, mod: func(d *Deps) {
			d.Guard = &refusingGuard{}
			d.IPsec = fakeIPsec{ipsectest.NewFake(nil)}
		}},
		{name: "NHRP socket", yaml: spoke, mod: func(d *Deps) {
			d.Listen = func(int) (kernel.PacketConn, error) { return nil, errInjected }
		}},
		{name: "miss watcher", yaml: spoke, mod: func(d *Deps) { d.Misses = deafMisses{} }},
		{name: "hairpin trigger refused", yaml: hub, mod: func(d *Deps) {
			d.Dataplane.(*kerneltest.Fake).FailNext("Install", errInjected)
		}},
		{name: "hairpin source", yaml: hub, mod: func(d *Deps) { d.Hairpins = deafHairpins{d.Hairpins} },
			after: func(t *testing.T, n *node) {
				if ops := strings.Join(n.kernel.Ops(), "\n"); !strings.Contains(ops, "remove hairpin") {
					t.Errorf("hairpin trigger left installed; kernel operations:\n%s", ops)
				}
			}},
		{name: "ipsec peers refused", yaml: spoke, mod: func(d *Deps) {
			d.IPsec = refusingIPsec{fakeIPsec{ipsectest.NewFake(nil)}}
		}},
		{name: "bgp speaker not built", yaml: spoke + spokeBGP, mod: func(d *Deps) {
			d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return nil, errInjected }
		}},
		{name: "bgp speaker not started", yaml: spoke + spokeBGP, mod: func(d *Deps) {
			d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return &stubBGP{startErr: errInjected}, nil }
		}},
		{name: "bgp prefixes refused", yaml: spoke + spokeBGP, mod: func(d *Deps) {
			d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return &stubBGP{prefixErr: errInjected}, nil }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := start(t, kerneltest.NewNetwork(), "node", tc.yaml, nil, tc.mod)
				var err error
				select {
				case err = <-n.done:
				case <-time.After(time.Minute):
					n.cancel()
					t.Fatalf("Run kept running; want it to fail with %v", errInjected)
				}
				n.cancel()
				if !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), "controller: ") {
					t.Errorf("Run = %v; want the injected failure, prefixed controller:", err)
				}
				select {
				case <-n.ctl.Ready():
					t.Error("Ready closed although Run failed")
				default:
				}
				if tc.after != nil {
					tc.after(t, n)
				}
			})
		})
	}
}

// TestNewRefusesIncompleteDeps: New needs the dataplane, the NHRP socket
// and a clock, and refuses a metrics registry that already exports the
// counters it would register (two controllers on one registry).
func TestNewRefusesIncompleteDeps(t *testing.T) {
	cfg := parseConfig(t, hubYAML("198.51.100.1", "10.0.0.1/24"))
	k := kerneltest.New()
	full := Deps{Dataplane: k, Misses: k, Clock: wallClock{},
		Listen: func(int) (kernel.PacketConn, error) { return &recordConn{}, nil }}
	for _, tc := range []struct {
		name string
		mod  func(*Deps)
	}{
		{"no dataplane", func(d *Deps) { d.Dataplane = nil }},
		{"no socket", func(d *Deps) { d.Listen = nil }},
		{"no clock", func(d *Deps) { d.Clock = nil }},
	} {
		d := full
		tc.mod(&d)
		if _, err := New(cfg, d); err == nil || !strings.Contains(err.Error(), "required") {
			t.Errorf("%s: New = %v; want a refusal naming what is required", tc.name, err)
		}
	}

	m := metrics.New("test")
	shared := full
	shared.Metrics = m
	shared.Guard, shared.IPsec = &kerneltest.Guard{}, fakeIPsec{ipsectest.NewFake(nil)}
	if _, err := New(cfg, shared); err != nil {
		t.Fatalf("first controller: %v", err)
	}
	if _, err := New(cfg, shared); err == nil || !strings.HasPrefix(err.Error(), "controller: ") {
		t.Errorf("second controller on the same registry: %v; want the duplicate collector refused", err)
	}
}

// TestReadyAndPing: Ready closes once the loop runs and Ping answers from
// the loop (the systemd watchdog); before Run, Ping waits until its
// context ends. Status names the build it runs.
func TestReadyAndPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := start(t, kerneltest.NewNetwork(), "hub", hubYAML("198.51.100.1", "10.0.0.1/24"), nil,
			func(d *Deps) { d.Version = "v1.2.3-4-gabcdef0" })
		defer n.stop(t)
		select {
		case <-n.ctl.Ready():
		case <-time.After(time.Minute):
			t.Fatal("Ready not closed a minute after Run")
		}
		if st, err := n.ctl.Status(context.Background()); err != nil || st.Version != "v1.2.3-4-gabcdef0" {
			t.Errorf("Status = %+v, %v; want version v1.2.3-4-gabcdef0", st, err)
		}
		if err := n.ctl.Ping(context.Background()); err != nil {
			t.Errorf("Ping on a running loop: %v", err)
		}

		idle, err := New(n.cfg, Deps{Dataplane: kerneltest.New(), Clock: wallClock{},
			Listen: func(int) (kernel.PacketConn, error) { return &recordConn{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := idle.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Ping before Run = %v; want the deadline exceeded", err)
		}
	})
}

// TestViewsBeforeRun: a control request that arrives before the loop runs
// (dmvpnctl during start-up) is answered within seconds: status says
// "starting" and why, the other views fail with the reason instead of
// hanging.
func TestViewsBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := kerneltest.New()
		ctl, err := New(parseConfig(t, hubYAML("198.51.100.1", "10.0.0.1/24")), Deps{Dataplane: k, Misses: k, Clock: wallClock{},
			Listen: func(int) (kernel.PacketConn, error) { return &recordConn{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		st, err := ctl.Status(ctx)
		if err != nil || st.State != "starting" || st.Ready || st.Reason != errNotRunning.Error() {
			t.Errorf("Status before Run = %+v, %v; want starting, not running yet", st, err)
		}
		views := map[string]func() error{
			"counters":  func() error { _, err := ctl.Counters(ctx); return err },
			"nhs":       func() error { _, err := ctl.NHS(ctx); return err },
			"cache":     func() error { _, err := ctl.Cache(ctx); return err },
			"shortcuts": func() error { _, err := ctl.Shortcuts(ctx); return err },
			"dmvpn":     func() error { _, err := ctl.DMVPN(ctx); return err },
			"bgp":       func() error { _, err := ctl.BGP(ctx); return err },
		}
		for name, view := range views {
			begin := time.Now()
			if err := view(); !errors.Is(err, errNotRunning) {
				t.Errorf("%s before Run = %v; want %v", name, err, errNotRunning)
			}
			if d := time.Since(begin); d > 10*time.Second {
				t.Errorf("%s before Run answered after %v", name, d)
			}
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := ctl.Cache(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("Cache with an ended context = %v; want context.Canceled", err)
		}
	})
}
