package benchreport

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/google/go-cmp/cmp"
)

// sample is two sizes, two repetitions: FRR's second 2k burst never
// reached N, the floor has no 2k burst.
func sample() *Results {
	r := &Results{
		Date: "2026-12-02", Commit: "abc1234", Guest: "6.1, 2 vCPUs, tcg", Load: "0.10 0.20 0.30",
		Sizes: []int{1000, 2000}, Reps: 2, Setup: []string{"holding time 3600 s"},
		Bursts: []Burst{
			{Impl: DMVPND, N: 1000, Rep: 1, TimeToN: 1.0, Reached: 1000, LastOK: 1.0, Sent: 1000, CPUPerReg: 1.1, RSSPerSpoke: 2048},
			{Impl: DMVPND, N: 1000, Rep: 2, TimeToN: 1.2, Reached: 1000, LastOK: 1.1, Sent: 1000, CPUPerReg: 1.3, RSSPerSpoke: 2048},
			{Impl: FRR, N: 1000, Rep: 1, TimeToN: 2.5, Reached: 1000, LastOK: 2.4, Sent: 1500, Retransmits: 500, Lost: 500, CPUPerReg: 2.6, RSSPerSpoke: 7168},
			{Impl: FRR, N: 1000, Rep: 2, TimeToN: 2.7, Reached: 1000, LastOK: 2.6, Sent: 1400, Retransmits: 400, Lost: 400, MisAcked: 3, CPUPerReg: 2.6, RSSPerSpoke: 7168},
			{Impl: Floor, N: 1000, Rep: 1, TimeToN: 0.3, Reached: 1000, CPUPerReg: 0.4},
			{Impl: Floor, N: 1000, Rep: 2, TimeToN: 0.5, Reached: 1000, CPUPerReg: 0.6},
			{Impl: DMVPND, N: 2000, Rep: 1, TimeToN: 2.0, Reached: 2000, LastOK: 2.0, Sent: 2000, CPUPerReg: 1.0, RSSPerSpoke: 1900,
				Account: &Account{Sent: 2000, Answered: 1990, HubReceived: 2000, HubSent: 1995, SocketDrops: 3, EngineDrops: 2, ReplyMissed: 5}},
			{Impl: FRR, N: 2000, Rep: 1, TimeToN: 5.0, Reached: 2000, LastOK: 5.0, Sent: 2000, CPUPerReg: 2.0, RSSPerSpoke: 7000,
				Account: &Account{Sent: 2000, Answered: 1000, HubReceived: 1990, HubSent: 1000, Transit: 10, SoftnetDrops: 10, SocketDrops: 900, EngineDrops: -1, Unaccounted: 90}},
			{Impl: Floor, N: 2000, Rep: 1, Error: "ip: not started"}, // left out
			{Impl: FRR, N: 2000, Rep: 2, Reached: 1990, LastOK: 9.0, Sent: 2100, Unanswered: 10, Refused: 0, CPUPerReg: 2.0, RSSPerSpoke: 7000},
		},
		Steady: []Steady{
			{Impl: DMVPND, N: 2000, IdleWindow: 600.004, IdleCPU: 11.5, RSSStart: 41 << 20, RSSEnd: 54 << 20, RSSBefore: 52 << 20, Entries: 2000, RefreshRate: 50, RefreshWindow: 20, RefreshCPU: 6, RefreshCPUPer: 1.2, RefreshSuccess: 1000,
				IdleSamples: []IdleSample{{At: 0, RSS: 41 << 20, Anon: 20 << 20, THP: 2 << 20}, {At: 300, RSS: 56 << 20, Anon: 35 << 20, THP: 16 << 20}, {At: 600.004, RSS: 54 << 20, Anon: 33 << 20, THP: 14 << 20}}},
			{Impl: FRR, N: 2000, IdleWindow: 60, IdleCPU: 0.2, RSSStart: 20 << 20, RSSEnd: 20 << 20, RefreshRate: 50, RefreshWindow: 20, RefreshCPU: 2, RefreshCPUPer: 0.4, RefreshSuccess: 990, RefreshLost: 10},
		},
		Phase3: []Phase3{
			{Impl: DMVPND, Rep: 1, HairpinToIndication: ptr(4), FirstToRoute: ptr(60)},
			{Impl: DMVPND, Rep: 2, HairpinToIndication: ptr(12), FirstToRoute: ptr(80)},
			{Impl: FRR, Rep: 1, HairpinToIndication: ptr(20), FirstToRoute: ptr(400)},
			{Impl: FRR, Rep: 2, FirstToRoute: ptr(500), Error: "no traffic indication in the hub's capture"},
			{Impl: DMVPND, IPsec: true, Rep: 1, HairpinToIndication: ptr(5), FirstToRoute: ptr(900), FirstToESP: ptr(1200)},
			{Impl: FRR, IPsec: true, Rep: 1, HairpinToIndication: ptr(30), FirstToRoute: ptr(1500), FirstToESP: ptr(1400)},
		},
		Seconds: 321,
	}
	// dmvpnd's refresh in windows, FRR's in one (a result from before
	// the windows).
	r.Steady[0].SetRefreshWindows([]RefreshWindow{{Seconds: 20, CPU: 6.5, CPUPer: 1.3, Success: 333}, {Seconds: 20, CPU: 5.5, CPUPer: 1.1, Success: 333}, {Seconds: 20, CPU: 6, CPUPer: 1.2, Success: 334}})
	return r
}

