package e2e

// Helpers of TestAdversarial (adversarial_test.go): the attack runner that
// checks refusal counters, and the state snapshot compared before and
// after the attacks. Names start with "adv".

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// advCmd is one attack: nhrpforge arguments (global flags, then the
// command; flags in global come first, and a later one wins) or a shell
// command, run in a node.
type advCmd struct {
	node   *lab.Node
	cmd    string
	global string
	shell  string
}

// withGlobal adds global nhrpforge flags.
func (c advCmd) withGlobal(flags string) advCmd {
	c.global += " " + flags
	return c
}

// advWant is a counter an attack must grow: by exactly n, or by at least
// n where other traffic may count too.
type advWant struct {
	d       *dnode
	counter string
	n       uint64
	atLeast bool
}

// advRunner runs attacks one at a time and checks their counters.
type advRunner struct {
	t     *testing.T
	forge string
	steps int
}

func (r *advRunner) counters(ctx context.Context, d *dnode) api.Counters {
	r.t.Helper()
	c, err := nodeCounters(ctx, d)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// reached reads the counters of want's nodes into now and reports
// whether every counter of want grew by at least n since base (counters
// per node).
func (r *advRunner) reached(ctx context.Context, base, now map[*dnode]api.Counters, want []advWant) error {
	clear(now)
	for _, w := range want {
		if now[w.d] == nil {
			c, err := nodeCounters(ctx, w.d)
			if err != nil {
				return err
			}
			now[w.d] = c
		}
		if got := now[w.d][w.counter] - base[w.d][w.counter]; got < w.n {
			return fmt.Errorf("%s %s grew by %d, want %d", w.d.name, w.counter, got, w.n)
		}
	}
	return nil
}

// check logs the counters' growth from base to now (the read that
// showed every counter grown) and fails an exact one that grew by more
// than expected.
func (r *advRunner) check(name string, base, now map[*dnode]api.Counters, want []advWant, took time.Duration) {
	r.t.Helper()
	r.steps++
	var got []string
	for _, w := range want {
		d := now[w.d][w.counter] - base[w.d][w.counter]
		got = append(got, fmt.Sprintf("%s %s +%d", w.d.name, w.counter, d))
		if !w.atLeast && d != w.n {
			r.t.Errorf("%s: %s %s grew by %d, want exactly %d", name, w.d.name, w.counter, d, w.n)
		}
	}
	r.t.Logf("attack %s: %s (counted within %v)", name, strings.Join(got, ", "), scMS(took))
}

// run runs one attack and waits until its counters grew.
func (r *advRunner) run(ctx context.Context, name string, c advCmd, want []advWant) {
	t := r.t
	t.Helper()
	base := map[*dnode]api.Counters{}
	for _, w := range want {
		if base[w.d] == nil {
			base[w.d] = r.counters(ctx, w.d)
		}
	}
	t0 := time.Now()
	line := c.shell
	if line == "" {
		line = r.forge + c.global + " " + c.cmd
	}
	res, err := c.node.Exec(ctx, line)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if c.shell == "" && res.Exit != 0 {
		t.Fatalf("%s: nhrpforge exited %d: %s%s", name, res.Exit, res.Stdout, res.Stderr)
	}
	sent := strings.Count(string(res.Stdout), `"dir":"sent"`)
	if c.shell == "" {
		t.Logf("attack %s: nhrpforge sent %d packets", name, sent)
	}
	if len(want) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	now := map[*dnode]api.Counters{}
	err = lab.WaitFor(wctx, 250*time.Millisecond, func(ctx context.Context) error {
		last = r.reached(ctx, base, now, want)
		return last
	})
	if err != nil {
		t.Errorf("attack %s: its refusal was never counted: %v (last: %v)", name, err, last)
		return
	}
	r.check(name, base, now, want, time.Since(t0))
}

// advCheckRemoteID checks that c holds an established IKE_SA with the peer
// at nbma whose remote identity is id.
func advCheckRemoteID(ctx context.Context, c *lab.Charon, nbma netip.Addr, id string) error {
	res, err := c.Swanctl(ctx, "--list-sas", "--raw")
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(string(res.Stdout), "\n") {
		if strings.Contains(line, " remote-host="+nbma.String()+" ") && strings.Contains(line, " state=ESTABLISHED ") {
			if strings.Contains(line, " remote-id="+id+" ") {
				return nil
			}
		}
	}
	return fmt.Errorf("no established IKE_SA with %s and remote-id=%s:\n%s", nbma, id, res.Stdout)
}

// advWaitNoPeer waits until d's show dmvpn no longer lists tunnel.
func advWaitNoPeer(ctx context.Context, d *dnode, tunnel netip.Addr, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return lab.WaitFor(wctx, 250*time.Millisecond, func(ctx context.Context) error {
		v, err := d.showDMVPN(ctx)
		if err != nil {
			return err
		}
		if st := ipdPeerState(v, tunnel); st != "" {
			return fmt.Errorf("%s still lists %s (%s)", d.name, tunnel, st)
		}
		return nil
	})
}

// advSnapshot renders what the attacks must not change on d as sorted
// lines: show dmvpn's peers and NHSs, the NHRP cache, the shortcuts, the
// gre1 neighbours, the proto 157 routes and the ESP states (addresses,
// SPI, mode). Fields that move on their own are left out: times, expiry
// and neighbour (NUD) states; so are negative cache entries, which bind
// nothing and come and go with the node's own failed resolutions (step 4d
// makes s1 resolve m's LAN; m's forged answers are refused, the resolution
// fails and may be cached negative until it expires).
func advSnapshot(ctx context.Context, d *dnode) (string, error) {
	var lines []string
	v, err := d.showDMVPN(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range v.Peers {
		lines = append(lines, fmt.Sprintf("peer %s nbma=%s observed=%s state=%s entries=%d attrs=%v",
			p.Tunnel, p.NBMA, p.ObservedNBMA, p.State, p.Entries, p.Attrs))
	}
	for _, n := range v.NHS {
		lines = append(lines, fmt.Sprintf("nhs %s proto=%s state=%s", n.NBMA, n.Protocol, n.State))
	}
	cache, err := scCache(ctx, d)
	if err != nil {
		return "", err
	}
	for _, c := range cache {
		if c.Type == api.CacheNegative {
			continue
		}
		var flags []string
		for _, f := range c.Flags {
			flags = append(flags, string(f))
		}
		lines = append(lines, fmt.Sprintf("cache %s %s tunnel=%s nbma=%s observed=%s flags=%v",
			c.Type, c.Prefix, c.Tunnel, c.NBMA, c.ObservedNBMA, flags))
	}
	scs, err := ctlJSON[[]api.Shortcut](ctx, d, "show nhrp shortcuts")
	if err != nil {
		return "", err
	}
	for _, s := range scs {
		lines = append(lines, fmt.Sprintf("shortcut %s via=%s nbma=%s", s.Prefix, s.Via, s.NBMA))
	}
	res, err := d.node.Run(ctx, "ip -4 neigh show dev gre1; echo ---; ip -4 route show proto 157; echo ---; ip xfrm state")
	if err != nil {
		return "", err
	}
	parts := strings.SplitN(string(res.Stdout), "---\n", 3)
	if len(parts) != 3 {
		return "", fmt.Errorf("%s: kernel state: %q", d.name, res.Stdout)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(parts[0]), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[1] == "lladdr" {
			lines = append(lines, "neigh "+strings.Join(f[:3], " "))
		} else if len(f) > 0 {
			lines = append(lines, "neigh "+f[0]+" (no lladdr)")
		}
	}
	for line := range strings.SplitSeq(strings.TrimSpace(parts[1]), "\n") {
		if line != "" {
			lines = append(lines, "route "+strings.TrimSpace(line))
		}
	}
	lines = append(lines, advXfrmStates(parts[2])...)
	slices.Sort(lines)
	return fmt.Sprintf("== %s\n%s\n", d.name, strings.Join(lines, "\n")), nil
}

// advXfrmStates extracts "esp SRC > DST spi SPI mode MODE" from ip xfrm
// state.
func advXfrmStates(out string) []string {
	var lines []string
	var src string
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[0] == "src" && f[2] == "dst":
			src = f[1] + " > " + f[3]
		case len(f) >= 4 && f[0] == "proto" && f[2] == "spi":
			mode := ""
			if i := slices.Index(f, "mode"); i >= 0 && i+1 < len(f) {
				mode = f[i+1]
			}
			lines = append(lines, fmt.Sprintf("xfrm %s %s spi %s mode %s", f[1], src, f[3], mode))
		}
	}
	return lines
}
