package kernel

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// voiceLab is hub --ul0/w0-- wan --w1/b0-- branch, where wan's w1 is the
// branch's 2 Mbit/s access link (tbf with a 400 ms buffer, as a DSL line
// would have). The hub sends a bulk UDP flood at 10x that rate and an
// EF-marked voice stream (50 packets/s, 200 bytes) to the branch.
type voiceLab struct {
	hub, wan, branch int
	dst              netip.Addr
}

func newVoiceLab(t *testing.T) voiceLab {
	l := voiceLab{hub: newNetNS(t), wan: newNetNS(t), branch: newNetNS(t), dst: netip.MustParseAddr("172.16.31.2")}
	vethPair(t, l.hub, "ul0", "172.16.30.1/24", l.wan, "w0", "172.16.30.2/24")
	vethPair(t, l.wan, "w1", "172.16.31.1/24", l.branch, "b0", "172.16.31.2/24")
	mustSysctl(t, l.wan, "net/ipv4/ip_forward", "1")
	addRoute(t, nsHandle(t, l.hub), "172.16.31.0/24", "172.16.30.2", 0)
	addRoute(t, nsHandle(t, l.branch), "172.16.30.0/24", "172.16.31.1", 0)
	tcIn(t, l.wan, "qdisc", "replace", "dev", "w1", "root", "tbf", "rate", "2mbit", "burst", "4kb", "latency", "400ms")
	return l
}

type voiceResult struct {
	sent, received int
	p50, p99, max  time.Duration
	bulkBits       float64 // received bit/s
}

// run sends both flows for d and collects what the branch received.
func (l voiceLab) run(t *testing.T, d time.Duration) voiceResult {
	voiceRx := udpIn(t, l.branch, l.dst.String()+":5000")
	bulkRx := udpIn(t, l.branch, l.dst.String()+":5001")
	voiceTx, bulkTx := udpTOS(t, l.hub, 46<<2), udpTOS(t, l.hub, 0)

	var mu sync.Mutex
	var lat []time.Duration
	var bulkBytes int
	var wg sync.WaitGroup
	// receive hands each datagram read from c to got, under mu, until c
	// is closed.
	receive := func(c *net.UDPConn, got func(b []byte)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 2048)
			for {
				n, err := c.Read(b)
				if err != nil {
					return
				}
				mu.Lock()
				got(b[:n])
				mu.Unlock()
			}
		}()
	}
	receive(voiceRx, func(b []byte) {
		if len(b) >= 8 {
			lat = append(lat, time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(b)))))
		}
	})
	receive(bulkRx, func(b []byte) { bulkBytes += len(b) + 28 })

	stop := time.Now().Add(d)
	done := make(chan struct{})
	go func() { // bulk: 18 x 1400 bytes every 10 ms = 20 Mbit/s
		defer close(done)
		payload := make([]byte, 1400-28)
		to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.dst, 5001))
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(stop) {
			for i := 0; i < 18; i++ {
				_, _ = bulkTx.WriteToUDP(payload, to) // local drops (ENOBUFS) are part of a flood
			}
			<-tick.C
		}
	}()
	sent := 0
	voice := make([]byte, 200-28)
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.dst, 5000))
	tick := time.NewTicker(20 * time.Millisecond)
	for time.Now().Before(stop) {
		<-tick.C
		binary.BigEndian.PutUint64(voice, uint64(time.Now().UnixNano()))
		if _, err := voiceTx.WriteToUDP(voice, to); err != nil {
			t.Fatalf("voice send: %v", err)
		}
		sent++
	}
	tick.Stop()
	<-done
	// Whatever is still queued (at most the wan's 400 ms) arrives or is lost
	// within a second; then the receivers stop.
	deadline := time.Now().Add(time.Second)
	waitFor(t, "the queues to drain", 2*time.Second, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(lat) == sent || time.Now().After(deadline), nil
	})
	_ = voiceRx.Close()
	_ = bulkRx.Close()
	wg.Wait()
	r := voiceResult{sent: sent, received: len(lat), bulkBits: float64(bulkBytes*8) / d.Seconds()}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	return r
}

// TestPrivQoSVoiceProtected is the kernel half of issue 19's acceptance
// (TestPerTunnelQoS) with a static target: with the branch's policy on the
// hub, voice loses nothing and its p99 latency stays small while bulk is
// shaped to the policy; the same flows without the policy (control) show
// what the policy prevents.
func TestPrivQoSVoiceProtected(t *testing.T) {
	const d = 4 * time.Second
	policy := map[string]QoSPolicy{"branch-2m": {Rate: 1_900_000, Classes: []QoSClass{
		{Name: "voice", DSCP: []uint8{46}, Priority: true, Rate: 160_000},
	}}}

	var control, shaped voiceResult
	t.Run("control", func(t *testing.T) {
		l := newVoiceLab(t)
		control = l.run(t, d)
		t.Logf("control: voice %d/%d received, latency p50 %s p99 %s max %s; bulk %.2f Mbit/s",
			control.received, control.sent, control.p50, control.p99, control.max, control.bulkBits/1e6)
	})
	t.Run("qos", func(t *testing.T) {
		l := newVoiceLab(t)
		k := newKernel(t, l.hub)
		if err := k.SetQoS(policy, []QoSTarget{{Dst: l.dst, Policy: "branch-2m"}}); err != nil {
			t.Fatal(err)
		}
		shaped = l.run(t, d)
		t.Logf("qos: voice %d/%d received, latency p50 %s p99 %s max %s; bulk %.2f Mbit/s",
			shaped.received, shaped.sent, shaped.p50, shaped.p99, shaped.max, shaped.bulkBits/1e6)
		st, err := k.QoSStats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("qos stats: %+v", st)
		if shaped.received != shaped.sent {
			t.Errorf("voice lost %d of %d packets under the policy", shaped.sent-shaped.received, shaped.sent)
		}
		t.Logf("the branch link (wan w1):\n%s", tcIn(t, l.wan, "-s", "qdisc", "show", "dev", "w1"))
		if shaped.p50 > 50*time.Millisecond {
			t.Errorf("voice p50 latency %s under the policy, want <= 50ms", shaped.p50)
		}
		// Bulk is shaped to the policy, not starved.
		if shaped.bulkBits > 2.0e6 || shaped.bulkBits < 0.5e6 {
			t.Errorf("bulk received at %.2f Mbit/s, want at most the policy rate and not starved (0.5-2.0)", shaped.bulkBits/1e6)
		}
	})
	if control.sent == 0 || shaped.sent == 0 {
		return
	}
	// The control must show the harm, or the test proves nothing: the
	// flooded link queues voice for hundreds of milliseconds. Under the
	// policy even voice's tail stays below the control's median. (A TCG
	// guest sharing its host with other guests stalls for up to a few
	// hundred milliseconds, which is why the tail is judged against the
	// control measured on the same machine, not against a constant.)
	if control.p50 < 200*time.Millisecond {
		t.Errorf("control run kept voice p50 at %s: the flood did not congest the link", control.p50)
	}
	if shaped.p99 >= control.p50 {
		t.Errorf("voice p99 %s under the policy is not below the control's p50 %s", shaped.p99, control.p50)
	}
}
