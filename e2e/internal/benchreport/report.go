// Package benchreport holds the figures of `make bench-lab` (e2e
// TestBenchLab) and renders them: a side-by-side Markdown table (dmvpnd |
// FRR | kernel floor, with ratios), JSON, and an SVG plot of the time to N
// kernel entries against N. It does no measuring itself.
package benchreport

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Implementations, in the order of the table's columns.
const (
	DMVPND = "dmvpnd"
	FRR    = "frr"
	Floor  = "floor" // ip -batch of N neighbour entries
)

// Impls lists the implementations in column order.
var Impls = []string{DMVPND, FRR, Floor}

// Burst is one registration burst of N spokes (or one ip -batch of N
// entries for Floor) in one repetition.
type Burst struct {
	Impl string `json:"impl"`
	N    int    `json:"n"`
	Rep  int    `json:"rep"`
	// TimeToN is from the first registration sent (Floor: ip started)
	// to the N-th entry in the hub kernel's neighbour table, seconds;
	// zero when N was never reached (Reached tells how far it got).
	TimeToN float64 `json:"time_to_n_s"`
	Reached int     `json:"reached"`
	// LastOK is from the first registration sent to the last success
	// reply received, seconds.
	LastOK      float64 `json:"last_success_s,omitempty"`
	Sent        int     `json:"sent,omitempty"`
	Retransmits int     `json:"retransmits,omitempty"`
	Lost        int     `json:"lost,omitempty"` // transmissions without a reply: sent - replies
	// HubUnanswered is the IPv4 packets the hub received during the
	// burst minus those it sent (NHRP is its only IPv4 then): requests
	// it never answered, however late, unlike Lost.
	HubUnanswered int `json:"hub_unanswered"`
	Unanswered    int `json:"unanswered,omitempty"` // spokes never answered
	Refused       int `json:"refused,omitempty"`
	MisAcked      int `json:"mis_acked,omitempty"` // acked, but not in the table
	// CPUPerReg is the hub daemons' utime+stime during the burst per
	// successful registration, milliseconds; for Floor, the ip -batch's
	// per entry it programmed (the kernel's own cost of an entry).
	CPUPerReg float64 `json:"cpu_per_registration_ms,omitempty"`
	// RSSPerSpoke is the daemons' RSS growth over the burst per entry,
	// bytes.
	RSSPerSpoke float64 `json:"rss_per_spoke_bytes,omitempty"`
	Overflows   int     `json:"watch_overflows,omitempty"`
	// Account says where every request went (not for Floor).
	Account *Account `json:"account,omitempty"`
	// Error says why the burst did not run (e.g. the hub did not start);
	// its figures are then empty and left out of the medians.
	Error string `json:"error,omitempty"`
}

// Steady is the steady state of a hub holding N registrations.
type Steady struct {
	Impl string `json:"impl"`
	N    int    `json:"n"`
	// IdleCPU is the daemons' CPU over IdleWindow seconds with nothing
	// sent, percent of one vCPU.
	IdleWindow float64 `json:"idle_window_s"`
	// QuietWait is how long the hub took, after the burst, to hold
	// nothing queued and send nothing for 5 s (the idle window follows).
	QuietWait float64 `json:"quiet_wait_s"`
	IdleCPU   float64 `json:"idle_cpu_pct"`
	// RSS at the start and end of the idle window, bytes.
	RSSStart int64 `json:"rss_start_bytes"`
	RSSEnd   int64 `json:"rss_end_bytes"`
	// RSSBefore is the daemons' RSS just before the burst that filled the
	// table (its Entries entries): (RSSEnd - RSSBefore) / Entries is the
	// idle hub's RSS per spoke.
	RSSBefore int64 `json:"rss_before_burst_bytes,omitempty"`
	Entries   int   `json:"entries,omitempty"`
	// IdleSamples is the idle window's trajectory, the first sample at
	// its start and the last at its end.
	IdleSamples []IdleSample `json:"idle_samples,omitempty"`
	// Refresh: re-registrations of registered spokes at RefreshRate per
	// second in RefreshWindows; RefreshWindow, RefreshCPU and
	// RefreshCPUPer are the windows' medians, RefreshSuccess and
	// RefreshLost their sums (SetRefreshWindows).
	RefreshRate    float64         `json:"refresh_rate"`
	RefreshWindow  float64         `json:"refresh_window_s"`
	RefreshCPU     float64         `json:"refresh_cpu_pct"`
	RefreshCPUPer  float64         `json:"refresh_cpu_per_registration_ms"`
	RefreshSuccess int             `json:"refresh_success"`
	RefreshLost    int             `json:"refresh_lost"`
	RefreshWindows []RefreshWindow `json:"refresh_windows,omitempty"`
}

