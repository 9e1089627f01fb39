package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
)

func branchPolicy() QoSPolicy {
	return QoSPolicy{Rate: 2_000_000, Classes: []QoSClass{
		{Name: "voice", DSCP: []uint8{46}, Priority: true, Rate: 256_000},
		{Name: "video", DSCP: []uint8{34, 36}, Rate: 512_000, Ceil: 1_500_000},
		{Name: "signalling", DSCP: []uint8{24}, Rate: 64_000},
	}}
}

func TestCompilePolicy(t *testing.T) {
	testValidate(t, branchPolicy, "kernel: qos policy: ", []validateCase[QoSPolicy]{
		{"valid", func(*QoSPolicy) {}, ""},
		{"no classes", func(p *QoSPolicy) { p.Classes = nil }, ""},
		{"rate too low", func(p *QoSPolicy) { p.Rate = 100 }, "rate 100 bit/s out of range"},
		{"burst too small", func(p *QoSPolicy) { p.Burst = 100 }, "burst 100 bytes out of range"},
		{"too many classes", func(p *QoSPolicy) {
			for i := 0; i < 2; i++ {
				p.Classes = append(p.Classes, QoSClass{Name: string(rune('a' + i)), DSCP: []uint8{uint8(i)}, Rate: 8000})
			}
		}, "5 classes, at most 4"},
		{"empty name", func(p *QoSPolicy) { p.Classes[0].Name = "" }, "name must be 1-32 printable"},
		{"reserved name", func(p *QoSPolicy) { p.Classes[0].Name = "default" }, `name "default" is reserved`},
		{"duplicate name", func(p *QoSPolicy) { p.Classes[1].Name = "voice" }, "duplicate name"},
		{"no dscp", func(p *QoSPolicy) { p.Classes[2].DSCP = nil }, "no DSCP value"},
		{"dscp range", func(p *QoSPolicy) { p.Classes[2].DSCP = []uint8{64} }, "DSCP 64 out of range"},
		{"dscp twice", func(p *QoSPolicy) { p.Classes[2].DSCP = []uint8{46} }, `DSCP 46 already in class 1 "voice"`},
		{"class rate above policy", func(p *QoSPolicy) { p.Classes[1].Rate = 3_000_000 }, "rate 3000000 bit/s out of range"},
		{"ceil below rate", func(p *QoSPolicy) { p.Classes[1].Ceil = 100_000 }, "ceil 100000 bit/s out of range"},
		{"oversubscribed", func(p *QoSPolicy) { p.Classes[0].Rate, p.Classes[1].Rate = 1_000_000, 1_000_000 }, "classes guarantee 2064000 bit/s"},
	})
	tree, err := compilePolicy(branchPolicy())
	if err != nil {
		t.Fatal(err)
	}
	want := qosTree{rate: 2_000_000, burst: 3200, leaves: []qosLeaf{
		{name: "voice", dscp: []uint8{46}, priority: true, rate: 256_000, ceil: 256_000},
		{name: "video", dscp: []uint8{34, 36}, rate: 512_000, ceil: 1_500_000},
		{name: "signalling", dscp: []uint8{24}, rate: 64_000, ceil: 2_000_000},
		{name: "default", rate: 2_000_000 - 832_000, ceil: 2_000_000},
	}}
	if d := cmp.Diff(want, tree, cmp.AllowUnexported(qosTree{}, qosLeaf{})); d != "" {
		t.Errorf("compilePolicy (-want +got):\n%s", d)
	}
}

