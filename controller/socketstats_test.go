package controller

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// statsConn is a packet socket that counts its drops (kernel.NHRPConn's
// Stats).
type statsConn struct {
	st  kernel.NHRPStats
	err error
}

func (statsConn) ReadFrom([]byte) (int, netip.Addr, error) {
	return 0, netip.Addr{}, errors.New("no packets")
}
func (statsConn) WriteTo(b []byte, _ netip.Addr) (int, error) { return len(b), nil }
func (statsConn) Close() error                                { return nil }
func (s statsConn) Stats() (kernel.NHRPStats, error)          { return s.st, s.err }

type noStatsConn struct{ kernel.PacketConn }

// TestSocketDropsVisible: the NHRP socket's drops (receive buffer full)
// are in show counters and in dmvpnd_nhrp_socket_dropped_total while a
// socket runs, and absent when none does or it cannot be read.
func TestSocketDropsVisible(t *testing.T) {
	c := &Controller{log: zap.NewNop()}
	col := newSocketCollector(c)
	out := map[string]uint64{}
	c.socketCounters(out)
	if len(out) != 0 {
		t.Errorf("counters without a socket: %v", out)
	}
	if n := testutil.CollectAndCount(col); n != 0 {
		t.Errorf("%d metrics without a socket", n)
	}

	c.setSocket(statsConn{st: kernel.NHRPStats{Packets: 100, Drops: 3}})
	c.socketCounters(out)
	if len(out) != 1 || out["nhrp_socket_buffer_full_dropped"] != 3 {
		t.Errorf("counters: %v, want nhrp_socket_buffer_full_dropped 3", out)
	}
	want := `# HELP dmvpnd_nhrp_socket_dropped_total NHRP packets the kernel dropped on the tunnel's packet socket because its receive buffer was full.
# TYPE dmvpnd_nhrp_socket_dropped_total counter
dmvpnd_nhrp_socket_dropped_total 3
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	c.setSocket(statsConn{err: errors.New("socket closed")})
	clear(out)
	c.socketCounters(out)
	if len(out) != 0 {
		t.Errorf("counters of an unreadable socket: %v", out)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	if _, err := reg.Gather(); err == nil {
		t.Error("an unreadable socket's collector reported no error")
	}

	c.setSocket(nil)
	if n := testutil.CollectAndCount(col); n != 0 {
		t.Errorf("%d metrics after the socket closed", n)
	}
	// A connection that does not count (a test fake) publishes nothing.
	c.setSocket(noStatsConn{})
	if n := testutil.CollectAndCount(col); n != 0 {
		t.Errorf("%d metrics for a socket without counters", n)
	}
}
