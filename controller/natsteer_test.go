package controller

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// recordSteer records the NAT steering the controller sets.
type recordSteer struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordSteer) Set(local netip.Addr, want []kernel.NATSteer) error {
	s := "set " + local.String()
	for _, w := range want {
		s += fmt.Sprintf(" [%s=%s via %s in %#x out %#x reqid %d]", w.GRE, w.Inner, w.Outer, w.MarkIn, w.MarkOut, w.ReqID)
	}
	record(&r.mu, &r.calls, s)
	return nil
}

func (r *recordSteer) Remove() error {
	record(&r.mu, &r.calls, "remove")
	return nil
}

func (r *recordSteer) last() (string, int) { return latest(&r.mu, &r.calls) }

// gatedIPsec reports charon as not connected until connected is set.
type gatedIPsec struct {
	fakeIPsec
	connected *atomic.Bool
}

func (g gatedIPsec) State() ipsec.State {
	st := g.fakeIPsec.State()
	st.Connected = g.connected.Load()
	return st
}

// natSA is a NATed spoke's SA on the hub's responder connection: tunnel
// mode, inner address inner, from the NAT's public address outer, with
// marks (ipsec.Config.MarkNAT).
func natSA(id, inner, outer string, mark uint32) ipsec.SAInfo {
	return ipsec.SAInfo{
		Conn: "dmvpn-responder", UniqueID: id, State: "ESTABLISHED",
		Remote: netip.AddrPortFrom(netip.MustParseAddr(outer), 4500), RemoteID: inner, NATRemote: true,
		Children: []ipsec.ChildInfo{{Name: "gre-nat", State: "INSTALLED", Mode: "TUNNEL", ReqID: mark,
			RemoteTS: []string{inner + "/32[gre]"}, MarkIn: mark, MarkOut: mark + 1}},
	}
}

// TestNATSteering: a hub whose charon holds two marked NAT SAs with one
// private NBMA steers GRE to the first by that address and to the second
// by an alias, and the engine takes NHRP from both; before charon has been
// listed the controller leaves the kernel's steering alone (a restarted
// dmvpnd must not cut the NATed spokes off).
func TestNATSteering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		f := ipsectest.NewFake(nil)
		f.AddUnattributed(natSA("1", "192.168.2.2", "203.0.113.1", 0x10))
		f.AddUnattributed(natSA("2", "192.168.2.2", "203.0.113.2", 0x20))
		connected := &atomic.Bool{}
		steer := &recordSteer{}
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24")+ipsecYAML, nil,
			func(d *Deps) { d.IPsec, d.NATSteer = gatedIPsec{fakeIPsec{f}, connected}, steer })
		defer stopAll(t, hub)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got, n := steer.last(); n != 0 {
			t.Errorf("steering set before charon was listed: %q", got)
		}
		connected.Store(true)
		f.AddUnattributed(natSA("3", "192.168.3.3", "203.0.113.1", 0x30)) // a new snapshot
		time.Sleep(resyncInterval)
		synctest.Wait()
		want := "set 198.51.100.1 [192.168.2.2=192.168.2.2 via 203.0.113.1 in 0x10 out 0x11 reqid 16]" +
			" [192.168.3.3=192.168.3.3 via 203.0.113.1 in 0x30 out 0x31 reqid 48]" +
			" [198.18.0.1=192.168.2.2 via 203.0.113.2 in 0x20 out 0x21 reqid 32]"
		if got, _ := steer.last(); got != want {
			t.Errorf("steering:\n%s\nwant:\n%s", got, want)
		}
		var proven []bool
		if err := hub.ctl.run(t.Context(), func() {
			for _, a := range []string{"192.168.2.2", "198.18.0.1", "192.168.3.3"} {
				proven = append(proven, hub.ctl.eng.Proven(netip.MustParseAddr(a)))
			}
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(proven) != "[true true true]" {
			t.Errorf("engine proves 192.168.2.2, its alias, 192.168.3.3: %v, want all", proven)
		}
	})
}
