package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
	"github.com/google/go-cmp/cmp"
)

// forgeBinary builds e2e/internal/nhrpforge (the attack tool; never
// shipped in cmd/) into the lab's bin directory (labBinDir).
var forgeBinary = labTool("nhrpforge")

// labTool returns a builder of the tool e2e/internal/NAME into the lab's
// bin directory (labBinDir), run once per test process.
func labTool(name string) func() (string, error) {
	return sync.OnceValues(func() (string, error) {
		root, dir, err := labBinDir()
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", bin, "./e2e/internal/"+name)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", name, err, out)
		}
		return bin, nil
	})
}

// advOutsiderNBMA is the outsider's address on the underlay: no SA, no
// dmvpnd.
var advOutsiderNBMA = netip.MustParseAddr("198.51.100.66")

// TestAdversarial is issue 13's acceptance scenario, once with a group
// PSK and once with X.509 and the tunnel address bound to the certificate
// (advVariant). A hub and two honest spokes (s1, s2) run dmvpnd with IPsec
// (no-unique registrations), Phase 3, and a shortcut s1 <-> s2 carrying a
// continuous ping. Two attackers:
//   - m, a spoke holding valid credentials (the PSK, or its own
//     certificate naming its own tunnel address): its dmvpnd registers and
//     brings up its SA with the hub, then is killed with SIGKILL (SA and
//     registration stay) and nhrpforge takes over its gre1, sending
//     crafted NHRP through m's own SA: registrations claiming s1's NBMA,
//     squatting the tunnel prefix, registering a free address or
//     replacing or deregistering s1's and s2's addresses, resolution
//     replies naming s2 or a /1 (unsolicited, and answering a real request
//     the hub forwards to m), traffic and error indications and purges;
//   - x, an outsider on the underlay without any SA, which injects
//     cleartext GRE (ICMP inside GRE key 42) and cleartext NHRP at the
//     hub's and s1's NBMA, from its own address and spoofing the hub's
//     and s1's.
//
// Every attack must be refused and counted: the step waits until the
// refusal counters of `dmvpnctl show counters --json` grew by the number
// of packets (CIEs) sent, and checks them exactly where the engine counts
// one per packet, so an attack that never arrived fails the test. Before
// and after all attacks the hub's, s1's and s2's `show dmvpn`, NHRP
// cache, shortcuts, gre1 neighbours, proto 157 routes and ESP SPIs must be
// equal (timers and usage flags removed), and the ping must lose nothing.
// Each variant boots its own lab (a lab has one topology).
func TestAdversarial(t *testing.T) {
	for _, v := range []advVariant{
		{name: "psk", auth: scIPsecPSK, foreign: "owned_by_another_peer"},
		{name: "x509-bound", auth: scIPsecX509Bound, foreign: "not_bound"},
	} {
		t.Run(v.name, func(t *testing.T) { advScenario(t, v) })
	}
}

// advVariant is one authentication of TestAdversarial.
type advVariant struct {
	name string
	auth scIPsec
	// foreign is the refusal of a registration of another spoke's address
	// by m while it holds none: ownership with a group PSK; with
	// bind_tunnel_address the binding, checked first.
	foreign string
}

func (v advVariant) bound() bool { return v.auth == scIPsecX509Bound }

