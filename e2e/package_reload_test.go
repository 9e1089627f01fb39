package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// pkgNode is a node of TestDebInstall: a host running the installed
// dmvpnd, its charon, and the installed unit's settings.
type pkgNode struct {
	*labHost
	charon  *lab.Charon
	unit    map[string]string
	pskFile string
}

// pkgReloadChecks is issue 15's reload acceptance line against real
// charons, on TestDebInstall's running hubs and spoke (SAs up, the spoke
// registered with both hubs, every node with the same PSK); hubs[0] is
// the one whose SA is renewed:
//
//  1. each hub's PSK file gets a new key and `dmvpnctl reload --wait`
//     reports ipsec.auth.psk applied (exit 0); the SAs made with the old
//     key keep carrying a 10/s spoke -> hub ping: the spoke's charon's
//     IKE_SAs (unique id, SPIs) and the kernels' ESP SPIs unchanged, no
//     probe lost;
//  2. negative control: the spoke's SA with hubs[0] is terminated through
//     the spoke's charon (the VICI socket dmvpnd uses) while the spoke
//     still has the old key: the next IKE_SA fails authentication (charon
//     logs a MAC mismatch or AUTHENTICATION_FAILED) and none is
//     established, so the hub's charon no longer accepts the old key;
//  3. the spoke's PSK file gets the new key and `dmvpnctl reload --wait`
//     applies it: a new IKE_SA (new unique id, new ESP SPIs) with hubs[0]
//     comes up (time from the reload measured) and the hub lists the spoke
//     UP; the SA with hubs[1], made with the old key, is still the same
//     and carries a ping (old SAs keep working until they are rekeyed);
//  4. a change of a restart-only key (tunnel.name) on hubs[0]: the unit's
//     ExecReload line and `dmvpnctl reload --wait` exit non-zero (3) and
//     name the key, `show running-config` keeps the running value and
//     lists the key as waiting for a restart, gre1 stays; restoring the
//     file reloads cleanly.
func pkgReloadChecks(t *testing.T, hubs []pkgNode, spoke pkgNode) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const newPSK = "pkg-lab-psk-two-not-a-secret-9876543210"
	hub, other := hubs[0], hubs[1]

	// 1. The hubs rotate their PSK under a running ping.
	before := map[string]pkgSAState{}
	for _, h := range hubs {
		s, err := pkgSAs(ctx, spoke, h)
		if err != nil {
			t.Fatal(err)
		}
		before[h.name] = s
	}
	pinger, err := scStartPinger(ctx, &dnode{name: spoke.name, node: spoke.node, lan: netip.PrefixFrom(spoke.tunnel, 32)}, "pkg-ping", hub.tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if err := pinger.waitReplies(ctx, 30*time.Second, 0, 5); err != nil {
		t.Fatal(err)
	}
	seq := pinger.lastSeq()
	for _, h := range hubs {
		h.writePSK(t, newPSK)
		out, code := pkgExec(ctx, t, h.labHost, "dmvpnctl reload --wait")
		if code != 0 || !pkgChangeListed(out, "ipsec.auth.psk", "applied") {
			t.Fatalf("%s: reload of a new PSK: exit %d, want 0 and ipsec.auth.psk applied:\n%s", h.name, code, out)
		}
		t.Logf("%s: dmvpnctl reload --wait:\n%s", h.name, out)
	}
	if err := pinger.waitReplies(ctx, 30*time.Second, seq, 20); err != nil {
		t.Errorf("the old SA after the hubs' PSK rotation: %v", err)
	}
	for _, h := range hubs {
		after, err := pkgSAs(ctx, spoke, h)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before[h.name], after); diff != "" {
			t.Errorf("the SA with %s changed with the PSK rotation (-before +after):\n%s", h.name, diff)
		}
	}
	if err := pinger.stop(ctx); err != nil {
		t.Fatal(err)
	}
	loss, err := pinger.loss()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("spoke -> %s ping across the hubs' PSK rotation: %s", hub.name, loss)
	if loss.lost != 0 {
		t.Errorf("the ping lost %d probes across the hubs' PSK rotation: %s", loss.lost, loss)
	}

	// 2. Negative control: a new SA while only the hubs have the new key.
	marks := map[*lab.Charon]int{}
	for _, c := range []*lab.Charon{hub.charon, spoke.charon} {
		marks[c] = pkgLogSize(t, c.Log)
	}
	old := before[hub.name]
	if res, err := spoke.charon.Swanctl(ctx, "--terminate", "--ike-id", old.IKEID); err != nil {
		t.Fatalf("spoke: swanctl --terminate --ike-id %s: %v\n%s", old.IKEID, err, res.Stdout)
	}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	var failure string
	err = lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
		for _, c := range []*lab.Charon{hub.charon, spoke.charon} {
			if line := pkgLogLine(t, c.Log, marks[c], "MAC mismatched", "AUTHENTICATION_FAILED"); line != "" {
				failure = line
				return nil
			}
		}
		// Traffic, in case the next IKE_SA waits for an acquire.
		_, _ = spoke.node.Exec(ctx, fmt.Sprintf("ping -n -q -c 1 -W 1 -I %s %s", spoke.tunnel, hub.tunnel))
		return fmt.Errorf("no authentication failure in %s or %s yet", hub.charon.Log, spoke.charon.Log)
	})
	wcancel()
	if err != nil {
		t.Fatalf("negative control (spoke with the old PSK): %v", err)
	}
	t.Logf("negative control: %s", failure)
	if sa, err := pkgSAs(ctx, spoke, hub); err != nil || sa.Established {
		t.Errorf("an IKE_SA with %s is established while the keys differ: %+v (%v)", hub.name, sa, err)
	}

	// 3. The spoke rotates too: the next SA uses the new key.
	spoke.writePSK(t, newPSK)
	t0 := time.Now()
	out, code := pkgExec(ctx, t, spoke.labHost, "dmvpnctl reload --wait")
	if code != 0 || !pkgChangeListed(out, "ipsec.auth.psk", "applied") {
		t.Fatalf("spoke: reload of a new PSK: exit %d, want 0 and ipsec.auth.psk applied:\n%s", code, out)
	}
	var next pkgSAState
	wctx, wcancel = context.WithTimeout(ctx, 90*time.Second)
	err = lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
		s, err := pkgSAs(ctx, spoke, hub)
		if err != nil {
			return err
		}
		next = s
		if !s.Established || s.Children != 1 || len(s.Kernel) != 4 {
			return fmt.Errorf("spoke's SA with %s: %+v, want an established IKE_SA, one CHILD_SA and 2 ESP states per kernel", hub.name, s)
		}
		return nil
	})
	wcancel()
	if err != nil {
		t.Fatalf("the SA with the new key: %v", err)
	}
	t.Logf("timing: SA with the new PSK established %v after the spoke's reload", time.Since(t0).Round(time.Millisecond))
	if next.IKEID == old.IKEID || slices.ContainsFunc(next.Kernel, func(s string) bool { return slices.Contains(old.Kernel, s) }) {
		t.Errorf("the SA after the rotation is not a new one: before %+v, after %+v", old, next)
	}
	waitRegistered(t, hub.labHost, []*labHost{spoke.labHost})
	if err := pkgPing(ctx, spoke.labHost, hub.tunnel, 5); err != nil {
		t.Errorf("over the SA with the new key: %v", err)
	}
	if s, err := pkgSAs(ctx, spoke, other); err != nil || !cmp.Equal(s, before[other.name]) {
		t.Errorf("the SA with %s (old key) changed: before %+v, now %+v (%v)", other.name, before[other.name], s, err)
	}
	if err := pkgPing(ctx, spoke.labHost, other.tunnel, 5); err != nil {
		t.Errorf("over the SA made with the old key: %v", err)
	}

	// 4. A restart-only key.
	const conf = "/etc/dmvpnd/dmvpnd.yaml"
	orig := hub.mustExec(t, "cat "+conf)
	changed := strings.Replace(orig, "\n  name: gre1\n", "\n  name: gre9\n", 1)
	if changed == orig {
		t.Fatalf("%s has no tunnel name gre1 to change:\n%s", conf, orig)
	}
	hub.writeFile(t, conf, changed)
	for _, cmd := range []string{hub.unit["ExecReload"], "dmvpnctl reload --wait"} {
		out, code := pkgExec(ctx, t, hub.labHost, cmd)
		if code == 0 || !pkgChangeListed(out, "tunnel.name", "needs restart") {
			t.Errorf("%s: %s with tunnel.name changed: exit %d, want non-zero and tunnel.name listed as needing a restart:\n%s", hub.name, cmd, code, out)
		} else {
			t.Logf("%s: %s: exit %d:\n%s", hub.name, cmd, code, out)
		}
	}
	rc := hub.mustCtl(t, "show running-config")
	if !strings.Contains(rc, "name: gre1\n") || !regexp.MustCompile(`(?m)^#\s+tunnel\.name: gre1 -> gre9`).MatchString(rc) {
		t.Errorf("%s: show running-config does not keep gre1 and list tunnel.name as waiting for a restart:\n%s", hub.name, rc)
	}
	if res, err := hub.node.Exec(ctx, "ip link show gre1 && ! ip link show gre9"); err != nil || res.Exit != 0 {
		t.Errorf("%s: gre1 gone or gre9 created by a reload: exit %d %v\n%s", hub.name, res.Exit, err, res.Stdout)
	}
	hub.writeFile(t, conf, orig)
	if out, code := pkgExec(ctx, t, hub.labHost, "dmvpnctl reload --wait"); code != 0 {
		t.Errorf("%s: reload of the restored file: exit %d:\n%s", hub.name, code, out)
	}
}

