package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// qosBenchTargets returns n targets in 10.0.0.0/8 spread over the hash
// buckets (consecutive addresses), all with the 3-class policy.
func qosBenchTargets(n int) []QoSTarget {
	out := make([]QoSTarget, n)
	for i := range out {
		out[i] = QoSTarget{Dst: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Policy: "branch-2m"}
		out[i].Dst = out[i].Dst.Next() // skip 10.0.0.0
	}
	return out
}

// qosBenchNode is a namespace with ul0 (a veth) carrying the route to
// 10.0.0.0/8 towards a peer that answers for nothing: packets are
// classified and sent, then dropped by the peer.
func qosBenchNode(b *testing.B) int {
	b.Helper()
	fd, peer := newNetNS(b), newNetNS(b)
	vethPair(b, fd, "ul0", "172.16.21.1/24", peer, "peer0", "172.16.21.2/24")
	addRoute(b, nsHandle(b, fd), "10.0.0.0/8", "172.16.21.2", 0)
	return fd
}

// BenchmarkPrivQoSInstall measures SetQoS from nothing to n targets, an
// unchanged re-apply, one target added and removed again with n
// installed, and the adoption by a new instance (dumps, no change), in a
// fresh namespace each round. Run it in the lab:
// DMVPND_PRIV_BENCH=PrivQoS (see e2e/privileged_test.go).
func BenchmarkPrivQoSInstall(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			targets := qosBenchTargets(n)
			plusOne := qosBenchTargets(n + 1)
			var install, noop, addOne, removeOne time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				fd := qosBenchNode(b)
				k, err := New(Config{NetNS: fd})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				if err := k.SetQoS(qosPolicies(), targets); err != nil {
					b.Fatal(err)
				}
				install += time.Since(start)
				b.StopTimer()
				start = time.Now()
				if err := k.SetQoS(qosPolicies(), targets); err != nil {
					b.Fatal(err)
				}
				noop += time.Since(start)
				start = time.Now()
				if err := k.SetQoS(qosPolicies(), plusOne); err != nil {
					b.Fatal(err)
				}
				addOne += time.Since(start)
				start = time.Now()
				if err := k.SetQoS(qosPolicies(), targets); err != nil {
					b.Fatal(err)
				}
				removeOne += time.Since(start)
				k2, err := New(Config{NetNS: fd})
				if err != nil {
					b.Fatal(err)
				}
				start = time.Now()
				if err := k2.SetQoS(qosPolicies(), targets); err != nil {
					b.Fatal(err)
				}
				adopt := time.Since(start)
				if c := k2.qosChanges.Load(); c != 0 {
					b.Fatalf("adoption of %d targets made %d changes", n, c)
				}
				b.ReportMetric(float64(adopt.Milliseconds()), "adopt-ms")
				_ = k.Close()
				_ = k2.Close()
			}
			b.ReportMetric(float64(install.Milliseconds())/float64(b.N), "install-ms")
			b.ReportMetric(float64(noop.Milliseconds())/float64(b.N), "reapply-ms")
			b.ReportMetric(float64(addOne.Milliseconds())/float64(b.N), "add1-ms")
			b.ReportMetric(float64(removeOne.Milliseconds())/float64(b.N), "remove1-ms")
			b.ReportMetric(float64(install.Microseconds())/float64(b.N)/float64(n), "us/target")
		})
	}
}

// BenchmarkPrivQoSClassify measures the cost of sending one UDP packet
// (sendto through ul0's qdisc) to a destination that shares its hash
// buckets with installed targets, with no QoS tree, and with 10k targets
// installed: the difference is the per-packet cost of the tree (hashed
// u32 lookup plus HTB).
func BenchmarkPrivQoSClassify(b *testing.B) {
	for _, n := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			fd := qosBenchNode(b)
			if n > 0 {
				k, err := New(Config{NetNS: fd})
				if err != nil {
					b.Fatal(err)
				}
				defer k.Close()
				if err := k.SetQoS(qosPolicies(), qosBenchTargets(n)); err != nil {
					b.Fatal(err)
				}
			}
			var c *net.UDPConn
			if err := inNetNS(fd, func() error {
				var err error
				c, err = net.ListenUDP("udp4", &net.UDPAddr{})
				return err
			}); err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			// A non-target in the same buckets as target 10.1.0.1: the lookup
			// walks its bucket to the end, then lands in the unshaped class.
			to := &net.UDPAddr{IP: net.IP{10, 200, 0, 1}, Port: 9}
			payload := make([]byte, 64)
			// A fixed count per round, so that -benchtime 1x (the lab) still
			// measures many packets; ns/packet is the figure to compare.
			const packets = 20000
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N*packets; i++ {
				if _, err := c.WriteToUDP(payload, to); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*packets), "ns/packet")
		})
	}
}
