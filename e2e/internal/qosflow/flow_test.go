package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseFlow(t *testing.T) {
	f, err := parseFlow("name=voice,from=hub,to=s1,dst=10.0.0.2:5000,dscp=46,size=200,pps=50")
	if err != nil {
		t.Fatal(err)
	}
	want := flowSpec{Name: "voice", From: "hub", To: "s1", Dst: netip.MustParseAddrPort("10.0.0.2:5000"), DSCP: 46, Size: 200, PPS: 50}
	if f != want {
		t.Errorf("parseFlow = %+v, want %+v", f, want)
	}
	for _, bad := range []string{
		"name=x,dst=10.0.0.2:5000",               // no pps
		"name=x,dst=10.0.0.2,pps=1",              // no port
		"name=x,dst=[::1]:5,pps=1",               // not IPv4
		"name=x,dst=10.0.0.2:5,pps=1,dscp=64",    // DSCP out of range
		"name=x,dst=10.0.0.2:5,pps=1,size=20",    // smaller than the header
		"dst=10.0.0.2:5,pps=1",                   // no name
		"name=x,dst=10.0.0.2:5,pps=1,colour=red", // unknown key
		"name=x,dst=10.0.0.2:5,pps",              // not key=value
	} {
		if _, err := parseFlow(bad); err == nil {
			t.Errorf("parseFlow(%q) accepted", bad)
		}
	}
}

// TestLoopback sends two flows over the loopback of this namespace: each
// paced to its rate, nothing lost, latency within a loopback's reach.
func TestLoopback(t *testing.T) {
	flows := []flowSpec{
		{Name: "slow", Dst: netip.MustParseAddrPort("127.0.0.1:0"), Size: 200, PPS: 20},
		{Name: "fast", Dst: netip.MustParseAddrPort("127.0.0.1:0"), Size: 1000, PPS: 500},
	}
	rx := make([]*receiver, len(flows))
	for i := range flows {
		var err error
		if rx[i], err = listen(flows[i], uint32(i)); err != nil {
			t.Fatal(err)
		}
		flows[i].Dst = rx[i].c.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
		go rx[i].read()
	}
	start := time.Now()
	stop := start.Add(500 * time.Millisecond)
	for i, f := range flows {
		c, err := dial(f)
		if err != nil {
			t.Fatal(err)
		}
		sent, skipped, errs := send(c, f, uint32(i), start, stop)
		_ = c.Close()
		// Paced: about pps x 0.5 s sent or, on a loaded machine, skipped
		// (the first packet goes at once).
		if lo, hi := f.PPS/2-f.PPS/10, f.PPS/2+f.PPS/10+1; sent+skipped < lo || sent+skipped > hi || sent == 0 || errs != 0 {
			t.Errorf("%s: sent %d, skipped %d (%d errors), want %d..%d in all", f.Name, sent, skipped, errs, lo, hi)
		}
		start, stop = time.Now(), time.Now().Add(500*time.Millisecond)
		deadline := time.Now().Add(5 * time.Second)
		for {
			rx[i].mu.Lock()
			n := len(rx[i].lat)
			rx[i].mu.Unlock()
			if n == sent || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = rx[i].c.Close()
		got := rx[i].summary(f.Name, flowResult{Sent: sent})
		if got.Received != sent || got.Duplicates != 0 || got.Foreign != 0 {
			t.Errorf("%s: %+v; want all %d received once", f.Name, got, sent)
		}
		if got.Bytes != int64(sent*f.Size) {
			t.Errorf("%s: %d bytes, want %d", f.Name, got.Bytes, sent*f.Size)
		}
		if got.MaxMS > 1000 || got.P50MS < 0 {
			t.Errorf("%s: latency p50 %v max %v ms over loopback", f.Name, got.P50MS, got.MaxMS)
		}
	}
}

// TestForeign: a datagram without the flow's magic, or of another flow,
// is counted as foreign and never as received.
func TestForeign(t *testing.T) {
	r, err := listen(flowSpec{Name: "x", Dst: netip.MustParseAddrPort("127.0.0.1:0")}, 1)
	if err != nil {
		t.Fatal(err)
	}
	go r.read()
	dst := r.c.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	c, err := dial(flowSpec{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other := flowSpec{Name: "other", Size: 100, PPS: 1}
	other.Dst = dst
	send(c, other, 0, time.Now(), time.Now().Add(time.Millisecond)) // flow index 0, not 1
	_, _ = c.WriteToUDPAddrPort([]byte(strings.Repeat("x", 40)), dst)
	_, _ = c.WriteToUDPAddrPort([]byte("short"), dst)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		n := r.alien
		r.mu.Unlock()
		if n == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = r.c.Close()
	if got := r.summary("x", flowResult{}); got.Foreign != 3 || got.Received != 0 {
		t.Errorf("%+v; want 3 foreign, none received", got)
	}
}

// TestNoCatchUp: a sender whose schedule started long ago (as after a
// stall) sends one tick's share and skips the rest, instead of a burst.
func TestNoCatchUp(t *testing.T) {
	r, err := listen(flowSpec{Name: "x", Dst: netip.MustParseAddrPort("127.0.0.1:0")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.c.Close()
	c, err := dial(flowSpec{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := flowSpec{Name: "x", Dst: r.c.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort(), Size: 100, PPS: 50}
	// 50/s is one packet a 20 ms tick; the schedule began a second ago
	// and ends now: one packet goes, about 50 are skipped.
	now := time.Now()
	sent, skipped, errs := send(c, f, 0, now.Add(-time.Second), now.Add(time.Millisecond))
	if sent != 1 || skipped < 45 || skipped > 55 || errs != 0 {
		t.Errorf("sent %d, skipped %d, errors %d; want 1 sent and about 50 skipped", sent, skipped, errs)
	}
}
