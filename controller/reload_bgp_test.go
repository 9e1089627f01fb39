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

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/routing"
)

// blockingBGP is a speaker whose Reconfigure, once armed, signals entered
// and waits for release, as GoBGP's loop does when it is busy.
type blockingBGP struct {
	stubBGP
	entered chan struct{}
	release chan struct{}
}

func (b *blockingBGP) Reconfigure(ctx context.Context, cfg routing.Config) error {
	if b.entered != nil {
		close(b.entered)
		b.entered = nil
		<-b.release
	}
	return b.stubBGP.Reconfigure(ctx, cfg)
}

// startBGPSpoke starts a spoke running the BGP speaker sp and returns it
// with a configuration a reload applies on both sides: the speaker
// originates one more prefix, the tunnel's MTU changes.
func startBGPSpoke(t *testing.T, netw *kerneltest.Network, sp BGP) (*node, string) {
	y := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1") + spokeBGP
	n := start(t, netw, "s1", y, nil, func(d *Deps) {
		d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return sp, nil }
	})
	next := strings.Replace(y, "key: 42,", "key: 42, mtu: 1300,", 1)
	return n, strings.Replace(next, "prefixes: [192.168.1.0/24]", "prefixes: [192.168.1.0/24, 192.168.5.0/24]", 1)
}

// TestReloadBGPOffTheLoop: while the speaker is busy in a reload's
// Reconfigure, the controller's loop keeps answering (a ping, the status,
// the NHS list) and the NHS registration is kept; the reload's loop-side
// change (the tunnel MTU) is applied only after the speaker took the
// change.
func TestReloadBGPOffTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24"), nil)
		sp := &blockingBGP{entered: make(chan struct{}), release: make(chan struct{})}
		entered := sp.entered
		s1, next := startBGPSpoke(t, netw, sp)
		defer stopAll(t, s1, hub)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		ctx := context.Background()
		base := len(s1.kernel.Ops())

		reloaded := make(chan error, 1)
		go func() { reloaded <- s1.ctl.Reload(ctx, parseConfig(t, next)) }()
		<-entered
		var releaseOnce sync.Once
		release := func() { releaseOnce.Do(func() { close(sp.release) }) }
		defer release() // a failed check must not leave the reload blocked

		// The speaker is blocked; the loop serves (a loop blocked with it
		// would let these calls' deadlines pass).
		time.Sleep(30 * time.Second)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s1.ctl.Ping(ctx); err != nil {
			t.Fatalf("Ping while BGP reconfigures: %v", err)
		}
		if st, err := s1.ctl.Status(ctx); err != nil || st.State == "starting" {
			t.Errorf("Status while BGP reconfigures: %+v, %v; want an answer from a running node", st, err)
		}
		nhs, err := s1.ctl.NHS(ctx)
		if err != nil || len(nhs) != 1 || nhs[0].State != "responding" {
			t.Errorf("NHS while BGP reconfigures: %+v, %v; want the hub responding", nhs, err)
		}
		if ops := s1.kernel.Ops()[base:]; slices.Contains(ops, "modify tunnel gre1") {
			t.Errorf("tunnel modified before the speaker took the reload: %q", ops)
		}
		select {
		case err := <-reloaded:
			t.Fatalf("Reload returned %v while the speaker was still busy", err)
		default:
		}

		release()
		if err := <-reloaded; err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if !s1.has("tunnel gre1", "mtu 1300") {
			t.Errorf("tunnel MTU not applied after the speaker took the reload:\n%s", s1.kernel.Render())
		}
		got, n := sp.lastConfig()
		if n != 1 || !slices.Contains(got.Originated(), netip.MustParsePrefix("192.168.5.0/24")) {
			t.Errorf("speaker configuration after the reload: %d calls, originates %v; want one call with 192.168.5.0/24", n, got.Originated())
		}
	})
}