// RefreshWindow is one window of steady refreshes: its length, the
// daemons' CPU over it (percent of one vCPU) and per acknowledged
// refresh (ms), the refreshes acknowledged and lost.
type RefreshWindow struct {
	Seconds float64 `json:"s"`
	CPU     float64 `json:"cpu_pct"`
	CPUPer  float64 `json:"cpu_per_registration_ms"`
	Success int     `json:"success"`
	Lost    int     `json:"lost"`
}

// SetRefreshWindows records ws and sets the refresh figures from them:
// one window's CPU moves by about 10 % from the next under TCG, so the
// judged figure is the median of several.
func (s *Steady) SetRefreshWindows(ws []RefreshWindow) {
	s.RefreshWindows = ws
	s.RefreshWindow = median(ws, func(w RefreshWindow) float64 { return w.Seconds })
	s.RefreshCPU = median(ws, func(w RefreshWindow) float64 { return w.CPU })
	s.RefreshCPUPer = median(ws, func(w RefreshWindow) float64 { return w.CPUPer })
	s.RefreshSuccess, s.RefreshLost = 0, 0
	for _, w := range ws {
		s.RefreshSuccess += w.Success
		s.RefreshLost += w.Lost
	}
}

// refreshRange is the lowest and highest window CPU, "" without windows.
func (s *Steady) refreshRange() string {
	if len(s.RefreshWindows) == 0 {
		return ""
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, w := range s.RefreshWindows {
		lo, hi = min(lo, w.CPU), max(hi, w.CPU)
	}
	return fmt.Sprintf("%.2f-%.2f %%", lo, hi)
}

// IdleSample is the daemons' memory at one instant of the idle window.
type IdleSample struct {
	At float64 `json:"t_s"` // since the window's start
	// RSS (VmRSS), of which anonymous (RssAnon), of which in transparent
	// huge pages (AnonHugePages), bytes.
	RSS  int64 `json:"rss_bytes"`
	Anon int64 `json:"anon_bytes"`
	THP  int64 `json:"thp_bytes"`
}

// Results is one bench-lab run.
type Results struct {
	Date   string   `json:"date"`
	Commit string   `json:"commit"`
	Guest  string   `json:"guest"` // kernel, vCPUs, accelerator
	Load   string   `json:"host_load"`
	Sizes  []int    `json:"sizes"`
	Reps   int      `json:"repetitions"`
	Setup  []string `json:"setup"` // what the figures depend on, one line each
	Bursts []Burst  `json:"bursts"`
	Steady []Steady `json:"steady"`
	Phase3 []Phase3 `json:"phase3,omitempty"`
	// Targets are issue 21's targets judged on this run's figures
	// (filled by Judge).
	Targets []Target `json:"targets,omitempty"`
	Seconds float64  `json:"duration_s"`
	// Partial: written while the run was still going (it may have been
	// cut short there).
	Partial bool `json:"partial,omitempty"`
}

// JSON renders r indented.
func (r *Results) JSON() ([]byte, error) {
	r.Targets = r.Judge()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("benchreport: %w", err)
	}
	return append(b, '\n'), nil
}

// bursts returns r's bursts of impl with N = n.
func (r *Results) bursts(impl string, n int) []Burst {
	var out []Burst
	for _, b := range r.Bursts {
		if b.Impl == impl && b.N == n && b.Error == "" {
			out = append(out, b)
		}
	}
	return out
}

// median of the values f picks, NaN when there are none. A burst that
// never reached N counts as +Inf for TimeToN, so a median is finite only
// when most repetitions got there.
func median[T any](xs []T, f func(T) float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func timeToN(b Burst) float64 {
	if b.Reached < b.N {
		return math.Inf(1)
	}
	return b.TimeToN
}

// MedianTimeToN is the median time to N entries of impl (NaN: no burst;
// +Inf: most never got there).
func (r *Results) MedianTimeToN(impl string, n int) float64 {
	return median(r.bursts(impl, n), timeToN)
}

func sum(bs []Burst, f func(Burst) int) int {
	t := 0
	for _, b := range bs {
		t += f(b)
	}
	return t
}

// num renders a figure with the given precision and unit, "-" when there
// is none and "never" when it was not reached.
func num(v float64, prec int, unit string) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 1):
		return "never"
	}
	return fmt.Sprintf("%.*f%s", prec, v, unit)
}

