package kernel

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestHairpinExprs(t *testing.T) {
	c := HairpinConfig{Group: 5, Rate: 2, Per: time.Hour, Burst: 3}.withDefaults()
	got, err := hairpinExprs(c, 7, "flows", 1)
	if err != nil {
		t.Fatal(err)
	}
	idx := binaryutil.NativeEndian.PutUint32(7)
	want := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: idx},
		&expr.Meta{Key: expr.MetaKeyOIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: idx},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Dynset{
			SrcRegKey: 1, SetName: "flows", SetID: 1, Operation: unix.NFT_DYNSET_OP_UPDATE,
			Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 2, Unit: expr.LimitTimeHour, Burst: 3}},
		},
		&expr.Log{
			Key:   1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN | 1<<unix.NFTA_LOG_QTHRESHOLD,
			Group: 5, Snaplen: 128, QThreshold: 1,
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	// The log expression must actually carry group, snaplen and threshold:
	// without Key bits the library silently drops them.
	b, err := expr.Marshal(byte(nftables.TableFamilyIPv4), got[len(got)-1])
	if err != nil {
		t.Fatal(err)
	}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for ad.Next() {
		if ad.Type() == unix.NFTA_EXPR_DATA {
			data = ad.Bytes()
		}
	}
	attrs, err := netlink.UnmarshalAttributes(data)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]bool{}
	for _, a := range attrs {
		seen[a.Type] = true
	}
	for _, typ := range []uint16{unix.NFTA_LOG_GROUP, unix.NFTA_LOG_SNAPLEN, unix.NFTA_LOG_QTHRESHOLD} {
		if !seen[typ] {
			t.Errorf("log expression lacks attribute %d", typ)
		}
	}
}

func TestHairpinExprsErrors(t *testing.T) {
	c := HairpinConfig{}.withDefaults()
	if _, err := hairpinExprs(c, 0, "flows", 1); err == nil {
		t.Error("ifindex 0 accepted")
	}
	c.Per = 90 * time.Second
	if _, err := hairpinExprs(c, 3, "flows", 1); err == nil {
		t.Error("rate unit 90s accepted")
	}
	if _, err := NewHairpinTrap(HairpinConfig{Per: 3 * time.Second}, nil); err == nil {
		t.Error("NewHairpinTrap accepted rate unit 3s")
	}
}

// captureBatch runs queue against a test-dialled nftables connection and
// renders every message sent as a text line.
func captureBatch(t *testing.T, queue func(cc *nftables.Conn) error) string {
	t.Helper()
	var lines []string
	cc, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			lines = append(lines, fmt.Sprintf("type=0x%04x flags=0x%04x data=%x", uint16(m.Header.Type), uint16(m.Header.Flags), m.Data))
		}
		return req, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := queue(cc); err != nil {
		t.Fatal(err)
	}
	if err := cc.Flush(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestHairpinBatchGolden pins the exact netlink batch: a single transaction
// (batch begin, add+delete+add table, set, chain, rule, batch end), so the
// replace is atomic.
func TestHairpinBatchGolden(t *testing.T) {
	c := HairpinConfig{Group: 1, Rate: 4, Per: time.Minute, Burst: 1}.withDefaults()
	got := captureBatch(t, func(cc *nftables.Conn) error { return queueHairpinInstall(cc, c, 7) })
	golden.File(t, "hairpin_install.golden", got)

	types := batchTypes(got)
	want := []string{"batch-begin", "newtable", "deltable", "newtable", "newset", "newchain", "newrule", "batch-end"}
	if d := cmp.Diff(want, types); d != "" {
		t.Errorf("install batch (-want +got):\n%s", d)
	}

	got = captureBatch(t, func(cc *nftables.Conn) error { queueHairpinRemove(cc, c); return nil })
	golden.File(t, "hairpin_remove.golden", got)
	want = []string{"batch-begin", "newtable", "deltable", "batch-end"}
	if d := cmp.Diff(want, batchTypes(got)); d != "" {
		t.Errorf("remove batch (-want +got):\n%s", d)
	}
}

func batchTypes(rendered string) []string {
	names := map[uint16]string{
		unix.NFNL_MSG_BATCH_BEGIN:                            "batch-begin",
		unix.NFNL_MSG_BATCH_END:                              "batch-end",
		unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE: "newtable",
		unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELTABLE: "deltable",
		unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET:   "newset",
		unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWCHAIN: "newchain",
		unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE:  "newrule",
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(rendered), "\n") {
		var typ, flags uint16
		if _, err := fmt.Sscanf(l, "type=0x%04x flags=0x%04x", &typ, &flags); err != nil {
			out = append(out, "unparsable")
			continue
		}
		if n, ok := names[typ]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("0x%04x", typ))
		}
	}
	return out
}
