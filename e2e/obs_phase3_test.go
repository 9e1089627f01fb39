package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// obsRun is issue 17's acceptance riding on TestDMVPNPhase3/psk (no
// second lab): the hub's and s1's metrics endpoints, a dmvpnctl monitor
// --json on s1 from before s1 could register, and s1's show dmvpn peer
// view of s2.
type obsRun struct {
	hub, s1, s2 *dnode
	charon      string // s1's charon's VICI socket
	hold        string // the path s1's dmvpnd dials: a link to charon once the monitor listens
	offset      time.Duration
	from        time.Time // lab clock, before s1 started (set by the scenario)
	mon         *obsMonitor
	s1Before    obsSamples
	childBefore api.ChildSA
}

// obsPrepare configures the nodes before they start: metrics endpoints on
// the hub and s1; s1's registration interval 1 s (nhrp.registration_
// interval: a dead hub shows within about 4 s, whatever the holding
// time, which stays long enough for s2's entry for s1 and the s1-s2 SA to
// outlive the scenario); and s1's dmvpnd
// dials its charon through a link created only once the monitor listens.
// Until then s1 can have no SA with the hub, so it cannot register (an
// IPsec spoke registers over its SA): the monitor is subscribed before
// any of the events it must show, whatever the timing. To dmvpnd this is
// a charon that starts after it.
func obsPrepare(t *testing.T, hub, s1, s2 *dnode, charon string, offset time.Duration) *obsRun {
	t.Helper()
	o := &obsRun{hub: hub, s1: s1, s2: s2, charon: charon, hold: s1.dir + "/charon-late.vici", offset: offset}
	hub.metrics, s1.metrics = obsMetricsListen, obsMetricsListen
	s1.regInterval = "1s"
	extra := strings.Replace(s1.extra, "vici_socket: "+charon+"\n", "vici_socket: "+o.hold+"\n", 1)
	if extra == s1.extra {
		t.Fatalf("s1's ipsec section names no vici_socket %s:\n%s", charon, s1.extra)
	}
	s1.extra = extra
	return o
}

// labNow is the lab's clock now (estimated).
func (o *obsRun) labNow() time.Time { return time.Now().Add(o.offset) }

// startMonitor starts dmvpnctl monitor --json on s1 (started) and, once
// it listens, lets s1's dmvpnd reach its charon.
func (o *obsRun) startMonitor(ctx context.Context, t *testing.T) {
	t.Helper()
	m, err := obsStartMonitor(ctx, o.s1)
	if err != nil {
		t.Fatal(err)
	}
	o.mon = m
	if res, err := o.s1.node.Run(ctx, "ip xfrm state"); err != nil || strings.TrimSpace(string(res.Stdout)) != "" {
		t.Fatalf("s1 has ESP states before its dmvpnd could reach charon: %q, %v", res.Stdout, err)
	}
	o.s1.node.MustRun(fmt.Sprintf("ln -s %s %s", o.charon, o.hold))
	t.Logf("timing: s1's monitor listening, charon reachable %v after s1 started", scMS(o.labNow().Sub(o.from)))
}

// nhsUp is the series of s1's registration with the hub.
func (o *obsRun) nhsUp() string {
	return obsSeries("dmvpnd_nhrp_nhs_up", "nhs", o.hub.nbma.String())
}

func obsSAs(established int) obsSamples {
	return obsSamples{
		obsSeries("dmvpnd_ipsec_sas", "state", "established"): float64(established),
		obsSeries("dmvpnd_ipsec_sas", "state", "connecting"):  0,
		obsSeries("dmvpnd_ipsec_sas", "state", "down"):        0,
	}
}