// writePSK replaces the node's PSK file.
func (n pkgNode) writePSK(t *testing.T, psk string) {
	t.Helper()
	pkgWritePSK(t, n.labHost, n.pskFile, psk)
}

// pkgWritePSK writes psk as the one line of file (mode 0600) in h's root.
func pkgWritePSK(t *testing.T, h *labHost, file, psk string) {
	t.Helper()
	h.mustExec(t, fmt.Sprintf("umask 077 && printf '%%s\\n' %s > %s", shq(psk), file))
}

// writeFile replaces a file in the node's root.
func (n pkgNode) writeFile(t *testing.T, path, data string) {
	t.Helper()
	n.mustExec(t, fmt.Sprintf("printf '%%s' %s > %s", shq(data), path))
}

// pkgExec runs cmd in h's root and returns its stdout and stderr together
// with the exit status.
func pkgExec(ctx context.Context, t *testing.T, h *labHost, cmd string) (string, int) {
	t.Helper()
	res, err := h.exec(ctx, cmd)
	if err != nil {
		t.Fatalf("%s: %s: %v", h.name, cmd, err)
	}
	return string(res.Stdout) + string(res.Stderr), res.Exit
}

// pkgChangeListed reports whether dmvpnctl reload's table has a line for
// key whose result starts with result.
func pkgChangeListed(out, key, result string) bool {
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == key && strings.Contains(line, "  "+result) {
			return true
		}
	}
	return false
}

