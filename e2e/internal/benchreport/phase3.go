package benchreport

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Phase3 is one Phase 3 run: a cloud of one hub and two spokes, all run
// by Impl, with or without IPsec, and a ping from s1's LAN to s2's. The
// latencies are milliseconds between kernel timestamps of one guest;
// nil when the event was not seen.
type Phase3 struct {
	Impl  string `json:"impl"`
	IPsec bool   `json:"ipsec"`
	Rep   int    `json:"rep"`
	// HairpinToIndication: the first packet of the flow entering the
	// hub's gre1 -> the hub's traffic indication leaving on gre1
	// (captures on the hub's gre1).
	HairpinToIndication *float64 `json:"hairpin_to_indication_ms,omitempty"`
	// FirstToRoute: the first packet leaving s1's gre1 -> the shortcut
	// route to s2's LAN in s1's kernel (ip -ts monitor route).
	FirstToRoute *float64 `json:"first_packet_to_route_ms,omitempty"`
	// FirstToESP (IPsec only): the first packet leaving s1's gre1 -> the
	// first ESP packet from s1 to s2's NBMA address on s1's eth0.
	FirstToESP *float64 `json:"first_packet_to_esp_ms,omitempty"`
	// Error says why the run has no figures, or which are missing.
	Error string `json:"error,omitempty"`
}

// phase3Figure picks one latency of a Phase3 run.
type phase3Figure struct {
	name  string
	ipsec bool
	get   func(Phase3) *float64
}

var phase3Figures = []phase3Figure{
	{"hairpinned packet -> traffic indication", false, func(p Phase3) *float64 { return p.HairpinToIndication }},
	{"first packet -> shortcut route", false, func(p Phase3) *float64 { return p.FirstToRoute }},
	{"hairpinned packet -> traffic indication", true, func(p Phase3) *float64 { return p.HairpinToIndication }},
	{"first packet -> shortcut route", true, func(p Phase3) *float64 { return p.FirstToRoute }},
	{"first packet -> first direct ESP packet", true, func(p Phase3) *float64 { return p.FirstToESP }},
}

// Phase3Median is the median of a latency over impl's runs with or
// without IPsec, in milliseconds, and how many runs had it of how many;
// NaN when none.
func (r *Results) Phase3Median(impl string, ipsec bool, get func(Phase3) *float64) (ms float64, have, runs int) {
	var v []float64
	for _, p := range r.Phase3 {
		if p.Impl != impl || p.IPsec != ipsec {
			continue
		}
		runs++
		if x := get(p); x != nil {
			v = append(v, *x)
		}
	}
	if len(v) == 0 {
		return math.NaN(), 0, runs
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], len(v), runs
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, len(v), runs
}

// phase3Table renders the Phase 3 medians side by side.
func (r *Results) phase3Table(w *strings.Builder) {
	if len(r.Phase3) == 0 {
		return
	}
	w.WriteString("\n## Phase 3: hub and two spokes, first traffic from s1's LAN to s2's\n\n")
	w.WriteString("Medians in ms (runs with the figure / runs); kernel timestamps of one guest: captures on the hub's and s1's gre1 and s1's eth0, `ip -ts monitor route` on s1.\n\n")
	w.WriteString("| IPsec | latency | dmvpnd | FRR | FRR / dmvpnd |\n|---|---|---|---|---|\n")
	for _, f := range phase3Figures {
		d, dn, dr := r.Phase3Median(DMVPND, f.ipsec, f.get)
		g, gn, gr := r.Phase3Median(FRR, f.ipsec, f.get)
		if dr == 0 && gr == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s (%d/%d) | %s (%d/%d) | %s |\n", map[bool]string{false: "no", true: "yes"}[f.ipsec], f.name,
			num(d, 1, " ms"), dn, dr, num(g, 1, " ms"), gn, gr, ratio(g, d))
	}
	for _, p := range r.Phase3 {
		if p.Error != "" {
			fmt.Fprintf(w, "\nPhase 3 %s IPsec=%t rep %d: %s\n", p.Impl, p.IPsec, p.Rep, p.Error)
		}
	}
}