func TestQoSHandleLayout(t *testing.T) {
	last := QoSMaxTargets - 1
	if top := qosSlotBase(last) + qosSlotWidth - 1; top > qosMaxMinor {
		t.Errorf("last slot %d reaches minor %#x, above %#x", last, top, qosMaxMinor)
	}
	if next := qosSlotBase(last+1) + qosSlotWidth - 1; next <= qosMaxMinor {
		t.Errorf("QoSMaxTargets %d wastes slot %d (top minor %#x)", QoSMaxTargets, last+1, next)
	}
	if QoSMaxTargets < 10_000 {
		t.Errorf("QoSMaxTargets = %d, want at least 10k", QoSMaxTargets)
	}
	for _, minor := range []uint32{qosSlotBase(0), qosSlotBase(7) + 3, qosSlotBase(last) + 5} {
		slot, off, ok := qosSlotOf(minor)
		if !ok || qosSlotBase(slot)+uint32(off) != minor {
			t.Errorf("qosSlotOf(%#x) = %d, %d, %v: does not round-trip", minor, slot, off, ok)
		}
	}
	for _, minor := range []uint32{0, 1, 0xd, 0xf, 0xffff} {
		if _, _, ok := qosSlotOf(minor); ok {
			t.Errorf("qosSlotOf(%#x) ok, want outside every slot", minor)
		}
	}
	// A leaf's qdisc major is its class minor: never the root's, a
	// bucket's or ffff:.
	if qosRootMajor >= qosBucketFirst || qosRootMajor == qosUnshaped&0xffff {
		t.Errorf("root major %#x collides with a bucket or leaf major", qosRootMajor)
	}
	if last := qosBucketMajor(qosBuckets - 1); last >= qosSlotFirst {
		t.Errorf("bucket major %#x reaches the slots (%#x)", last, qosSlotFirst)
	}
	for _, m := range []uint32{qosBucketMajor(0), qosBucketMajor(qosBuckets - 1)} {
		if b, ok := qosBucketOfMajor(m); !ok || qosBucketMajor(b) != m {
			t.Errorf("qosBucketOfMajor(%#x) = %d, %v: does not round-trip", m, b, ok)
		}
	}
	for _, m := range []uint32{qosRootMajor, qosBucketFirst - 1, qosSlotFirst} {
		if _, ok := qosBucketOfMajor(m); ok {
			t.Errorf("qosBucketOfMajor(%#x) ok, want no bucket", m)
		}
	}
}

// TestQoSBucketSpread: the bucket hash spreads destinations that share
// their low bits (consecutive addresses, /30 links, .1 everywhere) over the
// buckets, so no HTB qdisc holds much more than its share of classes.
func TestQoSBucketSpread(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		addr func(i int) netip.Addr
	}{
		{"consecutive", 10_000, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }},
		{"/30 links", 10_000, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{100, 64, byte(i >> 6), byte(i<<2 | 2)}) }},
		{"one per /24", 10_000, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			count := make([]int, qosBuckets)
			for i := range tc.n {
				count[qosBucketOf(tc.addr(i))]++
			}
			mean := tc.n / qosBuckets
			if m := slices.Max(count); m > 2*mean {
				t.Errorf("fullest bucket holds %d targets, more than twice the mean %d", m, mean)
			}
			if m := slices.Min(count); m == 0 {
				t.Errorf("a bucket is empty")
			}
		})
	}
}