func advScenario(t *testing.T, v advVariant) {
	start := time.Now()
	forge, err := forgeBinary()
	if err != nil {
		t.Fatal(err)
	}
	l, nodes := dmvpnLabWith(t, 3, lab.NodeSpec{Name: "x", NBMA: advOutsiderNBMA})
	hub, s1, s2, m := nodes[0], nodes[1], nodes[2], nodes[3]
	x := l.Node("x")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			ipdLogState(ctx, t, hub, s1, s2)
		}
	}()
	for _, s := range []*dnode{s1, s2, m} {
		// No-unique registrations: the kind any key holder could replace
		// before issue 13.
		s.nhsYAML += "  registration: no-unique\n"
	}
	charons := ipdStartCharonsAuth(t, l, v.auth, "", hub, s1, s2, m)
	hub.start(t, l)
	hub.waitReady(t, 60*time.Second)
	t0 := time.Now()
	for _, s := range []*dnode{s1, s2, m} {
		s.start(t, l)
	}
	for _, s := range []*dnode{s1, s2, m} {
		s.waitReady(t, 120*time.Second)
		if err := ipdWaitPeerUp(ctx, hub, s.tunnel, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("timing: three spokes registered over IPsec %v after their start", scMS(time.Since(t0)))
	if v.bound() {
		// charon authenticated every spoke by its tunnel address.
		for _, s := range []*dnode{s1, s2, m} {
			if err := advCheckRemoteID(ctx, charons[hub], s.nbma, s.tunnel.String()); err != nil {
				t.Fatalf("hub's SA with %s: %v", s.name, err)
			}
		}
	}
	for _, s := range []*dnode{s1, s2, m} {
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}

	// The honest spokes' shortcut, both directions direct over their own
	// SA, then a continuous ping over it for the whole attack.
	t1 := time.Now()
	establishShortcut(ctx, t, s1, s2, fmt.Sprintf("%s via %s", s2.lan.Masked(), s2.tunnel))
	if err := ipdWaitOnePair(ctx, s1, s2, charons[s1], charons[s2], 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ipdWaitNeigh(ctx, s1, s2.tunnel, s2.nbma, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: s1 -> s2 shortcut over its own SA %v after the first packet", scMS(time.Since(t1)))
	ping, err := scStartPinger(ctx, s1, "adv-ping", s2.lan.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := ping.waitReplies(ctx, 60*time.Second, 0, 20); err != nil {
		t.Fatal(err)
	}
	if err := ipdWaitNeigh(ctx, s2, s1.tunnel, s1.nbma, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// m turns: its dmvpnd dies without a word, its SA and registration
	// stay, and the forge takes over its gre1.
	if err := m.proc.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ipdWaitSA(ctx, hub, m.nbma, 10*time.Second); err != nil {
		t.Fatalf("m's SA with the hub after its dmvpnd died: %v", err)
	}
	// x: a multipoint GRE tunnel with key 42 and static neighbours for the
	// hub and s1, no IPsec.
	x.MustRun("ip -batch - <<'EOF'\n" + strings.Join([]string{
		fmt.Sprintf("tunnel add gre1 mode gre key 42 ttl 64 local %s", advOutsiderNBMA),
		"addr add 10.0.0.66/24 dev gre1",
		"link set gre1 up",
		fmt.Sprintf("neigh replace %s lladdr %s dev gre1 nud permanent", hub.tunnel, hub.nbma),
		fmt.Sprintf("neigh replace %s lladdr %s dev gre1 nud permanent", s1.tunnel, s1.nbma),
	}, "\n") + "\nEOF")

	before := map[*dnode]string{}
	for _, d := range []*dnode{hub, s1, s2} {
		if before[d], err = advSnapshot(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("state before the attacks:\n%s%s%s", before[hub], before[s1], before[s2])
	firstSeq := ping.lastSeq()
	tAttack := time.Now()

	r := &advRunner{t: t, forge: forge}
	mForge := func(to *dnode, srcProto, dstProto netip.Addr, cmd string) advCmd {
		return advCmd{node: m.node, global: " -src-nbma " + m.nbma.String(),
			cmd: fmt.Sprintf("-to %s -src-proto %s -dst-proto %s %s", to.nbma, srcProto, dstProto, cmd)}
	}
	mReg := func(cmd string) advCmd { return mForge(hub, m.tunnel, hub.tunnel, "register "+cmd) }
	refused := func(drop string, n uint64) []advWant {
		return []advWant{{hub, "nhrp_drop_" + drop, n, false}, {hub, "nhrp_registrations_refused", n, false}}
	}
	spare := netip.MustParseAddr("10.0.0.50")

	// Positive control: m's forged packets reach the hub's engine through
	// its SA. m deregisters itself; the hub drops it.
	r.run(ctx, "m deregisters itself (control)", mReg(fmt.Sprintf("-cie %s,%s,0", m.tunnel, m.nbma)), nil)
	if err := advWaitNoPeer(ctx, hub, m.tunnel, 30*time.Second); err != nil {
		t.Fatalf("control: m's own deregistration through its SA did not reach the hub: %v", err)
	}
	// ... and the snapshot sees such a change (negative control).
	if now, err := advSnapshot(ctx, hub); err != nil {
		t.Fatal(err)
	} else if now == before[hub] {
		t.Errorf("the hub's snapshot did not change when m deregistered: the comparison cannot fail")
	}

	// m holds no address now: every CIE reaches the ownership checks.
	r.run(ctx, "1a spare address, CIE NBMA = s1's", mReg(fmt.Sprintf("-cie %s,%s", spare, s1.nbma)), refused("claim_mismatch", 1))
	r.run(ctx, "1b spare address, packet source NBMA = s1's",
		mReg(fmt.Sprintf("-cie %s", spare)).withGlobal("-src-nbma "+s1.nbma.String()), refused("claim_mismatch", 1))
	r.run(ctx, "1c s1's address, s1's NBMA", mReg(fmt.Sprintf("-cie %s,%s", s1.tunnel, s1.nbma)), refused("claim_mismatch", 1))
	r.run(ctx, "3a replace s2's address (no-unique)", mReg(fmt.Sprintf("-cie %s,%s", s2.tunnel, m.nbma)), refused(v.foreign, 1))
	r.run(ctx, "3b replace s2's address (unique)", mReg(fmt.Sprintf("-unique -cie %s,%s", s2.tunnel, m.nbma)), refused(v.foreign, 1))
	r.run(ctx, "3c deregister s1", mReg(fmt.Sprintf("-cie %s,%s,0", s1.tunnel, m.nbma)), refused(v.foreign, 1))
	if v.bound() {
		// m's certificate names only m's tunnel address: not even a free
		// one is m's to take (a group PSK holder could register it).
		r.run(ctx, "7a free address with m's own NBMA", mReg(fmt.Sprintf("-cie %s,%s", spare, m.nbma)), refused("not_bound", 1))
		r.run(ctx, "7b s1's address while s1 is registered (no-unique)", mReg(fmt.Sprintf("-cie %s,%s", s1.tunnel, m.nbma)), refused("not_bound", 1))
		r.run(ctx, "7c s1's address while s1 is registered (unique)", mReg(fmt.Sprintf("-unique -cie %s,%s", s1.tunnel, m.nbma)), refused("not_bound", 1))
	}

	// m registers its own address again (control), then attacks holding
	// it: the per-peer quota refuses any second address as a whole.
	r.run(ctx, "m registers again (control)", mReg(fmt.Sprintf("-cie %s,%s", m.tunnel, m.nbma)), nil)
	if err := ipdWaitPeerUp(ctx, hub, m.tunnel, 30*time.Second); err != nil {
		t.Fatalf("control: m's own registration through its SA: %v", err)
	}
	// Tunnel-source binding (on for the hub by default): m, through its
	// own SA, sends TCP SYNs to the hub's BGP port with s1's tunnel
	// address as source; the hub's guard drops every one, counted
	// exactly. Controls: s1, and m from its own tunnel address, reach the
	// hub's tunnel address before and after.
	pingHub := func(d *dnode) {
		t.Helper()
		res, err := d.node.Exec(ctx, fmt.Sprintf("ping -n -c 3 -i 0.2 -W 2 -I %s %s", d.tunnel, hub.tunnel))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(res.Stdout), " 3 received") {
			t.Errorf("%s -> hub from its tunnel address: %s%s", d.name, res.Stdout, res.Stderr)
		}
	}
	pingHub(s1)
	pingHub(m)
	r.run(ctx, "8 TCP SYNs to the hub's port 179 as s1, through m's SA",
		advCmd{node: m.node, cmd: fmt.Sprintf("-to %s -count 5 -gap 10ms syn -inner-src %s -inner-dst %s -port 179", hub.nbma, s1.tunnel, hub.tunnel)},
		[]advWant{{hub, "ipsec_tunnel_src_unbound_dropped", 5, false}})
	pingHub(s1)
	r.run(ctx, "1d spare address with s1's NBMA over the quota", mReg(fmt.Sprintf("-cie %s,%s", spare, s1.nbma)), refused("address_quota", 1))
	r.run(ctx, "1e own address, CIE NBMA = s1's", mReg(fmt.Sprintf("-cie %s,%s", m.tunnel, s1.nbma)), refused("claim_mismatch", 1))
	r.run(ctx, "1f own address, packet source NBMA = s1's",
		mReg(fmt.Sprintf("-cie %s", m.tunnel)).withGlobal("-src-nbma "+s1.nbma.String()), refused("claim_mismatch", 1))
	// The squat, with the default limits (10 CIEs/s, burst 20 per
	// source): 200 CIEs in 4 packets of 50 (one GRE MTU each), the hub's,
	// s1's and s2's addresses and 10.0.0.59-255 (broadcast included), 18 h.
	// Each packet costs more than the burst: all four are dropped before
	// any CIE is looked at.
	r.run(ctx, "2a squat the tunnel prefix (200 CIEs, holding 65535)",
		mReg(fmt.Sprintf("-unique -per-packet 50 -hold 65535 -cie %s -cie %s -cie %s -range 10.0.0.59-10.0.0.255 -range-nbma %s",
			hub.tunnel, s1.tunnel, s2.tunnel, m.nbma)),
		[]advWant{{hub, "nhrp_drop_rate_limited", 4, false}, {hub, "nhrp_registrations_refused", 0, false}})
	// A squat the rate admits (20 CIEs, the burst, once the bucket has
	// refilled: m sent nothing for 3 s) is refused as a whole by the quota.
	time.Sleep(3 * time.Second)
	r.run(ctx, "2b squat within the rate (20 CIEs, holding 65535)",
		mReg(fmt.Sprintf("-unique -hold 65535 -cie %s -cie %s -cie %s -range 10.0.0.239-10.0.0.255 -range-nbma %s",
			hub.tunnel, s1.tunnel, s2.tunnel, m.nbma)),
		append(refused("address_quota", 20), advWant{hub, "nhrp_drop_rate_limited", 0, false}))
	r.run(ctx, "2c deregister the hub's and the broadcast address",
		mReg(fmt.Sprintf("-cie %s,%s,0 -cie 10.0.0.255,%s,0", hub.tunnel, m.nbma, m.nbma)), refused("reserved_address", 2))
	r.run(ctx, "3d replace s2's address over the quota", mReg(fmt.Sprintf("-cie %s,%s", s2.tunnel, m.nbma)), refused("address_quota", 1))

	// Phase 3 answers: the hub relays no reply that names another spoke
	// or a prefix wider than its route.
	hubDrop := func(drop string, n uint64) []advWant { return []advWant{{hub, "nhrp_drop_" + drop, n, false}} }
	r.run(ctx, "4a unsolicited reply for s2's LAN naming s2 at m, /1",
		mForge(hub, s1.tunnel, s2.lan.Addr(), fmt.Sprintf("resreply -plen 1 -cie %s,%s", s2.tunnel, m.nbma)), hubDrop("not_registered", 1))
	r.run(ctx, "4b unsolicited reply for s2's LAN naming m, /1",
		mForge(hub, s1.tunnel, s2.lan.Addr(), fmt.Sprintf("resreply -plen 1 -cie %s,%s", m.tunnel, m.nbma)), hubDrop("prefix_too_wide", 1))
	r.run(ctx, "4c unsolicited reply for m's LAN naming m, /1",
		mForge(hub, s1.tunnel, m.lan.Addr(), fmt.Sprintf("resreply -plen 1 -cie %s,%s", m.tunnel, m.nbma)), hubDrop("prefix_too_wide", 1))
	advAnswerRealRequest(ctx, r, hub, s1, s2, m)

	// Indications and purges.
	r.run(ctx, "5a traffic indication to the hub",
		mForge(hub, m.tunnel, hub.tunnel, fmt.Sprintf("traffic -data-src %s -data-dst %s", s1.lan.Addr(), s2.lan.Addr())), hubDrop("not_nhs", 1))
	r.run(ctx, "5b error indication to the hub", mForge(hub, m.tunnel, hub.tunnel, "errind"), hubDrop("unmatched_reply", 1))
	r.run(ctx, "5c error indication to s1, relayed by the hub", mForge(hub, m.tunnel, s1.tunnel, "errind"),
		[]advWant{{s1, "nhrp_drop_unmatched_reply", 1, false}})
	r.run(ctx, "5d purge of s1's registration in s1's name",
		mForge(hub, s1.tunnel, hub.tunnel, "purge -purge "+s1.tunnel.String()), hubDrop("wrong_responder", 1))
	r.run(ctx, "5e purge of s1's and s2's registrations",
		mForge(hub, m.tunnel, hub.tunnel, fmt.Sprintf("purge -purge %s -purge %s", s1.tunnel, s2.tunnel)), hubDrop("wrong_responder", 2))

	// The outsider: its cleartext GRE never reaches an engine.
	guard := func(d *dnode, n uint64) advWant { return advWant{d, "ipsec_gre_clear_in_dropped", n, true} }
	r.run(ctx, "6a outsider: ICMP in cleartext GRE to the hub and s1",
		advCmd{node: x, shell: fmt.Sprintf("ping -n -c 5 -i 0.2 -W 1 %s; ping -n -c 5 -i 0.2 -W 1 %s; true", hub.tunnel, s1.tunnel)},
		[]advWant{guard(hub, 5), guard(s1, 5)})
	xForge := func(to *dnode, dstProto netip.Addr, cmd string) advCmd {
		return advCmd{node: x, global: " -src-nbma " + advOutsiderNBMA.String(),
			cmd: fmt.Sprintf("-count 3 -to %s -src-proto 10.0.0.66 -dst-proto %s %s", to.nbma, dstProto, cmd)}
	}
	r.run(ctx, "6b outsider: cleartext registration to the hub", xForge(hub, hub.tunnel, "register -cie 10.0.0.66"), []advWant{guard(hub, 3)})
	r.run(ctx, "6c outsider: cleartext purge of s2 to s1", xForge(s1, s1.tunnel, "purge -purge "+s2.tunnel.String()), []advWant{guard(s1, 3)})
	// Off path, spoofing protected nodes' NBMAs (raw GRE with key 42): the
	// hub's purge of s2 and a redirect to s1, s1's deregistration to the
	// hub.
	spoof := func(as, to *dnode, srcProto, dstProto netip.Addr, cmd string) advCmd {
		return advCmd{node: x, cmd: fmt.Sprintf("-spoof-src %s -count 3 -to %s -src-proto %s -dst-proto %s %s",
			as.nbma, to.nbma, srcProto, dstProto, cmd)}
	}
	r.run(ctx, "6d outsider as the hub: purge of s2 to s1",
		spoof(hub, s1, hub.tunnel, s1.tunnel, "purge -no-reply -purge "+s2.tunnel.String()), []advWant{guard(s1, 3)})
	r.run(ctx, "6e outsider as the hub: traffic indication to s1",
		spoof(hub, s1, hub.tunnel, s1.lan.Addr(), fmt.Sprintf("traffic -data-src %s -data-dst 10.1.3.1", s1.lan.Addr())), []advWant{guard(s1, 3)})
	r.run(ctx, "6f outsider as s1: deregistration of s1 to the hub",
		spoof(s1, hub, s1.tunnel, hub.tunnel, fmt.Sprintf("register -cie %s,%s,0", s1.tunnel, s1.nbma)), []advWant{guard(hub, 3)})
	for _, d := range []*dnode{hub, s1} {
		c, err := settledCounters(ctx, d)
		t.Logf("%s's engine held %d packets for their SA and released %d", d.name, c["nhrp_rx_held_for_sa"], c["nhrp_rx_released_by_sa"])
		if err != nil {
			t.Error(err)
		}
		if n := c["nhrp_drop_untrusted"]; n != 0 {
			t.Errorf("%s's engine saw %d packets without an SA: cleartext NHRP passed the kernel guard", d.name, n)
		}
	}
	attackTime := time.Since(tAttack)

	// Nothing changed for the honest nodes.
	for _, d := range []*dnode{hub, s1, s2} {
		after, err := advSnapshot(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before[d], after); diff != "" {
			t.Errorf("%s's state changed during the attacks (-before +after):\n%s", d.name, diff)
		}
	}
	// The ping went on through all of it.
	if err := ping.waitReplies(ctx, 30*time.Second, ping.lastSeq(), 10); err != nil {
		t.Error(err)
	}
	if err := ping.stop(ctx); err != nil {
		t.Fatal(err)
	}
	loss, err := ping.loss()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ping s1 -> s2 over the shortcut: %v (attacks from icmp_seq %d to %d)", loss, firstSeq, ping.lastSeq())
	if loss.lost != 0 {
		t.Errorf("the honest spokes' ping lost %d probes during the attacks: %v (log %s)", loss.lost, loss, ping.proc.Log)
	}
	t.Logf("timing: %d attack steps in %v; scenario %v", r.steps, scMS(attackTime), scMS(time.Since(start)))
}

// advAnswerRealRequest: s1 sends traffic to m's LAN through the hub; the
// hub's redirect makes s1 resolve it, the hub forwards the request to m,
// and the forge answers it twice, naming s2's address at m, then m's own
// with /1. The hub relays neither.
func advAnswerRealRequest(ctx context.Context, r *advRunner, hub, s1, s2, m *dnode) {
	t := r.t
	t.Helper()
	const name = "4d answer a real request naming s2 at m, then m with /1"
	base := map[*dnode]api.Counters{hub: r.counters(ctx, hub)}
	t0 := time.Now()
	p, err := m.node.Start(ctx, "forge-answer", fmt.Sprintf("%s -src-nbma %s answer -timeout 120s -plen 1 -cie %s,%s -cie %s,%s",
		r.forge, m.nbma, s2.tunnel, m.nbma, m.tunnel, m.nbma))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = lab.WaitFor(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		if b, _ := os.ReadFile(p.Log); !strings.Contains(string(b), `"dir":"listen"`) {
			return fmt.Errorf("nhrpforge answer on m not listening yet (log %s)", p.Log)
		}
		return nil
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	ping := fmt.Sprintf("ping -n -c 1 -W 1 -I %s %s", s1.lan.Addr(), m.lan.Addr())
	want := []advWant{{hub, "nhrp_drop_not_registered", 1, false}, {hub, "nhrp_drop_prefix_too_wide", 1, false}}
	now := map[*dnode]api.Counters{}
	wctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	err = lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
		// Traffic through the hub: its redirect makes s1 resolve.
		_, _ = s1.node.Exec(ctx, ping)
		return r.reached(ctx, base, now, want)
	})
	cancel()
	b, _ := os.ReadFile(p.Log)
	t.Logf("%s: nhrpforge on m:\n%s", name, b)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	r.check(name, base, now, want, time.Since(t0))
	if !strings.Contains(string(b), `"dir":"recv","type":"resolution-request"`) {
		t.Errorf("%s: the forge never saw the request", name)
	}
}
