package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"go.uber.org/zap"
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
// classified and sent, then dropped by the peer. ul2, a second veth to the
// same peer with the kernel's default qdisc, carries 11.0.0.0/8: the
// baseline of the per-packet cost.
func qosBenchNode(b *testing.B) int {
	b.Helper()
	fd, peer := newNetNS(b), newNetNS(b)
	vethPair(b, fd, "ul0", "172.16.21.1/24", peer, "peer0", "172.16.21.2/24")
	vethPair(b, fd, "ul2", "172.16.22.1/24", peer, "peer2", "172.16.22.2/24")
	h := nsHandle(b, fd)
	addRoute(b, h, "10.0.0.0/8", "172.16.21.2", 0)
	addRoute(b, h, "11.0.0.0/8", "172.16.22.2", 0)
	return fd
}

// The destinations of the per-packet measurement (qosSendCosts): a target
// whose policy never holds a packet back, a non-target (both through ul0's
// tree, sharing the root's hash buckets with bench targets 10.0.0.1 and
// 10.0.0.2), and the baseline through ul2.
var (
	qosFastTarget = netip.MustParseAddr("10.200.0.1")
	qosNonTarget  = netip.MustParseAddr("10.200.0.2")
	qosBaseDst    = netip.MustParseAddr("11.200.0.1")
)

// qosBenchPolicies are the bench's policies: branch-2m and a policy of the
// same shape at 10 Gbit/s, for the fast target.
func qosBenchPolicies() map[string]QoSPolicy {
	p := qosPolicies()
	fast := p["branch-2m"]
	fast.Rate = 10_000_000_000
	p["fast"] = fast
	return p
}

// qosTimed is the kernel with a stopwatch on each kind of request: where
// an install's time goes.
type qosTimed struct {
	qosLive
	apply, route, dump time.Duration
	ops                int
}

func (t *qosTimed) ApplyQoS(ops []qosOp) []error {
	start := time.Now()
	defer func() { t.apply += time.Since(start); t.ops += len(ops) }()
	return t.qosLive.ApplyQoS(ops)
}

func (t *qosTimed) RouteGet(dst net.IP) ([]netlink.Route, error) {
	start := time.Now()
	defer func() { t.route += time.Since(start) }()
	return t.qosLive.RouteGet(dst)
}

func (t *qosTimed) QdiscList(l netlink.Link) ([]netlink.Qdisc, error) {
	start := time.Now()
	defer func() { t.dump += time.Since(start) }()
	return t.qosLive.QdiscList(l)
}

func (t *qosTimed) ClassList(l netlink.Link, parent uint32) ([]netlink.Class, error) {
	start := time.Now()
	defer func() { t.dump += time.Since(start) }()
	return t.qosLive.ClassList(l, parent)
}

func (t *qosTimed) FilterList(l netlink.Link, parent uint32) ([]netlink.Filter, error) {
	start := time.Now()
	defer func() { t.dump += time.Since(start) }()
	return t.qosLive.FilterList(l, parent)
}

