package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
	"github.com/dmvpnd/dmvpnd/ipsec"
)

// ipdSharedCharon is issue 15's acceptance for the dedicated charon, on
// the hub of a running hub + spoke with an SA between them and a 10/s
// ping from the spoke to the hub's tunnel address:
//
//  1. a second, system-like charon on the hub (VICI on the default
//     /var/run/charon.vici in its own /run, an empty swanctl.conf, as
//     strongswan.service runs it) gets `swanctl --load-all`: dmvpnd's
//     charon keeps its connections and its SA, nothing is repaired, the
//     ping keeps flowing;
//  2. the same command against dmvpnd's own charon (an operator mistake)
//     unloads dmvpnd's connections and PSK: dmvpnd reloads them all within
//     one verification period (ipsec.DefaultVerifyInterval), counting
//     each repair (show counters), and the ping flows again;
//  3. kill -9 of dmvpnd's charon and a new one started as the unit would
//     (same configuration and socket): dmvpnd reconnects, the SA with the
//     spoke and the ping come back on their own.
//
// Times are measured and logged ("timing:").
func ipdSharedCharon(ctx context.Context, t *testing.T, hub, s1 *dnode, charons map[*dnode]*lab.Charon) {
	ded := charons[hub]
	c, err := nodeCounters(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	// The fingerprints dmvpnd compares match what the real charon lists:
	// nothing was repaired in the steady state.
	if c["ipsec_repaired_connections"] != 0 || c["ipsec_repaired_credentials"] != 0 {
		t.Errorf("repairs before anyone touched charon: %d connections, %d credentials",
			c["ipsec_repaired_connections"], c["ipsec_repaired_credentials"])
	}
	conns0, err := ipdOwnConns(ctx, ded)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(conns0, "dmvpn-responder") || len(conns0) < 2 {
		t.Fatalf("hub's charon lists %v, want dmvpn-responder and the spoke's connection", conns0)
	}
	pp, err := s1.node.Start(ctx, "selfheal-ping", "stdbuf -oL ping -n -D -i 0.1 -W 1 "+hub.tunnel.String())
	if err != nil {
		t.Fatal(err)
	}
	p := &scPinger{d: s1, proc: pp, interval: 100 * time.Millisecond}
	defer func() {
		if err := p.stop(ctx); err != nil {
			t.Log(err)
		}
		if loss, err := p.loss(); err == nil {
			t.Logf("s1 -> hub ping over the three steps: %v", loss)
		}
	}()
	if err := p.waitReplies(ctx, 30*time.Second, 0, 10); err != nil {
		t.Fatal(err)
	}

	// 1. The system's charon and swanctl. It starts after dmvpnd's charon,
	// so it finds UDP 500/4500 taken and runs without IKE sockets, as the
	// system charon does on a host where dmvpnd-charon started first.
	from := p.lastSeq()
	sys, err := hub.node.StartCharon(ctx, lab.CharonConfig{Name: "system", SystemSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sys.Swanctl(ctx, "--load-all", "--noprompt")
	if err != nil {
		t.Fatalf("swanctl --load-all against the system charon: %v", err)
	}
	t.Logf("system charon: swanctl --load-all: %s", strings.Join(strings.Fields(string(res.Stdout)), " "))
	if b, err := os.ReadFile(sys.Log); err == nil {
		t.Logf("system charon without IKE sockets (UDP 500/4500 taken): %v", strings.Contains(string(b), "could not create any sockets"))
	}
	seq := p.lastSeq()
	if err := p.waitReplies(ctx, 20*time.Second, seq, 10); err != nil {
		t.Errorf("after swanctl --load-all against the system charon: %v", err)
	}
	if lost, err := p.lostIn(from, p.lastSeq()); err != nil || lost != 0 {
		t.Errorf("ping lost %d probes (%v) while the system's charon ran swanctl --load-all, want 0", lost, err)
	}
	if got, err := ipdOwnConns(ctx, ded); err != nil || !slices.Equal(got, conns0) {
		t.Errorf("dmvpnd's charon after the system's swanctl --load-all: %v (%v), want %v", got, err, conns0)
	}
	if ike, child, raw, err := ipdCharonSAs(ctx, ded, s1.nbma); err != nil || ike != 1 || child != 1 {
		t.Errorf("dmvpnd's charon after the system's swanctl --load-all: %d IKE_SAs, %d CHILD_SAs with s1 (%v), want 1 and 1:\n%s", ike, child, err, raw)
	}
	if c, err := nodeCounters(ctx, hub); err != nil || c["ipsec_repaired_connections"] != 0 || c["ipsec_repaired_credentials"] != 0 {
		t.Errorf("repairs after the system's swanctl --load-all: %v (%v), want none", c, err)
	}

	// 2. The same command against dmvpnd's charon.
	from = p.lastSeq()
	t1 := time.Now()
	res, err = ded.Swanctl(ctx, "--load-all", "--noprompt")
	if err != nil {
		t.Fatalf("swanctl --load-all against dmvpnd's charon: %v", err)
	}
	t.Logf("dmvpnd's charon: swanctl --load-all: %s", strings.Join(strings.Fields(string(res.Stdout)), " "))
	if got, err := ipdOwnConns(ctx, ded); err == nil {
		t.Logf("dmvpnd's charon right after: connections %v", got)
	}
	wantConns, wantCreds := uint64(len(conns0)), uint64(1) // and the PSK
	wctx, wcancel := context.WithTimeout(ctx, ipsec.DefaultVerifyInterval+60*time.Second)
	err = lab.WaitFor(wctx, 250*time.Millisecond, func(ctx context.Context) error {
		got, err := ipdOwnConns(ctx, ded)
		if err != nil {
			return err
		}
		if !slices.Equal(got, conns0) {
			return fmt.Errorf("dmvpnd's charon lists %v, want %v", got, conns0)
		}
		c, err := nodeCounters(ctx, hub)
		if err != nil {
			return err
		}
		if c["ipsec_repaired_connections"] < wantConns || c["ipsec_repaired_credentials"] < wantCreds {
			return fmt.Errorf("repairs: %d connections, %d credentials; want %d and %d",
				c["ipsec_repaired_connections"], c["ipsec_repaired_credentials"], wantConns, wantCreds)
		}
		return nil
	})
	wcancel()
	repaired := time.Since(t1)
	if err != nil {
		t.Fatalf("dmvpnd did not reload what swanctl unloaded: %v", err)
	}
	t.Logf("timing: connections and PSK reloaded into dmvpnd's charon %v after swanctl --load-all (verification period %v)",
		scMS(repaired), ipsec.DefaultVerifyInterval)
	// One period, plus this check's own polling (each swanctl and
	// dmvpnctl run costs up to a second under emulation).
	if repaired > ipsec.DefaultVerifyInterval+10*time.Second {
		t.Errorf("reloaded %v after the mistake, more than one verification period (%v)", scMS(repaired), ipsec.DefaultVerifyInterval)
	}
	if c, err := nodeCounters(ctx, hub); err != nil || c["ipsec_repaired_connections"] != wantConns || c["ipsec_repaired_credentials"] != wantCreds {
		t.Errorf("repairs: %v (%v), want exactly %d connections and %d credentials", c, err, wantConns, wantCreds)
	}
	if err := ipdWaitSA(ctx, hub, s1.nbma, 60*time.Second); err != nil {
		t.Error(err)
	}
	seq = p.lastSeq()
	if err := p.waitReplies(ctx, 60*time.Second, seq, 10); err != nil {
		t.Errorf("after the repair: %v", err)
	}
	t.Logf("timing: SA up and ping answered %v after swanctl --load-all", scMS(time.Since(t1)))
	if lost, err := p.lostIn(from, p.lastSeq()); err == nil {
		t.Logf("ping lost %d probes around the operator's swanctl --load-all", lost)
	}

	// 3. kill -9 of dmvpnd's charon, restarted as the unit would.
	if err := ded.Proc.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	seq = p.lastSeq()
	from = seq
	hub.node.MustRun("rm -f " + ded.Socket)
	t2 := time.Now()
	nc, err := hub.node.StartCharon(ctx, lab.CharonConfig{})
	if err != nil {
		t.Fatal(err)
	}
	charons[hub] = nc
	// dmvpnd reconnects (backoff from 200 ms) and, the SA having been up,
	// initiates to s1 itself: s1's charon would wait for its DPD to time
	// out (minutes) while ESP still flows through the old kernel SAs.
	if err := ipdWaitSA(ctx, hub, s1.nbma, 90*time.Second); err != nil {
		t.Fatalf("after kill -9 of dmvpnd's charon: %v", err)
	}
	t.Logf("timing: SA with s1 back in dmvpnd's view %v after the new charon started", scMS(time.Since(t2)))
	if err := p.waitReplies(ctx, 60*time.Second, seq, 10); err != nil {
		t.Errorf("after the charon restart: %v", err)
	}
	t.Logf("timing: ping answered again (10 in a row) %v after the new charon started", scMS(time.Since(t2)))
	if got, err := ipdOwnConns(ctx, nc); err != nil || !slices.Equal(got, conns0) {
		t.Errorf("new charon lists %v (%v), want %v", got, err, conns0)
	}
	if ike, child, raw, err := ipdCharonSAs(ctx, nc, s1.nbma); err != nil || ike != 1 || child != 1 {
		t.Errorf("new charon: %d IKE_SAs, %d CHILD_SAs with s1 (%v), want 1 and 1:\n%s", ike, child, err, raw)
	}
	if err := ipdWaitPeerUp(ctx, hub, s1.tunnel, 60*time.Second); err != nil {
		t.Error(err)
	}
	if lost, err := p.lostIn(from, p.lastSeq()); err == nil {
		t.Logf("ping lost %d probes around the kill -9 and restart of dmvpnd's charon", lost)
	}
}

// lostIn counts the probes with sequence numbers in (from, to] that got
// no reply.
func (p *scPinger) lostIn(from, to int) (int, error) {
	rs, err := p.replies()
	if err != nil {
		return 0, err
	}
	got := map[int]bool{}
	for _, r := range rs {
		got[r.seq] = true
	}
	lost := 0
	for s := from + 1; s <= to; s++ {
		if !got[s] {
			lost++
		}
	}
	return lost, nil
}

var listConnName = regexp.MustCompile(`(?m)^list-conn event \{(\S+) \{`)

// ipdOwnConns lists the connections dmvpnd loaded into c (swanctl
// --list-conns --raw: one line per connection), sorted.
func ipdOwnConns(ctx context.Context, c *lab.Charon) ([]string, error) {
	res, err := c.Swanctl(ctx, "--list-conns", "--raw")
	if err != nil {
		return nil, err
	}
	return ipdParseConns(string(res.Stdout)), nil
}

// ipdParseConns returns the dmvpn- connection names in swanctl
// --list-conns --raw output, sorted.
func ipdParseConns(raw string) []string {
	set := map[string]bool{}
	for _, m := range listConnName.FindAllStringSubmatch(raw, -1) {
		if strings.HasPrefix(m[1], "dmvpn-") {
			set[m[1]] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// TestIPDParseConns checks the swanctl --list-conns --raw parser on
// charon 5.9.8's output.
func TestIPDParseConns(t *testing.T) {
	raw := "list-conn event {dmvpn-responder {local_addrs=[192.0.2.1] remote_addrs=[%any] version=IKEv2 children {gre {mode=TRANSPORT local-ts=[dynamic[gre]] remote-ts=[dynamic[gre]]}}}}\n" +
		"list-conn event {other {local_addrs=[%any] remote_addrs=[%any]}}\n" +
		"list-conn event {dmvpn-peer-198.51.100.2 {local_addrs=[192.0.2.1] remote_addrs=[198.51.100.2]}}\n" +
		"list-conns reply {}\n"
	want := []string{"dmvpn-peer-198.51.100.2", "dmvpn-responder"}
	if got := ipdParseConns(raw); !slices.Equal(got, want) {
		t.Errorf("ipdParseConns = %v, want %v", got, want)
	}
	if got := ipdParseConns("list-conns reply {}\n"); len(got) != 0 {
		t.Errorf("no connections: %v", got)
	}
}
