package benchreport

import (
	"fmt"
	"math"
	"strings"
)

// Verdicts of a target.
const (
	Pass     = "PASS"
	Miss     = "MISS"
	NoData   = "n/a"  // a figure it needs is missing from this run
	NoTarget = "info" // a figure issue 21 asks for without a bound
)

// Target is one of issue 21's targets judged on one run's figures:
// Measured (in Unit) against Limit, at most or at least. Measured is
// nil when the run lacks a figure it needs.
type Target struct {
	Name     string   `json:"name"`
	Measured *float64 `json:"measured,omitempty"`
	Unit     string   `json:"unit"`
	Limit    float64  `json:"limit,omitempty"`
	AtLeast  bool     `json:"at_least,omitempty"` // false: at most
	Verdict  string   `json:"verdict"`
	// Basis is the figures the measure derives from.
	Basis string `json:"basis"`
}

func (t Target) bound() string {
	if t.Verdict == NoTarget {
		return "-"
	}
	op := "<="
	if t.AtLeast {
		op = ">="
	}
	return fmt.Sprintf("%s %s%s", op, fmtG(t.Limit), t.Unit)
}

func fmtG(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// judge sets Measured and Verdict from v (NaN: no data).
func (t Target) judge(v float64) Target {
	switch {
	case math.IsNaN(v) || math.IsInf(v, -1):
		t.Verdict = NoData
		return t
	case math.IsInf(v, 1):
		// Only a ratio whose denominator never got there: unbounded.
	default:
		t.Measured = &v
	}
	if t.Verdict == NoTarget {
		return t
	}
	if (t.AtLeast && v >= t.Limit) || (!t.AtLeast && v <= t.Limit) {
		t.Verdict = Pass
	} else {
		t.Verdict = Miss
	}
	return t
}

// div is a/b, NaN when either is missing, +Inf when only a is +Inf (the
// other implementation never got there).
func div(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || math.IsInf(b, 0) || b == 0 {
		return math.NaN()
	}
	return a / b
}

// Judge returns issue 21's targets judged on r: the bursts at the largest
// N, the steady state, and Phase 3 without IPsec (medians). The hub
// failover loss window is not measured here (TestDMVPNRedundancy asserts
// it).
func (r *Results) Judge() []Target {
	var out []Target
	n := 0
	if len(r.Sizes) > 0 {
		n = r.Sizes[len(r.Sizes)-1]
	}
	d, f, k := r.MedianTimeToN(DMVPND, n), r.MedianTimeToN(FRR, n), r.MedianTimeToN(Floor, n)
	at := fmt.Sprintf(" at N=%d", n)
	out = append(out,
		Target{Name: "burst: dmvpnd / floor" + at, Unit: "x", Limit: 2,
			Basis: fmt.Sprintf("time to N dmvpnd %s, floor %s", num(d, 2, " s"), num(k, 2, " s"))}.judge(div(d, k)),
		Target{Name: "burst: FRR / dmvpnd" + at, Unit: "x", Limit: 5, AtLeast: true,
			Basis: fmt.Sprintf("time to N FRR %s, dmvpnd %s", num(f, 2, " s"), num(d, 2, " s"))}.judge(div(f, d)))
	cpu := func(b Burst) float64 { return b.CPUPerReg }
	rss := func(b Burst) float64 { return b.RSSPerSpoke }
	dc, fc, kc := median(r.bursts(DMVPND, n), cpu), median(r.bursts(FRR, n), cpu), median(r.bursts(Floor, n), floorCPU)
	cpuBasis := fmt.Sprintf("FRR %s (FRR / dmvpnd %s)", num(fc, 3, " ms"), ratio(fc, dc))
	if !math.IsNaN(kc) {
		cpuBasis += fmt.Sprintf("; floor (ip -batch) %s per entry, dmvpnd / floor %s", num(kc, 3, " ms"), ratio(dc, kc))
	}
	out = append(out, Target{Name: "CPU per registration, dmvpnd" + at, Unit: " ms", Limit: 0.25, Basis: cpuBasis}.judge(dc))
	ds, fs := r.steady(DMVPND), r.steady(FRR)
	refresh, idle, idleFRR, flat := math.NaN(), math.NaN(), math.NaN(), math.NaN()
	refreshBasis, flatBasis := "no steady state", "no steady state"
	if ds != nil {
		idle = ds.IdleCPU
		if ds.RSSStart > 0 {
			flat = float64(ds.RSSEnd-ds.RSSStart) / float64(ds.RSSStart) * 100
		}
		flatBasis = fmt.Sprintf("RSS %.1f -> %.1f MB over %.0f s idle", float64(ds.RSSStart)/(1<<20), float64(ds.RSSEnd)/(1<<20), ds.IdleWindow)
		if len(ds.IdleSamples) > 0 {
			peak, thp0, thp1 := ds.RSSStart, ds.IdleSamples[0].THP, ds.IdleSamples[len(ds.IdleSamples)-1].THP
			for _, x := range ds.IdleSamples {
				peak = max(peak, x.RSS)
			}
			flatBasis += fmt.Sprintf(" (peak %.1f MB of %d samples; in huge pages %.1f -> %.1f MB)", float64(peak)/(1<<20), len(ds.IdleSamples), float64(thp0)/(1<<20), float64(thp1)/(1<<20))
		}
		if fs != nil {
			refresh, idleFRR = div(ds.RefreshCPU, fs.RefreshCPU), fs.IdleCPU
			refreshBasis = fmt.Sprintf("refresh at %.0f/s: dmvpnd %.2f %%, FRR %.2f %% of a vCPU", ds.RefreshRate, ds.RefreshCPU, fs.RefreshCPU)
			if dr, fr := ds.refreshRange(), fs.refreshRange(); dr != "" && fr != "" {
				refreshBasis = fmt.Sprintf("refresh at %.0f/s, medians of %d and %d windows of %.0f s: dmvpnd %.2f %% (%s), FRR %.2f %% (%s) of a vCPU",
					ds.RefreshRate, len(ds.RefreshWindows), len(fs.RefreshWindows), ds.RefreshWindow, ds.RefreshCPU, dr, fs.RefreshCPU, fr)
			}
		}
	}
	out = append(out,
		Target{Name: "refresh CPU: dmvpnd / FRR" + at, Unit: "x", Limit: 1, Basis: refreshBasis}.judge(refresh),
		Target{Name: "idle CPU, dmvpnd" + at, Unit: " % of a vCPU", Limit: 0.5, Basis: fmt.Sprintf("FRR %s", num(idleFRR, 2, " %"))}.judge(idle),
		Target{Name: "RSS per spoke of the idle hub, dmvpnd" + at, Unit: " B", Limit: 1024,
			Basis: fmt.Sprintf("RSS at the end of the idle window over RSS before the burst, per entry (FRR %s); growth over the burst alone (burst's garbage not yet collected): dmvpnd %s, FRR %s",
				num(fs.IdleRSSPerSpoke(), 0, " B"), num(median(r.bursts(DMVPND, n), rss), 0, " B"), num(median(r.bursts(FRR, n), rss), 0, " B"))}.judge(ds.IdleRSSPerSpoke()),
		flatTarget(flat, flatBasis, at, ds))
	for _, p := range []struct {
		name  string
		limit float64
		ipsec bool
		get   func(Phase3) *float64
	}{
		{"Phase 3 no IPsec: hairpinned packet -> traffic indication, dmvpnd", 10, false, phase3Figures[0].get},
		{"Phase 3 no IPsec: first packet -> shortcut route, dmvpnd", 100, false, phase3Figures[1].get},
		{"Phase 3 IPsec: first packet -> first direct ESP packet, dmvpnd", 0, true, phase3Figures[4].get},
	} {
		v, have, runs := r.Phase3Median(DMVPND, p.ipsec, p.get)
		g, _, _ := r.Phase3Median(FRR, p.ipsec, p.get)
		t := Target{Name: p.name, Unit: " ms", Limit: p.limit,
			Basis: fmt.Sprintf("median of %d/%d runs; FRR %s (FRR / dmvpnd %s)", have, runs, num(g, 1, " ms"), ratio(g, v))}
		if p.limit == 0 {
			t.Verdict = NoTarget
		}
		out = append(out, t.judge(v))
	}
	out = append(out, Target{Name: "hub failover loss window", Unit: " s", Limit: 2, Verdict: NoData,
		Basis: "not measured here: TestDMVPNRedundancy asserts it"})
	return out
}

// FlatWindow is how long issue 21 asks an idle dmvpnd's RSS to stay flat
// (10 min), seconds; a shorter idle window is reported, not judged.
const FlatWindow = 600

// flatTarget judges "RSS flat when idle" on growth (percent, from
// basis), over the idle window of ds.
func flatTarget(growth float64, basis, at string, ds *Steady) Target {
	t := Target{Name: "RSS flat when idle, dmvpnd" + at, Unit: " %", Limit: 1, Basis: basis}.judge(growth)
	// The window runs from the first sample to the last, a few
	// milliseconds either side of the asked length: 1 % slack.
	if ds != nil && ds.IdleWindow < 0.99*FlatWindow && t.Verdict != NoData {
		t.Verdict = NoData
		t.Basis += fmt.Sprintf("; not judged: issue 21 asks %d min", FlatWindow/60)
	}
	return t
}

// targetTable renders the targets.
func targetTable(w *strings.Builder, ts []Target) {
	w.WriteString("\n## Targets (issue 21), judged on this run\n\n| target | measured | bound | verdict | from |\n|---|---|---|---|---|\n")
	for _, t := range ts {
		m := "-"
		if t.Measured != nil {
			m = fmtG(*t.Measured) + t.Unit
		} else if t.Verdict != NoData {
			m = "unbounded (the other never reached N)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.Name, m, t.bound(), t.Verdict, t.Basis)
	}
}