func obsMerge(ss ...obsSamples) obsSamples {
	out := obsSamples{}
	for _, s := range ss {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// before scrapes s1 and the hub once both spokes are registered, before
// any LAN traffic: s1 registered with its one NHS, one SA (the hub's), no
// shortcut, no redirect yet; the hub with two peers up over two SAs.
func (o *obsRun) before(ctx context.Context, t *testing.T) {
	t.Helper()
	s1, err := obsWaitMetrics(ctx, o.s1, 30*time.Second, obsMerge(obsSAs(1), obsSamples{
		o.nhsUp():                               1,
		"dmvpnd_ready":                          1,
		"dmvpnd_nhrp_shortcuts":                 0,
		"dmvpnd_nhrp_shortcuts_installed_total": 0,
		obsSeries("dmvpnd_nhrp_redirects_total", "direction", "received"): 0,
	}))
	if err != nil {
		t.Fatalf("s1 before traffic: %v", err)
	}
	o.s1Before = s1
	last := obsSeries("dmvpnd_nhrp_nhs_last_registration_timestamp_seconds", "nhs", o.hub.nbma.String())
	at := time.Unix(0, int64(s1[last]*1e9))
	if now := o.labNow(); at.Before(o.from.Add(-2*time.Second)) || at.After(now.Add(2*time.Second)) {
		t.Errorf("s1 %s = %v, outside the run [%v, %v]", last, at, o.from, now)
	}
	hub, err := obsWaitMetrics(ctx, o.hub, 30*time.Second, obsMerge(obsSAs(2), obsSamples{
		obsSeries("dmvpnd_peers", "state", "up"):                      2,
		obsSeries("dmvpnd_peers", "state", "ike"):                     0,
		obsSeries("dmvpnd_peers", "state", "nhrp"):                    0,
		"dmvpnd_nhrp_cache_entries":                                   2,
		"dmvpnd_nhrp_shortcuts":                                       0,
		"dmvpnd_ready":                                                1,
		obsSeries("dmvpnd_nhrp_redirects_total", "direction", "sent"): 0,
	}))
	if err != nil {
		t.Fatalf("hub before traffic: %v", err)
	}
	t.Logf("metrics before traffic: s1 nhs_up %v, sas established %v, shortcuts %v; hub peers up %v, sas established %v, cache %v/%v",
		s1[o.nhsUp()], s1[obsSeries("dmvpnd_ipsec_sas", "state", "established")], s1["dmvpnd_nhrp_shortcuts"],
		hub[obsSeries("dmvpnd_peers", "state", "up")], hub[obsSeries("dmvpnd_ipsec_sas", "state", "established")],
		hub["dmvpnd_nhrp_cache_entries"], hub["dmvpnd_nhrp_cache_entries_limit"])
}

// childSA is s1's show dmvpn peer view of s2's one installed CHILD_SA.
func (o *obsRun) childSA(ctx context.Context) (api.ChildSA, error) {
	v, err := obsPeerDetail(ctx, o.s1, o.s2.tunnel)
	if err != nil {
		return api.ChildSA{}, err
	}
	if v.SA == nil || v.SA.State != api.SAEstablished {
		return api.ChildSA{}, fmt.Errorf("s1 show dmvpn peer %s: SA %+v, want established", o.s2.tunnel, v.SA)
	}
	return obsChild(v)
}

// beforePing records s1's counters of its SA with s2 before the pings
// over the shortcut.
func (o *obsRun) beforePing(ctx context.Context, t *testing.T) {
	t.Helper()
	c, err := o.childSA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o.childBefore = c
}

// afterPing checks, after pings pings over the shortcut: s1's show dmvpn
// peer s2 counts them on the same CHILD_SA; s1's metrics show the
// shortcut and the second SA, the hub's its redirect and still two SAs.
func (o *obsRun) afterPing(ctx context.Context, t *testing.T, pings int) {
	t.Helper()
	c, err := o.childSA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := o.childBefore
	switch {
	case c.ID != b.ID || c.SPIOut != b.SPIOut:
		t.Errorf("s1's CHILD_SA with s2 changed during the pings: %s (out %s) -> %s (out %s)", b.ID, b.SPIOut, c.ID, c.SPIOut)
	case c.PacketsOut < b.PacketsOut+uint64(pings) || c.BytesOut <= b.BytesOut:
		t.Errorf("s1 show dmvpn peer %s: packets out %d -> %d, bytes out %d -> %d after %d pings over the shortcut",
			o.s2.tunnel, b.PacketsOut, c.PacketsOut, b.BytesOut, c.BytesOut, pings)
	case c.PacketsIn == 0 || c.BytesIn == 0:
		t.Errorf("s1 show dmvpn peer %s: nothing received on the SA: %+v", o.s2.tunnel, c)
	}
	t.Logf("s1 show dmvpn peer %s: CHILD_SA %s (SPI in %s, out %s, %s): in %d packets %d bytes, out %d packets %d bytes (before the pings: out %d packets %d bytes)",
		o.s2.tunnel, c.ID, c.SPIIn, c.SPIOut, c.EncrAlg, c.PacketsIn, c.BytesIn, c.PacketsOut, c.BytesOut, b.PacketsOut, b.BytesOut)

	s1, err := obsWaitMetrics(ctx, o.s1, 30*time.Second, obsMerge(obsSAs(2), obsSamples{
		o.nhsUp():                               1,
		"dmvpnd_ready":                          1,
		"dmvpnd_nhrp_shortcuts":                 1,
		"dmvpnd_nhrp_shortcuts_installed_total": 1,
	}))
	if err != nil {
		t.Fatalf("s1 after traffic: %v", err)
	}
	if err := obsAtLeast(s1, obsSamples{
		obsSeries("dmvpnd_nhrp_redirects_total", "direction", "received"):                      1,
		obsSeries("dmvpnd_nhrp_registrations_total", "direction", "sent", "result", "success"): 1,
	}); err != nil {
		t.Errorf("s1 after traffic: %v", err)
	}
	hub, err := obsWaitMetrics(ctx, o.hub, 30*time.Second, obsMerge(obsSAs(2), obsSamples{
		obsSeries("dmvpnd_peers", "state", "up"): 2,
		"dmvpnd_nhrp_shortcuts":                  0,
	}))
	if err != nil {
		t.Fatalf("hub after traffic: %v", err)
	}
	if err := obsAtLeast(hub, obsSamples{obsSeries("dmvpnd_nhrp_redirects_total", "direction", "sent"): 1}); err != nil {
		t.Errorf("hub after traffic: %v", err)
	}
	t.Logf("metrics after traffic: s1 shortcuts %v, sas established %v, redirects received %v; hub redirects sent %v",
		s1["dmvpnd_nhrp_shortcuts"], s1[obsSeries("dmvpnd_ipsec_sas", "state", "established")],
		s1[obsSeries("dmvpnd_nhrp_redirects_total", "direction", "received")], hub[obsSeries("dmvpnd_nhrp_redirects_total", "direction", "sent")])
}

// killHub kills the hub's dmvpnd (SIGKILL: a crash; its charon and SAs
// stay, so s1's registration refreshes reach the hub and go unanswered).
func (o *obsRun) killHub(ctx context.Context, t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	if err := o.hub.proc.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	return at
}

// afterKill waits for s1's registration metric to drop, evaluates the
// shipped DMVPNSpokeNotRegistered rule with promtool on s1's scraped
// samples (before traffic, after the drop), and checks the monitor's
// events: SA with the hub up, registration, SA with s2 up, shortcut up,
// registration failed, in this order, with timestamps that never go back.
func (o *obsRun) afterKill(ctx context.Context, t *testing.T, killed time.Time) {
	t.Helper()
	after, err := obsWaitMetrics(ctx, o.s1, 90*time.Second, obsMerge(obsSAs(2), obsSamples{
		o.nhsUp():      0,
		"dmvpnd_ready": 0,
	}))
	if err != nil {
		t.Fatalf("s1 after the hub's dmvpnd was killed: %v", err)
	}
	t.Logf("timing: s1's %s read 0 %v after the hub's dmvpnd was killed", o.nhsUp(), scMS(time.Since(killed)))
	// Registrations s1 could not send while it had no SA count as timeouts
	// too: the kill must add one.
	timeouts := obsSeries("dmvpnd_nhrp_registrations_total", "direction", "sent", "result", "timeout")
	if err := obsAtLeast(after, obsSamples{timeouts: o.s1Before[timeouts] + 1}); err != nil {
		t.Errorf("s1 after the hub's dmvpnd was killed: %v", err)
	}
	file, out, err := obsPromtoolAlert(t.TempDir(), "DMVPNSpokeNotRegistered", "dmvpnd_nhrp_nhs_up", "s1", o.s1Before, after)
	if err != nil {
		t.Errorf("the shipped alert on s1's scraped samples: %v\n%s\n%s", err, file, out)
	} else {
		t.Logf("promtool test rules: DMVPNSpokeNotRegistered fires on s1's scraped samples, not on the registered one:\n%s", strings.TrimSpace(out))
	}

	evs, err := o.mon.events()
	if err != nil {
		t.Fatal(err)
	}
	hub, s2 := o.hub, o.s2
	found, err := obsCheckEvents(evs, o.from.Add(-2*time.Second), o.labNow().Add(2*time.Second), []obsStep{
		{"sa-up with the hub", func(e api.Event) bool { return e.Kind == api.EventSAUp && e.NBMA == hub.nbma }},
		{"registration with the hub", func(e api.Event) bool {
			return e.Kind == api.EventRegistration && e.NBMA == hub.nbma && e.PeerTunnel == hub.tunnel
		}},
		{"sa-up with s2", func(e api.Event) bool { return e.Kind == api.EventSAUp && e.NBMA == s2.nbma }},
		{"shortcut-up to s2's LAN", func(e api.Event) bool {
			return e.Kind == api.EventShortcutUp && e.Prefix == s2.lan.Masked() && e.PeerTunnel == s2.tunnel && e.NBMA == s2.nbma
		}},
		{"registration-failed with the hub", func(e api.Event) bool {
			return e.Kind == api.EventRegistrationFailed && e.NBMA == hub.nbma && e.Level == "warn"
		}},
	})
	if err != nil {
		t.Errorf("s1's dmvpnctl monitor --json: %v; events:%s", err, obsEventList(evs))
		return
	}
	var b strings.Builder
	for _, e := range found {
		fmt.Fprintf(&b, " %s +%v;", e.Kind, scMS(e.Time.Sub(o.from)))
	}
	t.Logf("s1's monitor: %d events; in order (time since s1 started):%s", len(evs), b.String())
}