func TestQoSFilterHashLayout(t *testing.T) {
	dst := netip.MustParseAddr("198.51.100.2")
	if got, want := qosL2HTID(dst), uint32(0x102); got != want {
		t.Errorf("second-level table = %#x, want %#x (0x100 + last octet)", got, want)
	}
	if got, want := qosBucket(dst), uint32(0x102<<20|100<<12); got != want {
		t.Errorf("bucket = %08x, want %08x (third octet)", got, want)
	}
	root := qosRootLink(7, qosRootHandle)
	if root.Handle != 0x80000001 || root.Hash != 0x80000000 || root.Link != 0x00100000 || root.Sel.Hmask != 0xff || root.Sel.Hoff != 16 {
		t.Errorf("root link node = handle %08x hash %08x link %08x hmask %08x hoff %d", root.Handle, root.Hash, root.Link, root.Sel.Hmask, root.Sel.Hoff)
	}
	l1 := qosL1Link(7, qosL2HTID(dst))
	if l1.Handle != 0x00102001 || l1.Hash != 0x00102000 || l1.Link != 0x10200000 || l1.Sel.Hmask != 0xff00 {
		t.Errorf("level-1 link node = handle %08x hash %08x link %08x hmask %08x", l1.Handle, l1.Hash, l1.Link, l1.Sel.Hmask)
	}
	if tb := qosHashTable(7, qosRootHandle, 0x102); tb.Handle != 0x10200000 || tb.Divisor != 256 {
		t.Errorf("table = handle %08x divisor %d", tb.Handle, tb.Divisor)
	}
	bucket := qosBucketMajor(qosBucketOf(dst))
	re := qosRootEntry(7, dst, 3)
	if re.Handle != 0x10264003 || re.Hash != 0x10264000 || re.Parent != qosRootHandle || re.ClassId != qosRootHandle|bucket {
		t.Errorf("root entry handle %08x hash %08x parent %08x class %08x", re.Handle, re.Hash, re.Parent, re.ClassId)
	}
	classid := bucket<<16 | 0x201
	f := qosEntryFilter(7, dst, 3, qosEntry{dscp: 46, classid: classid})
	if f.Handle != 0x00102003 || f.Hash != 0x00102000 || f.Parent != bucket<<16 {
		t.Errorf("entry handle %08x hash %08x parent %08x, want 00102003 (table 1:, last octet) on %x:", f.Handle, f.Hash, f.Parent, bucket)
	}
	// 46 << 2 = 0xb8, the TOS byte, second octet of the first word.
	want := []struct{ mask, val uint32 }{{0xffffffff, 0xc6336402}, {0x00fc0000, 0x00b80000}}
	for i, k := range f.Sel.Keys {
		if k.Mask != want[i].mask || k.Val != want[i].val {
			t.Errorf("key %d = mask %08x val %08x, want %08x %08x", i, k.Mask, k.Val, want[i].mask, want[i].val)
		}
	}
	gotDst, e, ok := parseQoSEntry(f)
	if !ok || gotDst != dst || e != (qosEntry{dscp: 46, classid: classid}) {
		t.Errorf("parseQoSEntry = %s %+v %v", gotDst, e, ok)
	}
	if _, _, ok := parseQoSEntry(l1); ok {
		t.Error("a hash link parsed as an entry")
	}
}

func TestTargetObjectsOrder(t *testing.T) {
	tree, err := compilePolicy(branchPolicy())
	if err != nil {
		t.Fatal(err)
	}
	o := targetObjects(7, 2, tree)
	base := qosBucketMajor(7)<<16 | qosSlotBase(2)
	want := []qosEntry{{24, base + 3}, {34, base + 2}, {36, base + 2}, {46, base + 1}, {-1, base + 4}}
	if d := cmp.Diff(want, o.entries, cmp.AllowUnexported(qosEntry{})); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
	if len(o.classes) != 5 || o.classes[0].parent != qosBucketMajor(7)<<16 || o.classes[1].prio != 0 || o.classes[2].prio != 1 {
		t.Errorf("classes = %+v", o.classes)
	}
	for i, l := range o.leaves {
		if l.parent != o.classes[i+1].handle || l.handle != (o.classes[i+1].handle&0xffff)<<16 {
			t.Errorf("leaf %d = %+v", i, l)
		}
	}
}

// qosKernel returns a Kernel whose QoS calls go to sim.
func qosKernel(sim *qosSim) *Kernel {
	return &Kernel{log: zap.NewNop(), qosNL: sim}
}