// TestRefreshTargetBasis: with windows on both sides the refresh target
// says what its figures are medians of; else (a side from before the
// windows) the single figures.
func TestRefreshTargetBasis(t *testing.T) {
	basis := func(r *Results) string {
		for _, tg := range r.Judge() {
			if strings.HasPrefix(tg.Name, "refresh CPU") {
				return tg.Basis
			}
		}
		t.Fatal("no refresh target")
		return ""
	}
	r := sample()
	if got, want := basis(r), "refresh at 50/s: dmvpnd 6.00 %, FRR 2.00 % of a vCPU"; got != want {
		t.Errorf("FRR without windows: %q, want %q", got, want)
	}
	r.Steady[0].SetRefreshWindows([]RefreshWindow{{Seconds: 6, CPU: 6.5}, {Seconds: 6, CPU: 5.5}, {Seconds: 6, CPU: 6}})
	r.Steady[1].SetRefreshWindows([]RefreshWindow{{Seconds: 6, CPU: 2.5}, {Seconds: 6, CPU: 1.5}})
	if got, want := basis(r), "refresh at 50/s, medians of 3 and 2 windows of 6 s: dmvpnd 6.00 % (5.50-6.50 %), FRR 2.00 % (1.50-2.50 %) of a vCPU"; got != want {
		t.Errorf("with windows: %q, want %q", got, want)
	}
}

// TestSetRefreshWindows: the judged refresh figures are the windows'
// medians (an even count: the mean of the middle two), the counts their
// sums, and the range in the report their extremes.
func TestSetRefreshWindows(t *testing.T) {
	var s Steady
	s.SetRefreshWindows([]RefreshWindow{
		{Seconds: 6.1, CPU: 9.0, CPUPer: 1.9, Success: 250},
		{Seconds: 6.0, CPU: 7.4, CPUPer: 1.5, Success: 249, Lost: 1},
		{Seconds: 6.2, CPU: 8.2, CPUPer: 1.6, Success: 250},
		{Seconds: 6.0, CPU: 8.0, CPUPer: 1.7, Success: 250},
	})
	got := []float64{s.RefreshWindow, s.RefreshCPU, s.RefreshCPUPer, float64(s.RefreshSuccess), float64(s.RefreshLost)}
	want := []float64{6.05, 8.1, 1.65, 999, 1}
	if !cmp.Equal(got, want, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })) {
		t.Errorf("window, CPU, CPU per refresh, acked, lost = %v, want %v", got, want)
	}
	if got, want := s.refreshRange(), "7.40-9.00 %"; got != want {
		t.Errorf("range %q, want %q", got, want)
	}
}

