package main

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseGREIPv4(t *testing.T) {
	src, dst := netip.MustParseAddr("100.64.1.7"), netip.MustParseAddr("198.51.100.1")
	payload := []byte{1, 2, 3, 4}
	pkt := greIPv4(src, dst, 42, payload)
	withFlags := func(flags uint16, extra ...byte) []byte {
		// IP header, GRE flags and protocol, optional words, key, payload.
		b := append([]byte(nil), pkt[:20]...)
		b = append(b, byte(flags>>8), byte(flags), pkt[22], pkt[23])
		b = append(b, extra...)
		b = append(b, pkt[24:]...)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		key  uint32
		want []byte
		ok   bool
	}{
		{"own encoding", pkt, 42, payload, true},
		{"other key", pkt, 43, nil, false},
		{"checksum present", withFlags(0xa000, 0, 0, 0, 0), 42, payload, true},
		{"sequence present", append(withFlags(0x3000)[:28], append([]byte{0, 0, 0, 9}, payload...)...), 42, payload, true},
		{"no key", withFlags(0x0000)[:28], 42, nil, false},
		{"GRE version 1", withFlags(0x2001), 42, nil, false},
		{"not NHRP", append(append(append([]byte(nil), pkt[:22]...), 0x08, 0x00), pkt[24:]...), 42, nil, false},
		{"truncated", pkt[:26], 42, nil, false},
		{"not IPv4", append([]byte{0x65}, pkt[1:]...), 42, nil, false},
		{"IHL 4", append([]byte{0x44}, pkt[1:]...), 42, nil, false},
		{"IP header cut short", pkt[:19], 42, nil, false},
		{"not GRE", append(append(append([]byte(nil), pkt[:9]...), 17), pkt[10:]...), 42, nil, false},
	} {
		got, ok := parseGREIPv4(tc.in, tc.key)
		if ok != tc.ok || !cmp.Equal(tc.want, got) {
			t.Errorf("%s: parseGREIPv4 = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSpokeAddrs(t *testing.T) {
	c := floodConfig{firstNBMA: netip.MustParseAddr("100.64.1.0"), firstProto: netip.MustParseAddr("10.0.1.0")}
	for _, tc := range []struct {
		i           int
		nbma, proto string
	}{
		{0, "100.64.1.0", "10.0.1.0"},
		{255, "100.64.1.255", "10.0.1.255"},
		{9999, "100.64.40.15", "10.0.40.15"},
	} {
		n, p := c.spokeAddrs(tc.i)
		if n.String() != tc.nbma || p.String() != tc.proto {
			t.Errorf("spoke %d: %v %v, want %s %s", tc.i, n, p, tc.nbma, tc.proto)
		}
	}
}

func TestDropsOf(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  47: 00000000:002F 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
 255: 00000000:00FF 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0
`
	if got, err := dropsOf(table, 4242); err != nil || got != 17 {
		t.Errorf("dropsOf(4242) = %d, %v; want 17", got, err)
	}
	if _, err := dropsOf(table, 1); err == nil {
		t.Error("dropsOf of a missing inode: no error")
	}
}

func TestSendOffsets(t *testing.T) {
	if got := sendOffsets(10, 0, true, 1); got != nil {
		t.Errorf("rate 0: %v, want nil (full rate)", got)
	}
	even := sendOffsets(4, 50, false, 1)
	if want := []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond}; !slices.Equal(even, want) {
		t.Errorf("even at 50/s: %v, want %v", even, want)
	}

	const n, rate = 20000, 50.0
	p := sendOffsets(n, rate, true, 7)
	if !slices.Equal(p, sendOffsets(n, rate, true, 7)) {
		t.Error("poisson: the same seed gave another schedule")
	}
	if slices.Equal(p, sendOffsets(n, rate, true, 8)) {
		t.Error("poisson: another seed gave the same schedule")
	}
	if p[0] != 0 {
		t.Errorf("poisson: first send at %v, want at the start", p[0])
	}
	// Exponential gaps: mean 1/rate, and as many as the distribution
	// puts there below half the mean (1 - e^-0.5 = 39.3 %) and above
	// twice it (e^-2 = 13.5 %); evenly spaced sends have none.
	var short, long int
	for i := 1; i < n; i++ {
		g := p[i] - p[i-1]
		if g < 0 {
			t.Fatalf("poisson: send %d before send %d", i, i-1)
		}
		switch mean := time.Duration(float64(time.Second) / rate); {
		case g < mean/2:
			short++
		case g > 2*mean:
			long++
		}
	}
	mean := p[n-1].Seconds() / (n - 1)
	if d := mean*rate - 1; d < -0.03 || d > 0.03 {
		t.Errorf("poisson: mean gap %.4f s, want 1/%g within 3 %%", mean, rate)
	}
	if f := float64(short) / (n - 1); f < 0.37 || f > 0.42 {
		t.Errorf("poisson: %.3f of the gaps below half the mean, want 0.393", f)
	}
	if f := float64(long) / (n - 1); f < 0.12 || f > 0.15 {
		t.Errorf("poisson: %.3f of the gaps above twice the mean, want 0.135", f)
	}
}
