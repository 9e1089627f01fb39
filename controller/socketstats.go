package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// socketStats is the NHRP socket's own drop counter (kernel.NHRPConn):
// packets the kernel dropped because the receive buffer was full.
type socketStats interface {
	Stats() (kernel.NHRPStats, error)
}

// setSocket publishes the running socket's counters (nil: none).
func (c *Controller) setSocket(conn kernel.PacketConn) {
	if s, ok := conn.(socketStats); ok {
		c.sock.Store(&s)
		return
	}
	c.sock.Store(nil)
}

// socketDrops reads the socket's counter; ok is false when no socket
// that counts runs.
func (c *Controller) socketDrops() (kernel.NHRPStats, bool, error) {
	s := c.sock.Load()
	if s == nil {
		return kernel.NHRPStats{}, false, nil
	}
	st, err := (*s).Stats()
	return st, true, err
}

// socketCounters adds the socket's drops to show counters.
func (c *Controller) socketCounters(out map[string]uint64) {
	st, ok, err := c.socketDrops()
	if err != nil {
		c.log.Debug("reading the NHRP socket counters", zap.Error(err))
		return
	}
	if ok {
		out["nhrp_socket_buffer_full_dropped"] = st.Drops
	}
}

// socketCollector exports the socket's drops at scrape time, off the loop.
type socketCollector struct {
	c    *Controller
	desc *prometheus.Desc
}

func newSocketCollector(c *Controller) *socketCollector {
	return &socketCollector{c: c, desc: prometheus.NewDesc("dmvpnd_nhrp_socket_dropped_total",
		"NHRP packets the kernel dropped on the tunnel's packet socket because its receive buffer was full.",
		nil, nil)}
}

func (sc *socketCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sc.desc }

func (sc *socketCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok, err := sc.c.socketDrops()
	switch {
	case err != nil:
		ch <- prometheus.NewInvalidMetric(sc.desc, err)
	case ok:
		ch <- prometheus.MustNewConstMetric(sc.desc, prometheus.CounterValue, float64(st.Drops))
	}
}