func TestSetQoSInstallAdoptRemove(t *testing.T) {
	sim := newQoSSim()
	sim.addDevice(2, "198.51.100.0/24")
	policies := map[string]QoSPolicy{"branch-2m": branchPolicy(), "small": {Rate: 512_000}}
	targets := []QoSTarget{
		{Dst: netip.MustParseAddr("198.51.100.2"), Policy: "branch-2m"},
		{Dst: netip.MustParseAddr("198.51.100.3"), Policy: "small"},
		{Dst: netip.MustParseAddr("198.51.100.4"), Policy: "branch-2m"},
	}
	k := qosKernel(sim)
	if err := k.SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}
	golden.File(t, "qos_install.golden", sim.render())

	before := sim.changes
	if err := k.SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}
	if sim.changes != before {
		t.Errorf("same state again: %d netlink changes, want 0", sim.changes-before)
	}
	// A restarted daemon adopts the tree without touching it.
	k2 := qosKernel(sim)
	if err := k2.SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}
	if sim.changes != before {
		t.Errorf("adoption: %d netlink changes, want 0", sim.changes-before)
	}
	stats, err := k2.QoSStats()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range stats[0].Classes {
		names = append(names, c.Name)
	}
	if d := cmp.Diff([]string{"voice", "video", "signalling", "default"}, names); d != "" || len(stats) != 3 {
		t.Errorf("stats: %d targets, names (-want +got):\n%s", len(stats), d)
	}

	// One target leaves: only its objects go (its entry on the root, 5
	// entries and 5 classes on its bucket).
	before = sim.changes
	if err := k2.SetQoS(policies, []QoSTarget{targets[0], targets[1]}); err != nil {
		t.Fatal(err)
	}
	if got := sim.changes - before; got != 11 {
		t.Errorf("removing one target: %d changes, want 11", got)
	}
	if strings.Contains(sim.render(), "198.51.100.4") {
		t.Error("removed target still has filters")
	}
	// A policy change rebuilds the targets that use it.
	small := policies["small"]
	small.Rate = 1_000_000
	policies["small"] = small
	if err := k2.SetQoS(policies, []QoSTarget{targets[0], targets[1]}); err != nil {
		t.Fatal(err)
	}
	q := qosBucketMajor(qosBucketOf(targets[1].Dst))
	if want := fmt.Sprintf("class htb %x:207 parent %x:206 rate 1000000 ceil 1000000 prio 1", q, q); !strings.Contains(sim.render(), want) {
		t.Errorf("changed policy not applied:\n%s", sim.render())
	}
	// Nothing left: the device gets its default qdisc back.
	if err := k2.SetQoS(policies, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := sim.render(), "dev 2 qdisc noqueue none parent root\n"; got != want {
		t.Errorf("after removing all:\n%s\nwant %q", got, want)
	}
}

func TestSetQoSRefusals(t *testing.T) {
	sim := newQoSSim()
	sim.addDevice(2, "198.51.100.0/24")
	sim.addDevice(3, "203.0.113.0/24")
	sim.qdiscs[simKey{3, 0}].Attrs().Handle = 0x10000 // an administrator's "1:"
	sim.local[netip.MustParseAddr("198.51.100.1")] = true
	bad := branchPolicy()
	bad.Classes[0].DSCP = []uint8{99}
	policies := map[string]QoSPolicy{"branch-2m": branchPolicy(), "bad": bad}
	failDst := netip.MustParseAddr("198.51.100.9")
	sim.fail = func(op string, h uint32) error {
		if op == "filter" && h&^qosMaxNode == qosBucket(failDst) {
			return syscall.ENOMEM
		}
		return nil
	}
	targets := []QoSTarget{
		{Dst: netip.MustParseAddr("198.51.100.2"), Policy: "branch-2m"},
		{Dst: netip.MustParseAddr("198.51.100.2"), Policy: "bad"},        // conflicting duplicate
		{Dst: netip.MustParseAddr("2001:db8::1"), Policy: "branch-2m"},   // not IPv4
		{Dst: netip.MustParseAddr("224.0.0.5"), Policy: "branch-2m"},     // multicast
		{Dst: netip.MustParseAddr("198.51.100.3"), Policy: "nope"},       // unknown policy
		{Dst: netip.MustParseAddr("198.51.100.4"), Policy: "bad"},        // invalid policy
		{Dst: netip.MustParseAddr("192.0.2.1"), Policy: "branch-2m"},     // no route
		{Dst: netip.MustParseAddr("198.51.100.1"), Policy: "branch-2m"},  // local
		{Dst: netip.MustParseAddr("203.0.113.5"), Policy: "branch-2m"},   // foreign root qdisc
		{Dst: failDst, Policy: "branch-2m"},                              // kernel refuses
		{Dst: netip.MustParseAddr("198.51.100.10"), Policy: "branch-2m"}, // fine
	}
	err := qosKernel(sim).SetQoS(policies, targets)
	var qe *QoSErrors
	if !errors.As(err, &qe) {
		t.Fatalf("err = %v, want *QoSErrors", err)
	}
	got := map[string]QoSRefusal{}
	for _, f := range qe.Failed {
		got[f.Dst.String()+" "+f.Policy] = f.Reason
	}
	want := map[string]QoSRefusal{
		"198.51.100.2 bad":       QoSInvalidTarget,
		"2001:db8::1 branch-2m":  QoSInvalidTarget,
		"224.0.0.5 branch-2m":    QoSInvalidTarget,
		"198.51.100.3 nope":      QoSInvalidPolicy,
		"198.51.100.4 bad":       QoSInvalidPolicy,
		"192.0.2.1 branch-2m":    QoSNoRoute,
		"198.51.100.1 branch-2m": QoSNoRoute,
		"203.0.113.5 branch-2m":  QoSForeignQdisc,
		"198.51.100.9 branch-2m": QoSKernel,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("refusals (-want +got):\n%s", d)
	}
	r := sim.render()
	for _, s := range []string{"dst 198.51.100.2 flowid", "dst 198.51.100.10 flowid"} {
		if !strings.Contains(r, s) {
			t.Errorf("good target missing (%s):\n%s", s, r)
		}
	}
	if strings.Contains(r, "198.51.100.9") || strings.Contains(r, "dev 3 class") {
		t.Errorf("refused targets left objects behind:\n%s", r)
	}
	if n := strings.Count(r, "dev 2 class htb") - strings.Count(r, " parent d:0 "); n != 2*5 {
		t.Errorf("%d classes on dev 2's buckets, want 10 (2 targets): the failed target's were not cleaned up:\n%s", n, r)
	}
	if !strings.Contains(r, "dev 3 qdisc noqueue 1:0 parent root") {
		t.Errorf("foreign root qdisc touched:\n%s", r)
	}
}

