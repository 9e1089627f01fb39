package kerneltest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dmvpnd/dmvpnd/kernel"
)

var _ kernel.QoS = (*Fake)(nil)

type fakeQoS struct {
	policy string
	p      kernel.QoSPolicy
	// counts are the counters CountQoS set, by class name.
	counts map[string]kernel.QoSClassStats
}

// CountQoS sets the counters (bytes, packets, drops, overlimits, backlog,
// qlen) QoSStats reports for class (a policy class's name or "default")
// of the shaper toward dst, as traffic through the kernel would; it
// reports false when no shaper toward dst is installed. Reinstalling the
// shaper resets them, as the kernel does.
func (f *Fake) CountQoS(dst netip.Addr, class string, c kernel.QoSClassStats) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	q, ok := f.qos[dst]
	if !ok {
		return false
	}
	if q.counts == nil {
		q.counts = map[string]kernel.QoSClassStats{}
	}
	q.counts[class] = c
	f.qos[dst] = q
	return true
}

// SetQoS implements kernel.QoS like the kernel package: invalid targets,
// unknown or invalid policies and conflicting duplicates are refused in a
// *kernel.QoSErrors (with the kernel's reasons), the rest is installed;
// targets whose policy (name or content) is unchanged produce no op.
// FailNext("SetQoS") makes the whole call fail.
func (f *Fake) SetQoS(policies map[string]kernel.QoSPolicy, targets []kernel.QoSTarget) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("SetQoS"); err != nil {
		return err
	}
	var failed []kernel.QoSError
	refuse := func(t kernel.QoSTarget, r kernel.QoSRefusal, err error) {
		failed = append(failed, kernel.QoSError{Dst: t.Dst, Policy: t.Policy, Reason: r, Err: err})
	}
	want := map[netip.Addr]fakeQoS{}
	for _, t := range targets {
		switch {
		case !t.Dst.Is4() || t.Dst.IsUnspecified() || t.Dst.IsLoopback() || t.Dst.IsMulticast():
			refuse(t, kernel.QoSInvalidTarget, errors.New("not an IPv4 unicast address"))
			continue
		case want[t.Dst].policy != "":
			if want[t.Dst].policy != t.Policy {
				refuse(t, kernel.QoSInvalidTarget, fmt.Errorf("destination already has policy %q", want[t.Dst].policy))
			}
			continue
		}
		p, ok := policies[t.Policy]
		if !ok {
			refuse(t, kernel.QoSInvalidPolicy, fmt.Errorf("no qos policy %q", t.Policy))
			continue
		}
		if err := p.Validate(); err != nil {
			refuse(t, kernel.QoSInvalidPolicy, err)
			continue
		}
		want[t.Dst] = fakeQoS{policy: t.Policy, p: p}
	}
	for _, dst := range sortedAddrs(f.qos) {
		if w, ok := want[dst]; !ok || !sameQoS(w, f.qos[dst]) {
			delete(f.qos, dst)
			f.ops = append(f.ops, "remove qos "+dst.String())
		}
	}
	for _, dst := range sortedAddrs(want) {
		if _, ok := f.qos[dst]; !ok {
			f.qos[dst] = want[dst]
			f.ops = append(f.ops, fmt.Sprintf("install qos %s policy %s", dst, want[dst].policy))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &kernel.QoSErrors{Failed: failed}
}

func sameQoS(a, b fakeQoS) bool {
	if a.policy != b.policy || a.p.Rate != b.p.Rate || a.p.Burst != b.p.Burst || len(a.p.Classes) != len(b.p.Classes) {
		return false
	}
	for i, c := range a.p.Classes {
		d := b.p.Classes[i]
		if c.Name != d.Name || c.Priority != d.Priority || c.Rate != d.Rate || c.Ceil != d.Ceil || !slices.Equal(c.DSCP, d.DSCP) {
			return false
		}
	}
	return true
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// QoSStats implements kernel.QoS: every installed target with its classes
// named as in its policy (then "default"), rates as the kernel sets them
// (a priority class's ceil is its rate; a non-priority class without ceil
// borrows up to the policy's rate; the default class gets what the others
// leave, at least 1%), counters as CountQoS set them (else zero). The
// shaper counts what its classes did.
func (f *Fake) QoSStats() ([]kernel.QoSTargetStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []kernel.QoSTargetStats
	for _, dst := range sortedAddrs(f.qos) {
		q := f.qos[dst]
		ts := kernel.QoSTargetStats{Dst: dst, Policy: q.policy, Shaper: kernel.QoSClassStats{Name: "shaper", Rate: q.p.Rate, Ceil: q.p.Rate}}
		add := func(c kernel.QoSClassStats) {
			n := q.counts[c.Name]
			c.Bytes, c.Packets, c.Drops, c.Overlimits, c.Backlog, c.Qlen = n.Bytes, n.Packets, n.Drops, n.Overlimits, n.Backlog, n.Qlen
			ts.Shaper.Bytes += n.Bytes
			ts.Shaper.Packets += n.Packets
			ts.Shaper.Backlog += n.Backlog
			ts.Shaper.Qlen += n.Qlen
			ts.Classes = append(ts.Classes, c)
		}
		var sum uint64
		for _, c := range q.p.Classes {
			ceil := c.Ceil
			switch {
			case c.Priority:
				ceil = c.Rate
			case ceil == 0:
				ceil = q.p.Rate
			}
			sum += c.Rate
			add(kernel.QoSClassStats{Name: c.Name, Rate: c.Rate, Ceil: ceil})
		}
		add(kernel.QoSClassStats{Name: "default", Rate: max(q.p.Rate/100, q.p.Rate-min(sum, q.p.Rate)), Ceil: q.p.Rate})
		out = append(out, ts)
	}
	return out, nil
}

// qosLines renders installed targets as
//
//	qos 198.51.100.2 policy branch-2m rate 2000000 burst 0
//	qos 198.51.100.2 class voice priority rate 256000 dscp 46
//	qos 198.51.100.2 class video rate 512000 ceil 1500000 dscp 34,36
func (f *Fake) qosLines() []string {
	var lines []string
	for dst, q := range f.qos {
		lines = append(lines, fmt.Sprintf("qos %s policy %s rate %d burst %d", dst, q.policy, q.p.Rate, q.p.Burst))
		for _, c := range q.p.Classes {
			s := fmt.Sprintf("qos %s class %s", dst, c.Name)
			if c.Priority {
				s += " priority"
			}
			s += fmt.Sprintf(" rate %d", c.Rate)
			if !c.Priority && c.Ceil != 0 {
				s += fmt.Sprintf(" ceil %d", c.Ceil)
			}
			d := make([]string, len(c.DSCP))
			for i, v := range c.DSCP {
				d[i] = fmt.Sprint(v)
			}
			lines = append(lines, s+" dscp "+strings.Join(d, ","))
		}
	}
	return lines
}
