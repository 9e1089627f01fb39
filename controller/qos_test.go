package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// fakeQoS is the kernel's QoS side: it keeps the last state it was given,
// rendered as text, and fails while fail is set.
type fakeQoS struct {
	mu    sync.Mutex
	state string
	calls int
	fail  error
}

func (f *fakeQoS) SetQoS(policies map[string]QoSPolicy, targets []QoSTarget) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return f.fail
	}
	f.state = renderQoS(policies, targets)
	return nil
}

// QoSStats implements QoS: this fake installs nothing it could count.
func (f *fakeQoS) QoSStats() ([]QoSTargetStats, error) { return nil, nil }

func (f *fakeQoS) get() (string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, f.calls
}

const qosGroupsYAML = `
qos:
  groups:
    branch-2m:
      rate: 2mbit
      burst: 15kb
      classes:
        - {name: voice, dscp: [ef], priority: true, rate: 500kbit}
        - {name: video, dscp: [af41], rate: 800kbit, ceil: 2mbit}
        - {name: default}
    branch-10m: {rate: 10mbit}
`

// branch2m is branch-2m for the kernel: the default class (no dscp) is
// the kernel's implicit one, not a class of the policy.
const branch2m = `policy branch-2m rate 2000000 burst 15360
  class voice dscp [46] priority true rate 500000 ceil 0
  class video dscp [34] priority false rate 800000 ceil 2000000
`

