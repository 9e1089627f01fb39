package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// nhsState returns the state of n's registration with the NHS at nbma.
func nhsState(t *testing.T, n *node, nbma netip.Addr) api.NHSState {
	t.Helper()
	nhss, err := n.ctl.NHS(context.Background())
	if err != nil {
		t.Fatalf("%s: NHS: %v", n.name, err)
	}
	for _, s := range nhss {
		if s.NBMA == nbma {
			return s.State
		}
	}
	t.Fatalf("%s: no NHS %s in %+v", n.name, nbma, nhss)
	return ""
}

// TestRegistersWhenSAComesUp runs a hub and a spoke with IPsec on, whose
// SA with the hub comes up only after a while: the registrations sent
// meanwhile are dropped (nhrp_drop_send_no_sa) and the engine's retry backs off
// (1 s doubling), yet the spoke registers within a second of the SA (here
// at once, in virtual time), not at the next retry. Seen in the lab: the
// spoke waited 29 s for the backoff after its SA was up.
func TestRegistersWhenSAComesUp(t *testing.T) {
	hubNBMA := netip.MustParseAddr("198.51.100.1")
	for _, tc := range []struct {
		name    string
		saAfter time.Duration // from the start to the SA
		retry   time.Duration // the backed-off retry then due, from the start
	}{
		{"sa after 20 s", 20 * time.Second, 31 * time.Second},
		{"sa after 40 s", 40 * time.Second, 63 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				netw := kerneltest.NewNetwork()
				fake := ipsectest.NewFake(nil)
				t0 := time.Now()
				hub := start(t, netw, "hub", hubYAML(hubNBMA.String(), "10.0.0.1/24"), nil)
				spoke := start(t, netw, "spoke", spokeYAML("198.51.100.2", "10.0.0.2/24", hubNBMA.String(), "10.0.0.1"), nil,
					func(d *Deps) { d.IPsec = fakeIPsec{fake} })
				defer stopAll(t, spoke, hub)

				time.Sleep(tc.saAfter)
				synctest.Wait()
				if st := nhsState(t, spoke, hubNBMA); st == api.NHSResponding {
					t.Fatalf("registered without an SA (%s)", st)
				}
				cs, err := spoke.ctl.Counters(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				noSA := "nhrp_" + engine.DropSendNoSA.Counter()
				if cs[noSA] < 3 {
					t.Fatalf("%s %d before the SA, want the registration and its retries dropped", noSA, cs[noSA])
				}

				if !fake.SetStatus(hubNBMA.String(), ipsec.StatusUp, netip.AddrPortFrom(hubNBMA, 500), "") {
					t.Fatalf("the spoke does not want an SA with the hub: %s", fake.Text())
				}
				up := time.Now()
				synctest.Wait()
				if st := nhsState(t, spoke, hubNBMA); st != api.NHSResponding {
					t.Fatalf("NHS %s right after the SA came up at %v, want %s (the next retry is due at %v)",
						st, up.Sub(t0), api.NHSResponding, tc.retry)
				}
				if d := time.Since(up); d > time.Second {
					t.Errorf("registered %v after the SA, want within a second", d)
				}
				if !hub.has("neigh 10.0.0.2", "198.51.100.2") {
					t.Errorf("hub has no neighbor entry for the spoke; state:\n%s", hub.kernel.Render())
				}
			})
		})
	}
}

// TestKickProtected follows the packets a spoke with two hubs sends to
// them as IPsec events arrive (its registrations are never answered
// here): every address that became protected since the engine was last
// told is resent to at once, also one whose own event was lost (the ipsec
// manager drops events for a slow reader) and one a received packet
// already synchronised before its event; an event that changes nothing
// (a repeated Up) sends nothing.
func TestKickProtected(t *testing.T) {
	hub1, hub2 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.11")
	for _, tc := range []struct {
		name string
		// Steps, each "<action> <hub1|hub2>": up, down (the SA's status
		// changes, with its event), silent (the SA comes up, its event is
		// lost), packet (the SA comes up and a received packet syncs the
		// protections before its event), event (an Up event alone).
		steps []string
		want  []string // packets sent to each hub after each step
	}{
		{"sa up", []string{"up hub1"}, []string{"1 0"}},
		{"synced by a packet before its event", []string{"packet hub1", "up hub1"}, []string{"1 0", "1 0"}},
		{"up, down, up", []string{"up hub1", "down hub1", "up hub1"}, []string{"1 0", "1 0", "2 0"}},
		{"repeated up event", []string{"up hub1", "event hub1"}, []string{"1 0", "1 0"}},
		{"event of another sa lost", []string{"silent hub2", "up hub1"}, []string{"0 0", "1 1"}},
		{"both up, one event each", []string{"up hub1", "up hub2"}, []string{"1 0", "1 1"}},
		{"down only", []string{"down hub1"}, []string{"0 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fake, rc := engineOnly(t, spokeYAML("198.51.100.2", "10.0.0.2/24", hub1.String(), "10.0.0.1", hub2.String(), "10.0.0.11"), nil)
			c.eng.Start() // the first registrations: no SA yet
			if err := fake.SetPeers([]ipsec.Peer{{RemoteNBMA: hub1, Initiate: ipsec.Initiate}, {RemoteNBMA: hub2, Initiate: ipsec.Initiate}}); err != nil {
				t.Fatal(err)
			}
			sent := func() string {
				n := map[netip.Addr]int{}
				for _, a := range rc.sent {
					n[a]++
				}
				return fmt.Sprintf("%d %d", n[hub1], n[hub2])
			}
			var got []string
			for _, step := range tc.steps {
				action, name, _ := strings.Cut(step, " ")
				hub := map[string]netip.Addr{"hub1": hub1, "hub2": hub2}[name]
				status := ipsec.StatusUp
				if action == "down" {
					status = ipsec.StatusDown
				}
				if action != "event" && !fake.SetStatus(hub.String(), status, netip.AddrPortFrom(hub, 500), "") {
					t.Fatalf("fake: %s not wanted", hub)
				}
				switch action {
				case "up", "down", "event":
					c.onIPsecEvent(ipsec.Event{Peer: hub.String(), Status: status})
				case "packet":
					c.syncProtections()
					if !c.eng.Proven(hub) {
						t.Fatalf("%s not proven with its SA up", hub)
					}
				}
				got = append(got, sent())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("packets to hub1 and hub2 after each of %q (-want +got):\n%s", tc.steps, diff)
			}
		})
	}
}