func TestSetQoSNoRoom(t *testing.T) {
	sim := newQoSSim()
	sim.addDevice(2, "10.0.0.0/8")
	k := qosKernel(sim)
	policies := map[string]QoSPolicy{"p": {Rate: 1_000_000}}
	if err := k.SetQoS(policies, []QoSTarget{{Dst: netip.MustParseAddr("10.0.0.1"), Policy: "p"}}); err != nil {
		t.Fatal(err)
	}
	d := k.qos.devs[2]
	for s := 0; s < QoSMaxTargets; s++ {
		d.slots[s] = netip.MustParseAddr("10.255.255.255")
	}
	err := k.SetQoS(policies, []QoSTarget{{Dst: netip.MustParseAddr("10.0.0.1"), Policy: "p"}, {Dst: netip.MustParseAddr("10.0.0.2"), Policy: "p"}})
	if !errors.Is(err, ErrResourceExhausted) {
		t.Errorf("err = %v, want ErrResourceExhausted", err)
	}
}

func TestAdoptDumpStale(t *testing.T) {
	policies := map[string]QoSPolicy{"p": branchPolicy()}
	a, b := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	targets := []QoSTarget{{Dst: a, Policy: "p"}, {Dst: b, Policy: "p"}}
	for _, tc := range []struct {
		name string
		drop func(tb *qosInstalled) *netlink.U32 // the node a crash left out
	}{
		{"no entry on the root", func(tb *qosInstalled) *netlink.U32 {
			return &netlink.U32{FilterAttrs: qosFilterAttrs(2, qosRootHandle, qosBucket(b)|tb.rootNode)}
		}},
		{"no catch-all", func(tb *qosInstalled) *netlink.U32 {
			return &netlink.U32{FilterAttrs: qosFilterAttrs(2, tb.bucketParent(), qosInnerBucket(b)|tb.nodes[len(tb.nodes)-1])}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := newQoSSim()
			sim.addDevice(2, "198.51.100.0/24")
			k := qosKernel(sim)
			if err := k.SetQoS(policies, targets); err != nil {
				t.Fatal(err)
			}
			want := sim.render()
			// A crash while installing b: one of its nodes never made it.
			if err := sim.FilterDel(tc.drop(k.qos.targets[b])); err != nil {
				t.Fatal(err)
			}
			k2 := qosKernel(sim)
			if err := k2.loadQoS(k2.qosHandle()); err != nil {
				t.Fatal(err)
			}
			if _, ok := k2.qos.targets[b]; ok {
				t.Error("half-installed target adopted")
			}
			if _, ok := k2.qos.targets[a]; !ok {
				t.Error("complete target not adopted")
			}
			if err := k2.SetQoS(policies, targets); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, sim.render()); d != "" {
				t.Errorf("after adopting a half-installed target (-want +got):\n%s", d)
			}
		})
	}
}