func TestMedianTimeToN(t *testing.T) {
	r := sample()
	for _, tc := range []struct {
		impl string
		n    int
		want float64
	}{
		{DMVPND, 1000, 1.1},
		{FRR, 1000, 2.6},
		{Floor, 1000, 0.4},
		{DMVPND, 2000, 2.0},
		{FRR, 2000, math.Inf(1)}, // one of two never got there
		{Floor, 2000, math.NaN()},
	} {
		got := r.MedianTimeToN(tc.impl, tc.n)
		if !cmp.Equal(tc.want, got, cmp.Comparer(func(a, b float64) bool {
			return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-9 || a == b
		})) {
			t.Errorf("MedianTimeToN(%s, %d) = %v, want %v", tc.impl, tc.n, got, tc.want)
		}
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct {
		max  float64
		n    int
		want float64
	}{
		{10000, 5, 2000},
		{15.47, 5, 5},
		{1.73, 5, 0.5},
		{0, 5, 1},
		{3, 5, 1},
	} {
		if got := niceStep(tc.max, tc.n); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("niceStep(%v, %d) = %v, want %v", tc.max, tc.n, got, tc.want)
		}
	}
}

func TestMarkdownGolden(t *testing.T) { golden.File(t, "sample.md", sample().Markdown()) }

func TestSVGGolden(t *testing.T) {
	s := sample().SVG()
	// Well-formed XML, whatever the golden says.
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			break
		}
	}
	golden.File(t, "sample.svg", s)
}

func TestJSONRoundTrip(t *testing.T) {
	r := sample()
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got Results
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*r, got); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
}

func ptr(v float64) *float64 { return &v }

func TestJudge(t *testing.T) {
	got := map[string]string{}
	for _, tg := range sample().Judge() {
		m := "nil"
		if tg.Measured != nil {
			m = fmtG(*tg.Measured)
		}
		got[tg.Name] = tg.Verdict + " " + m
	}
	want := map[string]string{
		// FRR's second 2k burst never reached N: its median is +Inf.
		"burst: dmvpnd / floor at N=2000":                                   "n/a nil",
		"burst: FRR / dmvpnd at N=2000":                                     "PASS nil",
		"CPU per registration, dmvpnd at N=2000":                            "MISS 1",
		"refresh CPU: dmvpnd / FRR at N=2000":                               "MISS 3",
		"idle CPU, dmvpnd at N=2000":                                        "MISS 11.5",
		"RSS per spoke of the idle hub, dmvpnd at N=2000":                   "MISS 1048.576",
		"RSS flat when idle, dmvpnd at N=2000":                              "MISS 31.707",
		"Phase 3 no IPsec: hairpinned packet -> traffic indication, dmvpnd": "PASS 8",
		"Phase 3 no IPsec: first packet -> shortcut route, dmvpnd":          "PASS 70",
		"Phase 3 IPsec: first packet -> first direct ESP packet, dmvpnd":    "info 1200",
		"hub failover loss window":                                          "n/a nil",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	// RSS flatness is judged over issue 21's 10 min only.
	for _, tc := range []struct {
		window float64
		end    int64
		want   string
	}{
		{600, 41<<20 + 41<<20/100, "PASS 1"},
		{599, 42 << 20, "MISS 2.439"},
		{60, 41 << 20, "n/a 0"},
	} {
		r := sample()
		r.Steady[0].IdleWindow, r.Steady[0].RSSEnd, r.Steady[0].IdleSamples = tc.window, tc.end, nil
		for _, tg := range r.Judge() {
			if strings.HasPrefix(tg.Name, "RSS flat when idle") {
				if got := tg.Verdict + " " + fmtG(*tg.Measured); got != tc.want {
					t.Errorf("RSS flat over %v s: %s, want %s (%s)", tc.window, got, tc.want, tg.Basis)
				}
			}
		}
	}
	// A miss turns into a pass at the bound, not beyond it.
	r := sample()
	r.Bursts = append(r.Bursts, Burst{Impl: Floor, N: 2000, Rep: 2, TimeToN: 1.0, Reached: 2000})
	for _, tg := range r.Judge() {
		if strings.HasPrefix(tg.Name, "burst: dmvpnd / floor") && (tg.Verdict != Pass || *tg.Measured != 2) {
			t.Errorf("dmvpnd 2.0 s, floor 1.0 s: %s %v, want PASS at 2x", tg.Verdict, *tg.Measured)
		}
	}
}
