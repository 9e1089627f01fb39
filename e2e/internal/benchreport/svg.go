package benchreport

import (
	"fmt"
	"math"
	"strings"
)

// Plot geometry (pixels).
const (
	plotW, plotH               = 640, 400
	padL, padR, padT, padB     = 64, 150, 40, 48
	innerW, innerH             = plotW - padL - padR, plotH - padT - padB
	tickLen                    = 5
	legendX, legendY, legendDY = plotW - padR + 16, padT + 10, 22
)

var colors = map[string]string{DMVPND: "#1f77b4", FRR: "#d62728", Floor: "#2ca02c"}

var labels = map[string]string{DMVPND: "dmvpnd", FRR: "FRR nhrpd + zebra", Floor: "ip -batch (floor)"}

// niceStep is a 1/2/5 x 10^k step that splits max into about n intervals.
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// SVG plots the median time to N entries against N, one line per
// implementation (points never reached are left out), linear axes from 0.
func (r *Results) SVG() string {
	maxN, maxT := 0.0, 0.0
	for _, n := range r.Sizes {
		maxN = math.Max(maxN, float64(n))
		for _, impl := range Impls {
			if t := r.MedianTimeToN(impl, n); !math.IsNaN(t) && !math.IsInf(t, 0) {
				maxT = math.Max(maxT, t)
			}
		}
	}
	xStep, yStep := niceStep(maxN, 5), niceStep(maxT, 5)
	xMax, yMax := math.Ceil(maxN/xStep)*xStep, math.Ceil(maxT/yStep)*yStep
	if xMax == 0 {
		xMax = 1
	}
	if yMax == 0 {
		yMax = 1
	}
	x := func(v float64) float64 { return padL + v/xMax*innerW }
	y := func(v float64) float64 { return padT + innerH - v/yMax*innerH }

	var w strings.Builder
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&w, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&w, `<text x="%d" y="20" font-size="14">Time to N hub kernel neighbour entries (median, %s)</text>`+"\n", padL, r.Date)
	// Grid and ticks.
	for v := 0.0; v <= xMax+xStep/2; v += xStep {
		fmt.Fprintf(&w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(v), padT, x(v), padT+innerH)
		fmt.Fprintf(&w, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(v), padT+innerH+tickLen+13, v)
	}
	for v := 0.0; v <= yMax+yStep/2; v += yStep {
		fmt.Fprintf(&w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", padL, y(v), padL+innerW, y(v))
		fmt.Fprintf(&w, `<text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", padL-tickLen-3, y(v)+4, v)
	}
	fmt.Fprintf(&w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>`+"\n", padL, padT, innerW, innerH)
	fmt.Fprintf(&w, `<text x="%d" y="%d" text-anchor="middle">N (spokes)</text>`+"\n", padL+innerW/2, plotH-8)
	fmt.Fprintf(&w, `<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">seconds</text>`+"\n", padT+innerH/2)
	var never []string
	for i, impl := range Impls {
		var pts []string
		for _, n := range r.Sizes {
			t := r.MedianTimeToN(impl, n)
			if math.IsInf(t, 1) {
				never = append(never, fmt.Sprintf("%s N=%d", labels[impl], n))
			}
			if math.IsNaN(t) || math.IsInf(t, 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(n)), y(t)))
		}
		c := colors[impl]
		if len(pts) > 0 {
			fmt.Fprintf(&w, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
			for _, p := range pts {
				xy := strings.Split(p, ",")
				fmt.Fprintf(&w, `<circle cx="%s" cy="%s" r="3.5" fill="%s"/>`+"\n", xy[0], xy[1], c)
			}
		}
		ly := legendY + i*legendDY
		fmt.Fprintf(&w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", legendX, ly, legendX+20, ly, c)
		fmt.Fprintf(&w, `<text x="%d" y="%d">%s</text>`+"\n", legendX+26, ly+4, labels[impl])
	}
	if len(never) > 0 {
		fmt.Fprintf(&w, `<text x="%d" y="34" font-size="10">not plotted, N never reached: %s</text>`+"\n", padL, strings.Join(never, ", "))
	}
	w.WriteString("</svg>\n")
	return w.String()
}