// pkgSAState is what identifies the SA between a spoke and its hub.
type pkgSAState struct {
	// IKEID and IKESPIs are the spoke's charon's IKE_SA with the hub
	// (the last one listed); Established is its state.
	IKEID, IKESPIs string
	Established    bool
	// Children counts its installed CHILD_SAs.
	Children int
	// Kernel lists the ESP states between the two NBMA addresses in both
	// kernels ("node src>dst spi"), sorted.
	Kernel []string
}

var (
	pkgUniqueID = regexp.MustCompile(`\buniqueid=(\d+)`)
	pkgIKESPIs  = regexp.MustCompile(`\binitiator-spi=(\w+) responder-spi=(\w+)`)
)

// pkgSAs reads the SA between spoke and hub from the spoke's charon and
// from both kernels.
func pkgSAs(ctx context.Context, spoke, hub pkgNode) (pkgSAState, error) {
	res, err := spoke.charon.Swanctl(ctx, "--list-sas", "--raw")
	if err != nil {
		return pkgSAState{}, err
	}
	s := pkgParseIKE(string(res.Stdout), hub.nbma)
	for _, n := range []pkgNode{spoke, hub} {
		res, err := n.node.Run(ctx, "ip xfrm state")
		if err != nil {
			return s, err
		}
		for _, st := range pkgParseESP(string(res.Stdout), spoke.nbma, hub.nbma) {
			s.Kernel = append(s.Kernel, n.name+" "+st)
		}
	}
	slices.Sort(s.Kernel)
	return s, nil
}

// pkgParseIKE reads the IKE_SA with peer (the last listed) from swanctl
// --list-sas --raw; Kernel is left empty.
func pkgParseIKE(raw string, peer netip.Addr) pkgSAState {
	var s pkgSAState
	for line := range strings.SplitSeq(raw, "\n") {
		if !strings.Contains(line, " remote-host="+peer.String()+" ") {
			continue
		}
		ike, children, _ := strings.Cut(line, "child-sas {")
		s = pkgSAState{}
		if m := pkgUniqueID.FindStringSubmatch(ike); m != nil {
			s.IKEID = m[1]
		}
		if m := pkgIKESPIs.FindStringSubmatch(ike); m != nil {
			s.IKESPIs = m[1] + "_i " + m[2] + "_r"
		}
		s.Established = strings.Contains(ike, " state=ESTABLISHED ")
		s.Children = strings.Count(children, "state=INSTALLED ")
	}
	return s
}

// pkgParseESP lists the ESP states between a and b (either direction) in
// ip xfrm state's output as "src>dst spi".
func pkgParseESP(out string, a, b netip.Addr) []string {
	var states []string
	var src, dst string
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "src" && f[2] == "dst":
			src, dst = f[1], f[3]
		case len(f) >= 4 && f[0] == "proto" && f[1] == "esp" && f[2] == "spi":
			if (src == a.String() && dst == b.String()) || (src == b.String() && dst == a.String()) {
				states = append(states, fmt.Sprintf("%s>%s %s", src, dst, f[3]))
			}
		}
	}
	return states
}

// pkgLogSize is the size of a log file (0 if it does not exist yet).
func pkgLogSize(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(b)
}

// pkgLogLine returns the first line after offset of the log at path that
// contains one of words ("" when none does).
func pkgLogLine(t *testing.T, path string, offset int, words ...string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if offset > len(b) {
		offset = 0
	}
	for line := range strings.SplitSeq(string(b[offset:]), "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				return line
			}
		}
	}
	return ""
}