// TestSetQoSLegacyLayout: a tree of the previous layout (each target's
// classes right on the root qdisc, entries on the root leading to them) is
// rebuilt once: the root goes, and the result is what a fresh install
// makes; the next instance adopts it without a change.
func TestSetQoSLegacyLayout(t *testing.T) {
	policies := map[string]QoSPolicy{"p": {Rate: 1_000_000}}
	dst := netip.MustParseAddr("198.51.100.2")
	targets := []QoSTarget{{Dst: dst, Policy: "p"}}
	fresh := newQoSSim()
	fresh.addDevice(2, "198.51.100.0/24")
	if err := qosKernel(fresh).SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}

	sim := newQoSSim()
	sim.addDevice(2, "198.51.100.0/24")
	// The previous layout of the same target, as it installed it: slot 0 at
	// d:10 with its default class d:11, the entry in the root's table 102:.
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: 2, Handle: qosRootHandle, Parent: netlink.HANDLE_ROOT})
	root.Defcls = 1
	uc, ul := unshapedObjects()
	old := []qosOp{{qdisc: root}}
	old = append(old, classOps(2, uc, ul)...)
	old = append(old, classOps(2, htbClass(qosRootHandle|0x10, qosRootHandle, 1_000_000, 1_000_000, 3200, 3200, 0), fqSpec{})...)
	old = append(old, classOps(2, htbClass(qosRootHandle|0x11, qosRootHandle|0x10, 1_000_000, 1_000_000, 3200, 3200, 1), fqLeaf(qosRootHandle|0x11, 1_000_000))...)
	old = append(old,
		qosOp{filter: qosHashTable(2, qosRootHandle, qosL1HT)}, qosOp{filter: qosRootLink(2, qosRootHandle)},
		qosOp{filter: qosHashTable(2, qosRootHandle, qosL2HTID(dst))}, qosOp{filter: qosL1Link(2, qosL2HTID(dst))},
		qosOp{filter: qosMatch(2, qosRootHandle, qosBucket(dst), 1, dst, qosEntry{dscp: -1, classid: qosRootHandle | 0x11})})
	for i, err := range sim.ApplyQoS(old) {
		if err != nil {
			t.Fatalf("old layout, %s: %v", old[i], err)
		}
	}

	k := qosKernel(sim)
	if err := k.loadQoS(k.qosHandle()); err != nil {
		t.Fatal(err)
	}
	if d := k.qos.devs[2]; d == nil || !d.legacy || len(k.qos.targets) != 0 {
		t.Fatalf("old layout read as %+v, %d targets; want legacy, none", d, len(k.qos.targets))
	}
	if err := k.SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fresh.render(), sim.render()); d != "" {
		t.Errorf("rebuilt tree differs from a fresh install (-want +got):\n%s", d)
	}
	before := sim.changes
	if err := qosKernel(sim).SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}
	if sim.changes != before {
		t.Errorf("adopting the rebuilt tree: %d changes, want 0", sim.changes-before)
	}
}

