package controller

import "github.com/prometheus/client_golang/prometheus"

// labelledCounter exports one counter family with a single label, read at
// scrape time (off the loop) by read; a nil answer exports nothing.
type labelledCounter struct {
	desc *prometheus.Desc
	read func() []labelledCount
}

// labelledCount is one series of a labelledCounter.
type labelledCount struct {
	label string
	n     uint64
}

func newLabelledCounter(name, help, label string, read func() []labelledCount) *labelledCounter {
	return &labelledCounter{desc: prometheus.NewDesc(name, help, []string{label}, nil), read: read}
}

func (lc *labelledCounter) Describe(ch chan<- *prometheus.Desc) { ch <- lc.desc }

func (lc *labelledCounter) Collect(ch chan<- prometheus.Metric) {
	for _, v := range lc.read() {
		ch <- prometheus.MustNewConstMetric(lc.desc, prometheus.CounterValue, float64(v.n), v.label)
	}
}