func newTimedKernel(b *testing.B, fd int) (*Kernel, *qosTimed) {
	b.Helper()
	k, err := New(Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	tm := &qosTimed{qosLive: qosLive{Handle: k.nl, k: k}}
	k.qosNL = tm
	return k, tm
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkPrivQoSInstall measures, in a fresh namespace, SetQoS from
// nothing to n targets (install-ms, with the time spent in batches of tc
// changes, route lookups and dumps), an unchanged re-apply, one target
// added and removed again with n installed, the adoption by a new
// instance (dumps, no change), and the per-packet cost of the installed
// tree (see qosSendCosts). Run it in the lab: DMVPND_PRIV_BENCH=PrivQoS
// (see e2e/privileged_test.go); -benchtime 1x there.
func BenchmarkPrivQoSInstall(b *testing.B) {
	for _, n := range []int{1000, 2000, 10000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			targets := qosBenchTargets(n)
			plusOne := qosBenchTargets(n + 1)
			var install, noop, addOne, removeOne, adopt, apply, route, dump time.Duration
			var ops int
			var cost qosCosts
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				fd := qosBenchNode(b)
				k, tm := newTimedKernel(b, fd)
				b.StartTimer()
				start := time.Now()
				if err := k.SetQoS(qosPolicies(), targets); err != nil {
					b.Fatal(err)
				}
				install += time.Since(start)
				b.StopTimer()
				apply, route, dump, ops = apply+tm.apply, route+tm.route, dump+tm.dump, ops+tm.ops
				for _, step := range []struct {
					d       *time.Duration
					targets []QoSTarget
				}{{&noop, targets}, {&addOne, plusOne}, {&removeOne, targets}} {
					start = time.Now()
					if err := k.SetQoS(qosPolicies(), step.targets); err != nil {
						b.Fatal(err)
					}
					*step.d += time.Since(start)
				}
				k2, err := New(Config{NetNS: fd})
				if err != nil {
					b.Fatal(err)
				}
				start = time.Now()
				if err := k2.SetQoS(qosPolicies(), targets); err != nil {
					b.Fatal(err)
				}
				adopt += time.Since(start)
				if c := k2.qosChanges.Load(); c != 0 {
					b.Fatalf("adoption of %d targets made %d changes", n, c)
				}
				if err := k2.SetQoS(qosBenchPolicies(), append(targets, QoSTarget{Dst: qosFastTarget, Policy: "fast"})); err != nil {
					b.Fatal(err)
				}
				cost = cost.add(qosSendCosts(b, fd))
				_ = k.Close()
				_ = k2.Close()
			}
			N := float64(b.N)
			b.ReportMetric(ms(install)/N, "install-ms")
			b.ReportMetric(ms(apply)/N, "batches-ms")
			b.ReportMetric(float64(ops)/N, "changes")
			b.ReportMetric(ms(route)/N, "routeget-ms")
			b.ReportMetric(ms(dump)/N, "dump-ms")
			b.ReportMetric(ms(noop)/N, "reapply-ms")
			b.ReportMetric(ms(addOne)/N, "add1-ms")
			b.ReportMetric(ms(removeOne)/N, "remove1-ms")
			b.ReportMetric(ms(adopt)/N, "adopt-ms")
			b.ReportMetric(ms(install)*1000/N/float64(n), "us/target")
			cost.report(b, N)
		})
	}
}

// BenchmarkPrivQoSClassify is the control of BenchmarkPrivQoSInstall's
// per-packet figures: the same measurement with no tree on ul0, where the
// three paths differ only by the veth they leave through, so what it
// reports beside the baseline is the method's own noise.
func BenchmarkPrivQoSClassify(b *testing.B) {
	b.Run("targets=0", func(b *testing.B) {
		fd := qosBenchNode(b)
		var cost qosCosts
		for i := 0; i < b.N; i++ {
			cost = cost.add(qosSendCosts(b, fd))
		}
		cost.report(b, float64(b.N))
	})
}

// qosCosts are per-packet costs in ns: the baseline (a send through ul2,
// no qdisc) and, for a non-target and the fast target through ul0's tree,
// the median over rounds of the difference to the baseline of the same
// round, with the interquartile range of those differences.
type qosCosts struct {
	base                  float64
	unshaped, unshapedIQR float64
	target, targetIQR     float64
}

func (c qosCosts) add(d qosCosts) qosCosts {
	return qosCosts{c.base + d.base, c.unshaped + d.unshaped, c.unshapedIQR + d.unshapedIQR, c.target + d.target, c.targetIQR + d.targetIQR}
}

func (c qosCosts) report(b *testing.B, n float64) {
	b.ReportMetric(c.base/n, "base-ns/pkt")
	b.ReportMetric(c.unshaped/n, "unshaped+ns/pkt")
	b.ReportMetric(c.unshapedIQR/n, "unshaped-iqr-ns")
	b.ReportMetric(c.target/n, "target+ns/pkt")
	b.ReportMetric(c.targetIQR/n, "target-iqr-ns")
}

