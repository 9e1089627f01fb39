package kerneltest

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/google/go-cmp/cmp"
)

func TestFakeQoS(t *testing.T) {
	policies := map[string]kernel.QoSPolicy{
		"branch-2m": {Rate: 2_000_000, Classes: []kernel.QoSClass{
			{Name: "voice", DSCP: []uint8{46}, Priority: true, Rate: 256_000},
			{Name: "video", DSCP: []uint8{34, 36}, Rate: 512_000, Ceil: 1_500_000},
		}},
		"bad": {Rate: 1},
	}
	targets := []kernel.QoSTarget{
		{Dst: a("198.51.100.2"), Policy: "branch-2m"},
		{Dst: a("198.51.100.3"), Policy: "branch-2m"},
		{Dst: a("198.51.100.4"), Policy: "bad"},
		{Dst: a("198.51.100.5"), Policy: "missing"},
		{Dst: a("198.51.100.2"), Policy: "bad"},
		{Dst: netip.MustParseAddr("2001:db8::1"), Policy: "branch-2m"},
	}
	f := New()
	err := f.SetQoS(policies, targets)
	var qe *kernel.QoSErrors
	if !errors.As(err, &qe) {
		t.Fatalf("err = %v, want *kernel.QoSErrors", err)
	}
	var reasons []kernel.QoSRefusal
	for _, e := range qe.Failed {
		reasons = append(reasons, e.Reason)
	}
	want := []kernel.QoSRefusal{kernel.QoSInvalidPolicy, kernel.QoSInvalidPolicy, kernel.QoSInvalidTarget, kernel.QoSInvalidTarget}
	if d := cmp.Diff(want, reasons); d != "" {
		t.Errorf("refusals (-want +got):\n%s", d)
	}
	golden.File(t, "qos.golden", f.Render())

	n := len(f.Ops())
	if err := f.SetQoS(policies, targets[:2]); err != nil {
		t.Fatal(err)
	}
	if ops := f.Ops()[n:]; len(ops) != 0 {
		t.Errorf("unchanged state: ops %q", ops)
	}
	p := policies["branch-2m"]
	p.Rate = 3_000_000
	policies["branch-2m"] = p
	if err := f.SetQoS(policies, targets[:1]); err != nil {
		t.Fatal(err)
	}
	wantOps := []string{"remove qos 198.51.100.2", "remove qos 198.51.100.3", "install qos 198.51.100.2 policy branch-2m"}
	if d := cmp.Diff(wantOps, f.Ops()[n:]); d != "" {
		t.Errorf("ops (-want +got):\n%s", d)
	}
	st, err := f.QoSStats()
	if err != nil || len(st) != 1 || len(st[0].Classes) != 3 || st[0].Classes[2].Name != "default" {
		t.Errorf("QoSStats = %+v, %v", st, err)
	}
}