func TestQoSSlotReuse(t *testing.T) {
	sim := newQoSSim()
	sim.addDevice(2, "10.0.0.0/8")
	k := qosKernel(sim)
	policies := map[string]QoSPolicy{"p": {Rate: 1_000_000}}
	tg := func(s string) QoSTarget { return QoSTarget{Dst: netip.MustParseAddr(s), Policy: "p"} }
	for _, step := range []struct {
		targets []QoSTarget
		slots   map[string]int
	}{
		{[]QoSTarget{tg("10.0.0.1"), tg("10.0.0.2"), tg("10.0.0.3")}, map[string]int{"10.0.0.1": 0, "10.0.0.2": 1, "10.0.0.3": 2}},
		{[]QoSTarget{tg("10.0.0.2"), tg("10.0.0.3")}, map[string]int{"10.0.0.2": 1, "10.0.0.3": 2}},
		{[]QoSTarget{tg("10.0.0.2"), tg("10.0.0.3"), tg("10.0.0.4"), tg("10.0.0.5")}, map[string]int{"10.0.0.2": 1, "10.0.0.3": 2, "10.0.0.4": 0, "10.0.0.5": 3}},
	} {
		if err := k.SetQoS(policies, step.targets); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for dst, in := range k.qos.targets {
			got[dst.String()] = in.slot
		}
		if d := cmp.Diff(step.slots, got); d != "" {
			t.Errorf("slots (-want +got):\n%s", d)
		}
	}
}

// TestSetQoSForeignNode: a node SetQoS did not make sits where a new
// target's entry on the root goes. The target is refused without deleting
// that node; the next call reads the kernel again, removes it (everything
// under our root is ours) and installs the target.
func TestSetQoSForeignNode(t *testing.T) {
	sim := newQoSSim()
	sim.addDevice(2, "0.0.0.0/0")
	k := qosKernel(sim)
	policies := map[string]QoSPolicy{"p": branchPolicy()}
	a, b := netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("203.0.100.2") // one bucket of the root's table
	if err := k.SetQoS(policies, []QoSTarget{{Dst: a, Policy: "p"}}); err != nil {
		t.Fatal(err)
	}
	// a's entry holds node 1.
	foreign := qosMatch(2, qosRootHandle, qosBucket(b), 2, netip.MustParseAddr("192.0.2.9"), qosEntry{dscp: -1, classid: qosUnshaped})
	if err := sim.FilterAdd(foreign); err != nil {
		t.Fatal(err)
	}
	targets := []QoSTarget{{Dst: a, Policy: "p"}, {Dst: b, Policy: "p"}}
	err := k.SetQoS(policies, targets)
	var qe *QoSErrors
	if !errors.As(err, &qe) || len(qe.Failed) != 1 || qe.Failed[0].Dst != b || !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("err = %v, want %s refused (EEXIST)", err, b)
	}
	r := sim.render()
	if !strings.Contains(r, "dst 192.0.2.9 flowid d:1") || strings.Contains(r, "dst 203.0.100.2") {
		t.Errorf("after the refusal, want the foreign node kept and nothing of %s:\n%s", b, r)
	}
	if err := k.SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}
	r = sim.render()
	if strings.Contains(r, "192.0.2.9") || !strings.Contains(r, "dst 203.0.100.2 flowid") {
		t.Errorf("second call: want the foreign node gone and %s installed:\n%s", b, r)
	}
}

// TestQoSDriftedBucketClass: a bucket class that differs from what SetQoS
// makes (changed by hand, or made by tc with its own burst sizes) is put
// right in place; its targets are adopted, not reinstalled.
func TestQoSDriftedBucketClass(t *testing.T) {
	sim := newQoSSim()
	sim.addDevice(2, "198.51.100.0/24")
	policies := map[string]QoSPolicy{"p": branchPolicy()}
	dst := netip.MustParseAddr("198.51.100.2")
	targets := []QoSTarget{{Dst: dst, Policy: "p"}}
	if err := qosKernel(sim).SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}
	want := sim.render()
	bc := sim.classes[simKey{2, qosRootHandle | qosBucketMajor(qosBucketOf(dst))}]
	bc.Rate, bc.Quantum = 1_000_000, 200_000
	before := sim.changes
	if err := qosKernel(sim).SetQoS(policies, targets); err != nil {
		t.Fatal(err)
	}
	if got := sim.changes - before; got != 1 {
		t.Errorf("%d changes, want 1 (the bucket class replaced)", got)
	}
	if d := cmp.Diff(want, sim.render()); d != "" {
		t.Errorf("tree after the fix (-want +got):\n%s", d)
	}
}
