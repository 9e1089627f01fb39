package controller

import (
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// drain returns the events waiting on sub.
func drain(sub *api.Subscription) []api.Event {
	var out []api.Event
	for {
		select {
		case ev := <-sub.C():
			out = append(out, ev)
		default:
			return out
		}
	}
}

// brief keeps what an event test compares.
type brief struct {
	Kind   api.EventKind
	Level  string
	Peer   string
	NBMA   string
	Prefix string
	Reason string
}

func briefs(evs []api.Event) []brief {
	var out []brief
	for _, e := range evs {
		b := brief{Kind: e.Kind, Level: e.Level, Reason: e.Reason}
		if e.PeerTunnel.IsValid() {
			b.Peer = e.PeerTunnel.String()
		}
		if e.NBMA.IsValid() {
			b.NBMA = e.NBMA.String()
		}
		if e.Prefix.IsValid() {
			b.Prefix = e.Prefix.String()
		}
		out = append(out, b)
	}
	return out
}

// TestEventsOfAPhase3Run: the spoke's subscribers see its SA come up, its
// registration, the shortcut going up and, when idle, down, in that
// order; the hub's see the registration of the client; each is logged at
// info with the constant keys, the SA loss at warning.
func TestEventsOfAPhase3Run(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		core, logs := observer.New(zapcore.DebugLevel)
		sa := ipsectest.NewFake(nil)
		hub := hubWithLANs(t, netw, "")
		hubSub := hub.ctl.Subscribe()
		s1 := startSpoke(t, netw, 1, "", func(d *Deps) {
			d.Log = zap.New(core)
			d.IPsec = fakeIPsec{sa}
		})
		sub := s1.ctl.Subscribe()
		defer sub.Close()
		s2 := startSpoke(t, netw, 2, "")
		defer stopAll(t, s1, s2, hub)

		protectedShortcut(t, hub, s1, sa)
		sa.SetStatus("198.51.100.3", ipsec.StatusDown, netip.AddrPort{}, ipsec.ReasonIKEDeleted)
		time.Sleep(20 * time.Minute)
		synctest.Wait()

		var got []brief
		for _, b := range briefs(drain(sub)) {
			if b.Kind != api.EventRefusal { // counts depend on timing
				got = append(got, b)
			}
		}
		want := []brief{
			{Kind: api.EventSAUp, Level: "info", NBMA: "198.51.100.1"},
			{Kind: api.EventRegistration, Level: "info", Peer: "10.0.0.1", NBMA: "198.51.100.1", Reason: "registered"},
			{Kind: api.EventPeerUp, Level: "info", Peer: "10.0.0.3", NBMA: "198.51.100.3", Reason: got[2].Reason},
			{Kind: api.EventSAUp, Level: "info", NBMA: "198.51.100.3"},
			{Kind: api.EventShortcutUp, Level: "info", Peer: "10.0.0.3", NBMA: "198.51.100.3", Prefix: "192.168.2.0/24", Reason: "direct path confirmed"},
			{Kind: api.EventSADown, Level: "warn", NBMA: "198.51.100.3", Reason: ipsec.ReasonIKEDeleted},
		}
		if len(got) < len(want) {
			t.Fatalf("events %+v, want at least %+v", got, want)
		}
		if diff := cmp.Diff(want, got[:len(want)]); diff != "" {
			t.Errorf("spoke events (-want +got):\n%s", diff)
		}
		kinds := map[api.EventKind]bool{}
		for _, b := range got[len(want):] {
			kinds[b.Kind] = true
		}
		if !kinds[api.EventShortcutDown] {
			t.Errorf("no shortcut-down after the SA went and traffic stopped: %+v", got[len(want):])
		}
		hubGot := briefs(drain(hubSub))
		found := false
		for _, b := range hubGot {
			found = found || (b.Kind == api.EventRegistration && b.Peer == "10.0.0.2" && b.NBMA == "198.51.100.2")
		}
		if !found {
			t.Errorf("hub events lack s1's registration: %+v", hubGot)
		}

		regs := logs.FilterMessage("registration").FilterField(zap.String("event", "registration")).All()
		if len(regs) == 0 || regs[0].Level != zapcore.InfoLevel || regs[0].ContextMap()["nbma"] != "198.51.100.1" {
			t.Errorf("registration log = %+v", regs)
		}
		downs := logs.FilterMessage("sa down").All()
		if len(downs) != 1 || downs[0].Level != zapcore.WarnLevel || downs[0].ContextMap()["reason"] != ipsec.ReasonIKEDeleted {
			t.Errorf("sa down log = %+v", downs)
		}
		if n := len(s1.ctl.RecentEvents()); n < len(want) {
			t.Errorf("recent events: %d", n)
		}
	})
}

// tickClock returns a later time at every call.
type tickClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tickClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// TestEventOrder: events emitted from several goroutines (the loop and the
// metrics publisher) reach a subscriber in the order of their times, as
// dmvpnctl monitor shows them.
func TestEventOrder(t *testing.T) {
	c := &Controller{deps: Deps{Clock: &tickClock{t: time.Unix(1700000000, 0)}}, log: zap.NewNop(),
		events: api.NewBroker(4000, 0)}
	sub := c.Subscribe()
	defer sub.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				c.event(api.Event{Kind: api.EventRefusal, Reason: "test"})
			}
		})
	}
	wg.Wait()
	evs := drain(sub)
	if len(evs) != 2000 {
		t.Fatalf("%d events, want 2000", len(evs))
	}
	for i := 1; i < len(evs); i++ {
		if !evs[i].Time.After(evs[i-1].Time) {
			t.Fatalf("event %d at %v published after one at %v", i, evs[i].Time, evs[i-1].Time)
		}
	}
}