// floorCPU is a floor burst's CPU per entry, NaN when not measured
// (results from before the bench measured it).
func floorCPU(b Burst) float64 {
	if b.CPUPerReg == 0 {
		return math.NaN()
	}
	return b.CPUPerReg
}

// ratio renders a/b as "N.Nx".
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fx", a/b)
}

// Markdown renders the side-by-side tables.
func (r *Results) Markdown() string {
	var w strings.Builder
	fmt.Fprintf(&w, "# bench-lab %s\n\n", r.Date)
	if r.Partial {
		fmt.Fprintf(&w, "**Partial: written after %.0f s while the run was still going.**\n\n", r.Seconds)
	}
	fmt.Fprintf(&w, "Commit %s; guest %s; host load %s; %d repetition(s), implementations alternating; medians unless stated.\n\n",
		r.Commit, r.Guest, r.Load, r.Reps)
	for _, s := range r.Setup {
		fmt.Fprintf(&w, "- %s\n", s)
	}
	targetTable(&w, r.Judge())
	w.WriteString("\n## Burst: N spokes register at full rate\n\n")
	w.WriteString("| N | dmvpnd to N kernel entries | FRR (nhrpd + zebra) | `ip -batch` (floor) | dmvpnd / floor | FRR / dmvpnd |\n|---|---|---|---|---|---|\n")
	for _, n := range r.Sizes {
		d, f, k := r.MedianTimeToN(DMVPND, n), r.MedianTimeToN(FRR, n), r.MedianTimeToN(Floor, n)
		fmt.Fprintf(&w, "| %d | %s | %s | %s | %s | %s |\n", n, num(d, 2, " s"), num(f, 2, " s"), num(k, 2, " s"), ratio(d, k), ratio(f, d))
	}
	w.WriteString("\n| N | last success reply dmvpnd | FRR | CPU per registration dmvpnd | FRR | FRR / dmvpnd | floor (`ip -batch` per entry) | dmvpnd / floor | RSS per spoke dmvpnd | FRR |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range r.Sizes {
		bd, bf, bk := r.bursts(DMVPND, n), r.bursts(FRR, n), r.bursts(Floor, n)
		lastOK := func(b Burst) float64 { return b.LastOK }
		cpu := func(b Burst) float64 { return b.CPUPerReg }
		rss := func(b Burst) float64 { return b.RSSPerSpoke / 1024 }
		fmt.Fprintf(&w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n,
			num(median(bd, lastOK), 2, " s"), num(median(bf, lastOK), 2, " s"),
			num(median(bd, cpu), 3, " ms"), num(median(bf, cpu), 3, " ms"), ratio(median(bf, cpu), median(bd, cpu)),
			num(median(bk, floorCPU), 3, " ms"), ratio(median(bd, cpu), median(bk, floorCPU)),
			num(median(bd, rss), 2, " KB"), num(median(bf, rss), 2, " KB"))
	}
	w.WriteString("\nSums over all repetitions: requests sent, of which retransmissions; lost: transmissions the generator got no reply for by its end, sent minus replies (a spoke's retransmissions carry its request id, so a hub may answer them once; answers the hub sent later count here too); hub unanswered: requests the hub received and never answered (its IPv4 in minus out); spokes never answered; spokes refused; mis-acked: spokes acknowledged with success whose entry the hub kernel did not hold at the end:\n\n")
	w.WriteString("| N | impl | sent | retransmitted | lost | hub unanswered | spokes unanswered | refused | mis-acked |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range r.Sizes {
		for _, impl := range []string{DMVPND, FRR} {
			bs := r.bursts(impl, n)
			if len(bs) == 0 {
				continue
			}
			fmt.Fprintf(&w, "| %d | %s | %d | %d | %d | %d | %d | %d | %d |\n", n, impl,
				sum(bs, func(b Burst) int { return b.Sent }), sum(bs, func(b Burst) int { return b.Retransmits }),
				sum(bs, func(b Burst) int { return b.Lost }), sum(bs, func(b Burst) int { return b.HubUnanswered }),
				sum(bs, func(b Burst) int { return b.Unanswered }),
				sum(bs, func(b Burst) int { return b.Refused }), sum(bs, func(b Burst) int { return b.MisAcked }))
		}
	}
	r.accountTable(&w)
	if len(r.Steady) > 0 {
		w.WriteString("\n## Steady state\n\n")
		if slices.ContainsFunc(r.Steady, func(s Steady) bool { return len(s.RefreshWindows) > 0 }) {
			w.WriteString("Refresh CPU: the median of the windows (the lowest and highest in brackets).\n\n")
		}
		w.WriteString("| impl | N | quiet after | idle CPU (% of a vCPU) | window | RSS start -> end | refresh CPU (% of a vCPU) | rate | CPU per refresh | refreshes acked / lost |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range r.Steady {
			cpu, windows := fmt.Sprintf("%.2f %%", s.RefreshCPU), fmt.Sprintf("for %.0f s", s.RefreshWindow)
			if rg := s.refreshRange(); rg != "" {
				cpu += " (" + rg + ")"
				windows = fmt.Sprintf("in %d windows of %.0f s", len(s.RefreshWindows), s.RefreshWindow)
			}
			fmt.Fprintf(&w, "| %s | %d | %.0f s | %.2f %% | %.0f s | %.1f -> %.1f MB | %s | %.0f/s %s | %.3f ms | %d / %d |\n",
				s.Impl, s.N, s.QuietWait, s.IdleCPU, s.IdleWindow, float64(s.RSSStart)/(1<<20), float64(s.RSSEnd)/(1<<20),
				cpu, s.RefreshRate, windows, s.RefreshCPUPer, s.RefreshSuccess, s.RefreshLost)
		}
		if d, f := r.steady(DMVPND), r.steady(FRR); d != nil && f != nil {
			fmt.Fprintf(&w, "\nRatios dmvpnd / FRR: idle CPU %s, refresh CPU %s.\n", ratio(d.IdleCPU, f.IdleCPU), ratio(d.RefreshCPU, f.RefreshCPU))
		}
		for _, s := range r.Steady {
			if len(s.IdleSamples) == 0 {
				continue
			}
			fmt.Fprintf(&w, "\nIdle memory of %s (t: RSS, of which anonymous, of which in transparent huge pages, MB):", s.Impl)
			for i, x := range s.IdleSamples {
				sep := ";"
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(&w, "%s %.0f s: %.1f, %.1f, %.1f", sep, x.At, float64(x.RSS)/(1<<20), float64(x.Anon)/(1<<20), float64(x.THP)/(1<<20))
			}
			w.WriteString(".\n")
		}
	}
	r.phase3Table(&w)
	w.WriteString("\n## Every burst\n\n| impl | N | rep | time to N | reached | last success | sent | lost | refused | mis-acked | CPU/reg | RSS/spoke |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, b := range r.Bursts {
		if b.Error != "" {
			continue
		}
		fmt.Fprintf(&w, "| %s | %d | %d | %s | %d | %s | %d | %d | %d | %d | %.3f ms | %.0f B |\n", b.Impl, b.N, b.Rep,
			num(timeToN(b), 3, " s"), b.Reached, num(b.LastOK, 3, " s"), b.Sent, b.Lost, b.Refused, b.MisAcked, b.CPUPerReg, b.RSSPerSpoke)
	}
	for _, b := range r.Bursts {
		if b.Error != "" {
			fmt.Fprintf(&w, "\nNot run: %s N=%d rep %d: %s\n", b.Impl, b.N, b.Rep, b.Error)
		}
	}
	fmt.Fprintf(&w, "\nTotal run time %.0f s.\n", r.Seconds)
	return w.String()
}

func (r *Results) steady(impl string) *Steady {
	for i := range r.Steady {
		if r.Steady[i].Impl == impl {
			return &r.Steady[i]
		}
	}
	return nil
}

// IdleRSSPerSpoke is the idle hub's RSS per table entry at the end of the
// idle window, over its RSS before the burst; NaN when not measured.
func (s *Steady) IdleRSSPerSpoke() float64 {
	if s == nil || s.Entries == 0 || s.RSSBefore == 0 {
		return math.NaN()
	}
	return float64(s.RSSEnd-s.RSSBefore) / float64(s.Entries)
}