// qosSendCosts times sendto of 64-byte UDP datagrams from the namespace
// fd in many short paired rounds (201 of 150 packets: the guest's
// scheduling noise is milliseconds long, so short rounds keep most pairs
// clean and the median discards the others): each round sends packets to
// each of the
// baseline, the non-target and the fast target (in an order that rotates
// with the round), so that the guest's drift, which moves all three of a
// round alike, cancels in the differences. The non-target's packets cross
// the root's two hash lookups and the entry of target 10.0.0.2 and land in
// the unshaped class; the fast target's cross the root's lookups and
// entries, its bucket's qdisc, that qdisc's lookup and its DSCP entries,
// and land in its default class (never throttled at 10 Gbit/s). 1,000
// unmeasured packets to each first.
func qosSendCosts(b *testing.B, fd int) qosCosts {
	b.Helper()
	var c *net.UDPConn
	if err := inNetNS(fd, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const rounds, qosRoundPackets, warm = 201, 150, 1000
	payload := make([]byte, 64)
	dsts := []*net.UDPAddr{{IP: qosBaseDst.AsSlice(), Port: 9}, {IP: qosNonTarget.AsSlice(), Port: 9}, {IP: qosFastTarget.AsSlice(), Port: 9}}
	send := func(to *net.UDPAddr, n int) float64 {
		start := time.Now()
		for range n {
			if _, err := c.WriteToUDP(payload, to); err != nil {
				b.Fatal(err)
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	for _, to := range dsts {
		send(to, warm)
	}
	var base, unshaped, target []float64
	for r := range rounds {
		var ns [3]float64
		for i := range dsts {
			j := (i + r) % len(dsts)
			ns[j] = send(dsts[j], qosRoundPackets)
		}
		base = append(base, ns[0])
		unshaped = append(unshaped, ns[1]-ns[0])
		target = append(target, ns[2]-ns[0])
	}
	q := func(xs []float64, p float64) float64 {
		ys := slices.Clone(xs)
		slices.Sort(ys)
		return ys[int(p*float64(len(ys)-1)+0.5)]
	}
	return qosCosts{
		base:     q(base, 0.5),
		unshaped: q(unshaped, 0.5), unshapedIQR: q(unshaped, 0.75) - q(unshaped, 0.25),
		target: q(target, 0.5), targetIQR: q(target, 0.75) - q(target, 0.25),
	}
}

// qosRecorder is the simulator, keeping every change SetQoS sends.
type qosRecorder struct {
	*qosSim
	ops []qosOp
}

func (r *qosRecorder) ApplyQoS(ops []qosOp) []error {
	r.ops = append(r.ops, ops...)
	return r.qosSim.ApplyQoS(ops)
}

// tcBatchLine renders a change SetQoS sends as the tc(8) command that
// makes the same object on dev (for the floor benchmark; burst sizes are
// tc's own).
func tcBatchLine(op qosOp, dev string) string {
	switch {
	case op.qdisc != nil:
		switch q := op.qdisc.(type) {
		case *netlink.Htb:
			parent := "root"
			if q.Parent != netlink.HANDLE_ROOT {
				parent = "parent " + netlink.HandleStr(q.Parent)
			}
			return fmt.Sprintf("qdisc replace dev %s %s handle %x: htb default %x", dev, parent, q.Handle>>16, q.Defcls)
		case *netlink.FqCodel:
			return fmt.Sprintf("qdisc replace dev %s parent %s handle %x: fq_codel limit %d flows %d memory_limit %d ecn",
				dev, netlink.HandleStr(q.Parent), q.Handle>>16, q.Limit, q.Flows, q.MemoryLimit)
		}
	case op.class != nil:
		c := op.class
		return fmt.Sprintf("class replace dev %s parent %s classid %s htb rate %dbit ceil %dbit prio %d quantum %d",
			dev, netlink.HandleStr(c.Parent), netlink.HandleStr(c.Handle), c.Rate*8, c.Ceil*8, c.Prio, c.Quantum)
	case op.filter != nil:
		f := op.filter
		h := f.Handle
		line := fmt.Sprintf("filter add dev %s parent %x: prio %d protocol ip ", dev, f.Parent>>16, qosFilterPrio)
		if f.Divisor != 0 {
			return line + fmt.Sprintf("handle %x: u32 divisor %d", h>>20, f.Divisor)
		}
		line += fmt.Sprintf("handle %x:%x:%x u32 ht %x:%x:", h>>20, (h>>12)&0xff, h&0xfff, h>>20, (h>>12)&0xff)
		keys := []nl.TcU32Key{{}}
		if f.Sel != nil {
			keys = f.Sel.Keys
		}
		for _, k := range keys {
			line += fmt.Sprintf(" match u32 0x%08x 0x%08x at %d", k.Val, k.Mask, k.Off)
		}
		if f.Link != 0 {
			line += fmt.Sprintf(" hashkey mask 0x%08x at %d link %x:", f.Sel.Hmask, f.Sel.Hoff, f.Link>>20)
		}
		if f.ClassId != 0 {
			line += " flowid " + netlink.HandleStr(f.ClassId)
		}
		return line
	}
	return ""
}

// BenchmarkPrivQoSFloor is the kernel's floor for an install: the very
// objects SetQoS makes for n targets (recorded against the simulator),
// written as a tc batch file and run by `tc -batch` (one request and ack
// per object, in C) in a fresh namespace; compare its floor-ms with
// BenchmarkPrivQoSInstall's install-ms from the same boot. The ",loaded"
// variant first installs the same tree in another namespace, which stays:
// if the floor grows with it, the kernel's cost per object depends on
// objects elsewhere in the host (a global structure), not on our tree.
func BenchmarkPrivQoSFloor(b *testing.B) {
	batchFile := func(b *testing.B, n int) (string, int) {
		rec := &qosRecorder{qosSim: newQoSSim()}
		rec.addDevice(2, "10.0.0.0/8")
		sk := &Kernel{log: zap.NewNop(), qosNL: rec}
		if err := sk.SetQoS(qosPolicies(), qosBenchTargets(n)); err != nil {
			b.Fatal(err)
		}
		var sb strings.Builder
		for _, op := range rec.ops {
			sb.WriteString(tcBatchLine(op, "ul0") + "\n")
		}
		file := filepath.Join(b.TempDir(), "qos.tc")
		if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		return file, len(rec.ops)
	}
	run := func(b *testing.B, fd int, file string, n int) time.Duration {
		cmd, done := nsCommand(b, fd, "tc", "-batch", file)
		defer done()
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("tc -batch: %v: %s", err, out)
		}
		// The same tree: a new instance adopts all n targets.
		k, err := New(Config{NetNS: fd})
		if err != nil {
			b.Fatal(err)
		}
		defer k.Close()
		if err := k.loadQoS(k.qosHandle()); err != nil {
			b.Fatal(err)
		}
		if got := len(k.qos.targets); got != n {
			b.Fatalf("the tc batch made %d adoptable targets, want %d", got, n)
		}
		return took
	}
	for _, v := range []struct {
		n      int
		loaded bool
	}{{1000, false}, {2000, false}, {1000, true}} {
		name := fmt.Sprintf("targets=%d", v.n)
		if v.loaded {
			name += ",loaded"
		}
		b.Run(name, func(b *testing.B) {
			file, changes := batchFile(b, v.n)
			b.StopTimer()
			if v.loaded {
				run(b, qosBenchNode(b), file, v.n)
			}
			var floor time.Duration
			for i := 0; i < b.N; i++ {
				fd := qosBenchNode(b)
				floor += run(b, fd, file, v.n)
			}
			b.ReportMetric(ms(floor)/float64(b.N), "floor-ms")
			b.ReportMetric(float64(changes), "changes")
		})
	}
}
