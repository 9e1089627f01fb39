package kernel

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// TestQoSOpEncoding pins the wire form of every kind of change SetQoS
// sends (the lab's TestPrivQoS proves the kernel takes them and dumps back
// what was meant): hex, one message per line.
func TestQoSOpEncoding(t *testing.T) {
	tree, err := compilePolicy(branchPolicy())
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddr("198.51.100.2")
	inst := &qosInstalled{dst: dst, slot: 0, objs: targetObjects(qosBucketOf(dst), 0, tree), nodes: []uint32{1, 2, 3, 4, 5}, rootNode: 1}
	uc, ul := unshapedObjects()
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: 7, Handle: qosRootHandle, Parent: netlink.HANDLE_ROOT})
	root.Defcls = 1
	ops := []qosOp{{qdisc: root}}
	ops = append(ops, classOps(7, uc, ul)...)
	ops = append(ops, qosOp{filter: qosHashTable(7, qosRootHandle, qosL1HT)}, qosOp{filter: qosRootLink(7, qosRootHandle)})
	ops = append(ops, qosOp{filter: qosHashTable(7, qosRootHandle, qosL2HTID(dst))}, qosOp{filter: qosL1Link(7, qosL2HTID(dst))})
	ops = append(ops, bucketOps(7, qosBucketOf(dst), qosBucketState{})...) // class, qdisc, table, link
	install := installOps(7, inst)
	ops = append(ops, install[:3]...)              // target class, first leaf and its fq_codel
	ops = append(ops, install[len(install)-3:]...) // a DSCP entry, the catch-all, the root's entry
	remove := removeOps(7, inst)
	ops = append(ops, remove[0], remove[1], remove[len(remove)-1]) // the root's entry, the catch-all, the target class
	ops = append(ops, qosOp{del: true, qdisc: root})

	var lines []string
	for i, op := range ops {
		seq := uint32(100 + i)
		b, err := op.appendMsg(nil, seq)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(b)
		if err != nil || len(msgs) != 1 || int(msgs[0].Header.Len) != len(b) {
			t.Fatalf("%s: %d messages, err %v: not one well-formed netlink message", op, len(msgs), err)
		}
		h := msgs[0].Header
		if h.Seq != seq || h.Flags&unix.NLM_F_ACK == 0 || h.Flags&unix.NLM_F_REQUEST == 0 {
			t.Errorf("%s: seq %d flags %#x, want seq %d with REQUEST|ACK", op, h.Seq, h.Flags, seq)
		}
		// No HTB rate tables (2 KiB per class): the kernel computes its own.
		if len(b) > 256 {
			t.Errorf("%s: %d bytes", op, len(b))
		}
		lines = append(lines, op.String()+" "+hex.EncodeToString(b))
	}
	golden.File(t, "qos_batch.golden", strings.Join(lines, "\n")+"\n")

	// Network byte order where the kernel wants it: the entry's address
	// key (198.51.100.2 = c6336402) and the root link's hash mask.
	entry, _ := install[len(install)-2].appendMsg(nil, 1)
	if !strings.Contains(hex.EncodeToString(entry), "ffffffffc6336402") {
		t.Errorf("entry lacks mask ffffffff value c6336402 in network order: %x", entry)
	}
	link, _ := qosOp{filter: qosRootLink(7, qosRootHandle)}.appendMsg(nil, 1)
	if !strings.Contains(hex.EncodeToString(link), "000000ff") {
		t.Errorf("root link lacks hmask 000000ff in network order: %x", link)
	}
	if _, err := (qosOp{}).appendMsg(nil, 1); err == nil {
		t.Error("an empty change was encoded")
	}
}

// wireNL is the simulator for dumps and routes, with changes going
// through the real encoder and batcher to a fake socket (which applies
// nothing).
type wireNL struct {
	*qosSim
	k *Kernel
}

func (w wireNL) ApplyQoS(ops []qosOp) []error { return qosLive{k: w.k}.ApplyQoS(ops) }

// TestQoSBatchRefusalWire: a batch of 200 targets (several transactions)
// in which the kernel refuses one class of the 101st: that target alone is
// reported, with the refused object and the errno, and cleaned up; every
// other target is installed.
func TestQoSBatchRefusalWire(t *testing.T) {
	sim := newQoSSim()
	sim.addDevice(2, "10.0.0.0/8")
	var targets []QoSTarget
	buckets := map[int]bool{}
	for i := range 200 {
		targets = append(targets, QoSTarget{Dst: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Policy: "p"})
		buckets[qosBucketOf(targets[i].Dst)] = true
	}
	refused := qosBucketMajor(qosBucketOf(targets[100].Dst))<<16 | (qosSlotBase(100) + 2)
	fake := &fakeNL{perRead: 7, refuseTC: func(typ uint16, h uint32) syscall.Errno {
		if typ == unix.RTM_NEWTCLASS && h == refused {
			return syscall.ENOMEM
		}
		return 0
	}}
	k := &Kernel{log: zap.NewNop(), batch: &nlBatcher{conn: fake}}
	k.qosNL = wireNL{qosSim: sim, k: k}
	err := k.SetQoS(map[string]QoSPolicy{"p": branchPolicy()}, targets)
	var qe *QoSErrors
	if !errors.As(err, &qe) || len(qe.Failed) != 1 {
		t.Fatalf("err = %v, want one refused target", err)
	}
	f := qe.Failed[0]
	if f.Dst != targets[100].Dst || f.Reason != QoSKernel || !errors.Is(f.Err, syscall.ENOMEM) {
		t.Errorf("refusal = %+v, want %s %s ENOMEM", f, targets[100].Dst, QoSKernel)
	}
	if want := fmt.Sprintf("add class %s dev 2", netlink.HandleStr(refused)); !strings.Contains(f.Error(), want) {
		t.Errorf("refusal %q does not name %q", f.Error(), want)
	}
	for i, tg := range targets {
		_, in := k.qos.targets[tg.Dst]
		if in != (i != 100) {
			t.Errorf("target %s installed = %v", tg.Dst, in)
		}
	}
	if _, used := k.qos.devs[2].slots[100]; used {
		t.Error("the refused target's slot was not released")
	}
	// Root, skeleton, the install (200 targets x 15 changes, 2 per hash
	// table on the root, 4 per bucket, in transactions of maxNLBatch) and
	// the clean-up.
	ops := 200*15 + 2*200 + 4*len(buckets)
	if want := 1 + 1 + (ops+maxNLBatch-1)/maxNLBatch + 1; fake.sends != want {
		t.Errorf("%d sendmsg calls, want %d", fake.sends, want)
	}
	if len(fake.queue) != 0 {
		t.Errorf("%d datagrams left unread", len(fake.queue))
	}
}

// TestQoSCounterCountsOps: every change counts once, whatever its batch.
func TestQoSCounterCountsOps(t *testing.T) {
	sim := newQoSSim()
	sim.addDevice(2, "198.51.100.0/24")
	k := qosKernel(sim)
	if err := k.SetQoS(map[string]QoSPolicy{"p": {Rate: 1_000_000}}, []QoSTarget{{Dst: netip.MustParseAddr("198.51.100.2"), Policy: "p"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := k.qosChanges.Load(), int64(sim.changes); got != want {
		t.Errorf("qosChanges = %d, simulator saw %d changes", got, want)
	}
}