func TestDesiredQoS(t *testing.T) {
	a := netip.MustParseAddr
	entry := func(proto, nbma string, kind engine.BindingKind, group string) engine.CacheEntry {
		ce := engine.CacheEntry{Proto: a(proto), Kind: kind, Group: group}
		if nbma != "" {
			ce.NBMA = a(nbma)
		}
		return ce
	}
	hub := hubYAML("198.51.100.1", "10.0.0.1/24") + qosGroupsYAML
	spoke := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1", "198.51.100.9", "10.0.0.9")
	for _, tc := range []struct {
		name      string
		yaml      string
		cache     []engine.CacheEntry
		want      string
		unknown   []qosUnknown
		conflicts []netip.Addr
	}{
		{"hub: registered spokes by group", hub, []engine.CacheEntry{
			entry("10.0.0.2", "198.51.100.2", engine.KindRegistered, "branch-2m"),
			entry("10.0.0.3", "203.0.113.7", engine.KindRegistered, "BRANCH-10M"), // post-NAT; case folded
			entry("10.0.0.4", "198.51.100.4", engine.KindRegistered, ""),          // no group: no policy
			entry("10.0.0.5", "198.51.100.5", engine.KindRegistered, "gold"),      // unknown
			entry("10.0.0.6", "198.51.100.6", engine.KindResolved, "branch-2m"),   // not a registration
		}, "policy branch-10m rate 10000000 burst 0\n" + branch2m +
			"target 198.51.100.2 policy branch-2m\ntarget 203.0.113.7 policy branch-10m\n",
			[]qosUnknown{{a("10.0.0.5"), "gold"}}, nil},
		{"hub: two spokes behind one NAT", hub, []engine.CacheEntry{
			entry("10.0.0.2", "203.0.113.7", engine.KindRegistered, "branch-2m"),
			entry("10.0.0.3", "203.0.113.7", engine.KindRegistered, "branch-10m"),
			entry("10.0.0.4", "203.0.113.7", engine.KindRegistered, "branch-2m"),
		}, branch2m + "target 203.0.113.7 policy branch-2m\n", nil, []netip.Addr{a("10.0.0.3")}},
		{"hub without qos", hubYAML("198.51.100.1", "10.0.0.1/24"), []engine.CacheEntry{
			entry("10.0.0.2", "198.51.100.2", engine.KindRegistered, "branch-2m"),
		}, "", []qosUnknown{{a("10.0.0.2"), "branch-2m"}}, nil},
		{"spoke: shortcut peers and egress by name", spoke + qosGroupsYAML + "  egress: branch-10m\n", []engine.CacheEntry{
			entry("10.0.0.1", "198.51.100.1", engine.KindNHS, ""),
			entry("10.0.0.3", "198.51.100.3", engine.KindResolved, "branch-2m"),
			entry("10.0.0.4", "198.51.100.4", engine.KindRequester, "branch-2m"), // no shortcut of ours
			entry("10.0.0.5", "", engine.KindResolved, "branch-2m"),              // no direct path
		}, "policy branch-10m rate 10000000 burst 0\n" + branch2m +
			"target 198.51.100.1 policy branch-10m\ntarget 198.51.100.3 policy branch-2m\ntarget 198.51.100.9 policy branch-10m\n", nil, nil},
		{"spoke: inline egress", spoke + "qos: {egress: {rate: 1mbit}}\n", nil,
			"policy qos.egress rate 1000000 burst 0\ntarget 198.51.100.1 policy qos.egress\ntarget 198.51.100.9 policy qos.egress\n", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := desiredQoS(parseConfig(t, tc.yaml), tc.cache)
			if diff := gocmp.Diff(tc.want, renderQoS(d.Policies, d.Targets)); diff != "" {
				t.Errorf("desired state (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.unknown, d.Unknown, gocmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("unknown groups (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.conflicts, d.Conflicts, gocmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestQoSFollowsRegistrations: a hub installs the policy of each spoke's
// group as the spoke registers, counts an unknown group once however often
// the spoke refreshes, does not reinstall an unchanged state, and retries
// a failed install until it succeeds.
func TestQoSFollowsRegistrations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hq, sq := &fakeQoS{fail: errors.New("qdisc: busy")}, &fakeQoS{}
		withQoS := func(q *fakeQoS) func(*Deps) { return func(d *Deps) { d.QoS = q } }
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24")+qosGroupsYAML, nil, withQoS(hq))
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")+
			"  group: branch-2m\n"+qosGroupsYAML+"  egress: branch-10m\n", nil, withQoS(sq))
		s2 := start(t, netw, "s2", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1")+"  group: gold\n", nil)
		defer stopAll(t, s1, s2, hub)
		time.Sleep(5 * time.Second)
		synctest.Wait()

		if st, calls := hq.get(); st != "" || calls == 0 {
			t.Fatalf("hub QoS while failing: state %q after %d calls; want tries and nothing installed", st, calls)
		}
		hq.mu.Lock()
		hq.fail = nil
		hq.mu.Unlock()
		time.Sleep(time.Minute) // past the reconcile backoff
		synctest.Wait()
		want := branch2m + "target 198.51.100.2 policy branch-2m\n"
		st, calls := hq.get()
		if diff := gocmp.Diff(want, st); diff != "" {
			t.Errorf("hub QoS (-want +got):\n%s", diff)
		}
		if st, _ := sq.get(); st != "policy branch-10m rate 10000000 burst 0\ntarget 198.51.100.1 policy branch-10m\n" {
			t.Errorf("s1 egress QoS:\n%s", st)
		}

		// Registrations refresh (holding 600 s: every 200 s); the state
		// does not change, so nothing is reinstalled and the unknown group
		// is reported once.
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		if _, again := hq.get(); again != calls {
			t.Errorf("hub reinstalled an unchanged QoS state: %d calls, then %d", calls, again)
		}
		c, err := hub.ctl.Counters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if c["qos_unknown_group"] != 1 || c["reconcile_errors_qos"] == 0 {
			t.Errorf("counters qos_unknown_group %d (want 1), reconcile_errors_qos %d (want > 0)",
				c["qos_unknown_group"], c["reconcile_errors_qos"])
		}
		if got := metricValue(t, hub.m.QoSUnknownGroups); got != 1 {
			t.Errorf("dmvpnd_qos_unknown_groups_total = %v, want 1", got)
		}
		if got := metricValue(t, hub.m.ReconcileErrors.WithLabelValues("qos")); got == 0 {
			t.Error("dmvpnd_reconcile_errors_total{subsystem=qos} = 0 after failed installs")
		}
		d, err := hub.ctl.DMVPN(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var groups []string
		for _, p := range d.Peers {
			groups = append(groups, p.Tunnel.String()+" "+p.Group)
		}
		if diff := gocmp.Diff([]string{"10.0.0.2 branch-2m", "10.0.0.3 gold"}, groups); diff != "" {
			t.Errorf("hub show dmvpn groups (-want +got):\n%s", diff)
		}
	})
}

// renderQoS renders a desired QoS state as sorted text, one line per
// policy and per target, for tests and the fake.
func renderQoS(policies map[string]QoSPolicy, targets []QoSTarget) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(policies)) {
		p := policies[name]
		fmt.Fprintf(&b, "policy %s rate %d burst %d\n", name, p.Rate, p.Burst)
		for _, cl := range p.Classes {
			fmt.Fprintf(&b, "  class %s dscp %v priority %v rate %d ceil %d\n", cl.Name, cl.DSCP, cl.Priority, cl.Rate, cl.Ceil)
		}
	}
	ts := slices.Clone(targets)
	slices.SortFunc(ts, func(a, b QoSTarget) int { return cmp.Or(a.Dst.Compare(b.Dst), strings.Compare(a.Policy, b.Policy)) })
	for _, t := range ts {
		fmt.Fprintf(&b, "target %s policy %s\n", t.Dst, t.Policy)
	}
	return b.String()
}

// TestQoSHeldForAdoption: a hub restarted with the permanent entry of a
// spoke its previous run had registered does not install a QoS state
// without that spoke (the kernel keeps shaping toward it) until the spoke
// registers again; then the state includes it.
func TestQoSHeldForAdoption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hubCfg := hubYAML("198.51.100.1", "10.0.0.1/24") + qosGroupsYAML
		k := kerneltest.New()
		if _, err := k.EnsureTunnel(tunnelConfig(parseConfig(t, hubCfg))); err != nil {
			t.Fatal(err)
		}
		if err := k.ReplaceNeighbor(netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("198.51.100.2"), true); err != nil {
			t.Fatal(err)
		}
		q := &fakeQoS{}
		var cut atomic.Bool
		hub := startOn(t, netw, "hub", hubCfg, nil, k, &cut, func(d *Deps) { d.QoS = q })
		// s2 (no adopted entry) registers at once; s1, the adopted one,
		// only after a while: its refresh interval.
		s2 := start(t, netw, "s2", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1")+"  group: branch-10m\n", nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		if st, calls := q.get(); calls != 0 {
			t.Errorf("QoS installed while the adopted registration is pending (%d calls):\n%s", calls, st)
		}
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")+"  group: branch-2m\n", nil)
		defer stopAll(t, s1, s2, hub)
		time.Sleep(time.Minute)
		synctest.Wait()
		want := "policy branch-10m rate 10000000 burst 0\n" + branch2m +
			"target 198.51.100.2 policy branch-2m\ntarget 198.51.100.3 policy branch-10m\n"
		if st, _ := q.get(); st != want {
			t.Errorf("QoS after the adopted spoke registered:\n%s\nwant:\n%s", st, want)
		}
	})
}