// TestReloadBGPFailureAppliesNothingElse: a reload the speaker refuses
// applies nothing on the loop (the tunnel keeps its MTU, and the same
// reload later applies in full); a reload whose loop-side part fails after
// the speaker took it (the kernel refuses the tunnel change) hands the
// speaker its previous configuration back.
func TestReloadBGPFailureAppliesNothingElse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &stubBGP{}
		s1, next := startBGPSpoke(t, kerneltest.NewNetwork(), sp)
		defer stopAll(t, s1)
		time.Sleep(time.Second)
		synctest.Wait()
		ctx := context.Background()
		base := len(s1.kernel.Ops())

		sp.prefixErr = errInjected
		if err := s1.ctl.Reload(ctx, parseConfig(t, next)); !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), "controller: reload: ") {
			t.Errorf("Reload refused by the speaker = %v; want its error", err)
		}
		if ops := s1.kernel.Ops()[base:]; len(ops) != 0 || s1.has("tunnel gre1", "mtu 1300") {
			t.Errorf("a reload the speaker refused changed the kernel: %q\n%s", ops, s1.kernel.Render())
		}

		sp.prefixErr = nil
		s1.kernel.FailNext("EnsureTunnel", errInjected)
		if err := s1.ctl.Reload(ctx, parseConfig(t, next)); !errors.Is(err, errInjected) {
			t.Errorf("Reload refused by the kernel = %v; want the kernel's error", err)
		}
		var origs [][]netip.Prefix
		sp.mu.Lock()
		for _, c := range sp.configs {
			origs = append(origs, c.Originated())
		}
		sp.mu.Unlock()
		want := [][]netip.Prefix{
			{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("192.168.5.0/24")},
			{netip.MustParsePrefix("192.168.1.0/24")},
		}
		if d := cmp.Diff(want, origs, cmpopts.EquateComparable(netip.Prefix{})); d != "" {
			t.Errorf("speaker configurations (originated prefixes) of a reload the kernel refused (-want +got):\n%s", d)
		}

		if err := s1.ctl.Reload(ctx, parseConfig(t, next)); err != nil {
			t.Fatalf("Reload once the kernel and the speaker accept: %v", err)
		}
		if !s1.has("tunnel gre1", "mtu 1300") {
			t.Errorf("the reload the speaker refused earlier did not apply now:\n%s", s1.kernel.Render())
		}
		if _, n := sp.lastConfig(); n != 3 {
			t.Errorf("speaker reconfigured %d times; want 3 (new, restored, new)", n)
		}
	})
}

// credsRefused is the IPsec fake refusing SetCredentials while err is set.
type credsRefused struct {
	fakeIPsec
	mu  sync.Mutex
	err error
}

func (c *credsRefused) SetCredentials(auth ipsec.Auth, ike, esp []string) error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.fakeIPsec.SetCredentials(auth, ike, esp)
}

func (c *credsRefused) refuse(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// TestReloadUndoesTunnelWhenCredentialsRefused: a reload that changes the
// tunnel and the IPsec proposals, refused by the IPsec side after the
// tunnel was adjusted, leaves the tunnel as the running configuration has
// it; the same reload applies once the IPsec side accepts.
func TestReloadUndoesTunnelWhenCredentialsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		y := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1") +
			"ipsec: {enabled: true, auth: {method: psk, psk: one-secret}, proposals: {ike: [aes256-sha256-modp2048]}}\n"
		sa := &credsRefused{fakeIPsec: fakeIPsec{ipsectest.NewFake(nil)}}
		s1 := start(t, kerneltest.NewNetwork(), "s1", y, nil, func(d *Deps) { d.IPsec = sa })
		defer stopAll(t, s1)
		time.Sleep(time.Second)
		synctest.Wait()
		ctx := context.Background()
		next := strings.Replace(strings.Replace(y, "key: 42,", "key: 42, mtu: 1300,", 1),
			"aes256-sha256-modp2048", "aes256gcm16-prfsha384-ecp384", 1)

		sa.refuse(errInjected)
		if err := s1.ctl.Reload(ctx, parseConfig(t, next)); !errors.Is(err, errInjected) {
			t.Fatalf("Reload refused by the IPsec side = %v; want its error", err)
		}
		if s1.has("tunnel gre1", "mtu 1300") {
			t.Errorf("a reload the IPsec side refused left the new MTU:\n%s", s1.kernel.Render())
		}
		if ups := sa.CredentialUpdates(); len(ups) != 0 {
			t.Errorf("credential updates after a refused reload: %+v", ups)
		}

		sa.refuse(nil)
		if err := s1.ctl.Reload(ctx, parseConfig(t, next)); err != nil {
			t.Fatalf("Reload once the IPsec side accepts: %v", err)
		}
		if !s1.has("tunnel gre1", "mtu 1300") {
			t.Errorf("the reload refused earlier did not apply now:\n%s", s1.kernel.Render())
		}
		if ups := sa.CredentialUpdates(); len(ups) != 1 || !slices.Equal(ups[0].IKE, []string{"aes256gcm16-prfsha384-ecp384"}) {
			t.Errorf("credential updates %+v; want one with the new IKE proposal", ups)
		}
	})
}
