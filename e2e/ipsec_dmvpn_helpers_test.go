package e2e

// Helpers for the dmvpnd-with-IPsec scenarios (ipsec_dmvpn_test.go and
// the IPsec variants of phase3_test.go and nat_test.go).
// Names start with "ipd" so they do not collide with other scenario
// helpers of this package.

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
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
)

// ipdPSK is the lab's group pre-shared key (not a secret).
const ipdPSK = "ipd-lab-psk-not-a-secret-0123456789"

// ipdYAML is the ipsec section of a node whose charon listens on socket.
func ipdYAML(socket string) string {
	return fmt.Sprintf("ipsec:\n  enabled: true\n  vici_socket: %s\n  auth: {method: psk, psk: %s}\n", socket, ipdPSK)
}

// ipdStartCharons starts a charon in each node's namespace and points the
// node's dmvpnd at its vici socket (PSK).
func ipdStartCharons(t *testing.T, nodes ...*dnode) map[*dnode]*lab.Charon {
	t.Helper()
	return ipdStartCharonsAuth(t, nil, scIPsecPSK, "", nodes...)
}

// ipdStartCharonsAuth is ipdStartCharons with a choice of protection
// (scIPsecNone: no charon, nil map) and a charon name (lab.CharonConfig's
// Name: "" is the node's charon; a scenario variant names its own, so its
// files and log stay apart from an earlier variant's). For X.509 it
// issues every node a certificate (IP SAN = its NBMA address, and with
// scIPsecX509Bound its tunnel address) from a throw-away CA, writes CA,
// certificate and key into the node's directory in the lab, names them in
// dmvpnd's ipsec section, and loads the certificate plugins into charon
// (ipsec.CharonPlugins).
func ipdStartCharonsAuth(t *testing.T, l *lab.Lab, auth scIPsec, name string, nodes ...*dnode) map[*dnode]*lab.Charon {
	t.Helper()
	if auth == scIPsecNone {
		return nil
	}
	var ca *ipsectest.PKI
	cfg := lab.CharonConfig{Name: name}
	if auth != scIPsecPSK {
		ca = ipsectest.NewPKI(t, "dmvpnd lab CA")
		cfg.Plugins = ipsec.CharonPlugins
	}
	out := map[*dnode]*lab.Charon{}
	for _, d := range nodes {
		c := d.node.MustStartCharon(cfg)
		if ca == nil {
			d.extra += ipdYAML(c.Socket)
		} else {
			d.extra += ipdCertYAML(t, ca, l, d, c.Socket, auth == scIPsecX509Bound)
		}
		out[d] = c
	}
	return out
}

// ipdCertYAML issues d a certificate from ca (IP SAN: its NBMA address;
// with bind also its tunnel address), writes the PEM files into d's
// directory in the lab and returns d's ipsec section, which with bind sets
// bind_tunnel_address.
func ipdCertYAML(t *testing.T, ca *ipsectest.PKI, l *lab.Lab, d *dnode, socket string, bind bool) string {
	t.Helper()
	ips := []netip.Addr{d.nbma}
	bound := ""
	if bind {
		ips = append(ips, d.tunnel)
		bound = ", bind_tunnel_address: true"
	}
	certPEM, keyPEM := ca.Issue(t, d.name, ips...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files := []struct {
		path string
		data []byte
	}{
		{d.dir + "/ca.pem", ca.CAPEM},
		{d.dir + "/cert.pem", certPEM},
		{d.dir + "/key.pem", keyPEM},
	}
	for _, f := range files {
		if err := l.WriteFile(ctx, f.path, f.data, 0o600); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
	}
	return fmt.Sprintf("ipsec:\n  enabled: true\n  vici_socket: %s\n  auth: {method: x509, ca: %s, cert: %s, key: %s%s}\n",
		socket, files[0].path, files[1].path, files[2].path, bound)
}

// ipdShowIPsec returns the node's dmvpnctl show ipsec --json view.
func ipdShowIPsec(ctx context.Context, d *dnode) ([]api.SA, error) {
	return ctlJSON[[]api.SA](ctx, d, "show ipsec")
}

// ipdWaitSA waits until d's show ipsec --json reports the SA with peer
// ESTABLISHED.
func ipdWaitSA(ctx context.Context, d *dnode, peer netip.Addr, timeout time.Duration) error {
	last, err := ctlWait(ctx, d, timeout, "show ipsec", func(v []api.SA) error {
		if i := slices.IndexFunc(v, func(sa api.SA) bool { return sa.PeerNBMA == peer }); i < 0 || v[i].State != api.SAEstablished {
			return fmt.Errorf("%s: SA with %s is not %s", d.name, peer, api.SAEstablished)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; show ipsec: %+v", err, last)
	}
	return nil
}

// ipdPeerState returns the state of the peer with tunnel address tunnel
// in d's show dmvpn ("" when it is not listed).
func ipdPeerState(v api.DMVPN, tunnel netip.Addr) api.PeerState {
	for _, p := range v.Peers {
		if p.Tunnel == tunnel {
			return p.State
		}
	}
	return ""
}

// ipdWaitPeerUp waits until d's show dmvpn lists the peer with tunnel
// address tunnel as UP.
func ipdWaitPeerUp(ctx context.Context, d *dnode, tunnel netip.Addr, timeout time.Duration) error {
	last, err := ctlWait(ctx, d, timeout, "show dmvpn", func(v api.DMVPN) error {
		if st := ipdPeerState(v, tunnel); st != api.PeerUp {
			return fmt.Errorf("%s: peer %s is %q, want %s", d.name, tunnel, st, api.PeerUp)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; show dmvpn peers: %+v", err, last.Peers)
	}
	return nil
}

// ipdCharonSAs counts, in charon's list-sas (swanctl --list-sas --raw:
// one line per IKE_SA), the IKE_SAs whose remote host is peer (any state)
// and their installed CHILD_SAs.
func ipdCharonSAs(ctx context.Context, c *lab.Charon, peer netip.Addr) (ike, child int, raw string, err error) {
	res, err := c.Swanctl(ctx, "--list-sas", "--raw")
	if err != nil {
		return 0, 0, "", err
	}
	raw = string(res.Stdout)
	ike, child = ipdCountSAs(raw, peer)
	return ike, child, raw, nil
}

// ipdCountSAs parses swanctl --list-sas --raw output (see ipdCharonSAs).
func ipdCountSAs(raw string, peer netip.Addr) (ike, child int) {
	for line := range strings.SplitSeq(raw, "\n") {
		if !strings.Contains(line, " remote-host="+peer.String()+" ") {
			continue
		}
		ike++
		if _, children, ok := strings.Cut(line, "child-sas {"); ok {
			child += strings.Count(children, "state=INSTALLED ")
		}
	}
	return ike, child
}

// ipdXfrmStates counts the ESP states from src to dst in d's kernel.
func ipdXfrmStates(ctx context.Context, d *dnode, src, dst netip.Addr) (int, string, error) {
	res, err := d.node.Run(ctx, "ip xfrm state")
	if err != nil {
		return 0, "", err
	}
	n := 0
	prefix := fmt.Sprintf("src %s dst %s", src, dst)
	for line := range strings.SplitSeq(string(res.Stdout), "\n") {
		if strings.TrimSpace(line) == prefix {
			n++
		}
	}
	return n, string(res.Stdout), nil
}

// ipdWaitOnePair waits until the charons of a and b each hold exactly one
// IKE_SA with the other with exactly one installed CHILD_SA, and each
// kernel exactly one ESP state per direction between them.
func ipdWaitOnePair(ctx context.Context, a, b *dnode, ca, cb *lab.Charon, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	err := lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) (err error) {
		defer func() {
			if err != nil && ctx.Err() == nil {
				last = err
			}
		}()
		for _, s := range []struct {
			d, peer *dnode
			c       *lab.Charon
		}{{a, b, ca}, {b, a, cb}} {
			ike, child, raw, err := ipdCharonSAs(ctx, s.c, s.peer.nbma)
			if err != nil {
				return err
			}
			if ike != 1 || child != 1 {
				return fmt.Errorf("%s: %d IKE_SAs and %d installed CHILD_SAs with %s, want 1 and 1; swanctl --list-sas --raw:\n%s",
					s.d.name, ike, child, s.peer.name, raw)
			}
			for _, dir := range [][2]netip.Addr{{s.d.nbma, s.peer.nbma}, {s.peer.nbma, s.d.nbma}} {
				n, raw, err := ipdXfrmStates(ctx, s.d, dir[0], dir[1])
				if err != nil {
					return err
				}
				if n != 1 {
					return fmt.Errorf("%s: %d ESP states %s -> %s, want 1; ip xfrm state:\n%s", s.d.name, n, dir[0], dir[1], raw)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return nil
}

// ipdClockOffset estimates how far the lab's clock (which stamps dmvpnd's
// logs) is ahead of the test's: guest time minus the midpoint of the
// command's round trip, so a host time h reads h.Add(offset) in the logs.
func ipdClockOffset(ctx context.Context, d *dnode) (time.Duration, error) {
	before := time.Now()
	res, err := d.node.Run(ctx, "date +%s.%N")
	after := time.Now()
	if err != nil {
		return 0, err
	}
	g, err := ipdParseDate(string(res.Stdout))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", d.name, err)
	}
	return g.Sub(before.Add(after.Sub(before) / 2)), nil
}

// ipdParseDate parses the first line of output as `date +%s.%N` prints it.
func ipdParseDate(out string) (time.Time, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	var sec, nsec int64
	if _, err := fmt.Sscanf(line, "%d.%d", &sec, &nsec); err != nil {
		return time.Time{}, fmt.Errorf("date output %q: %v", line, err)
	}
	return time.Unix(sec, nsec), nil
}

// ipdWaitNeigh waits until d's gre1 neighbor entry for proto points at
// nbma (for a shortcut: its direct path is confirmed and in use).
func ipdWaitNeigh(ctx context.Context, d *dnode, proto, nbma netip.Addr, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	err := lab.WaitFor(wctx, 250*time.Millisecond, func(ctx context.Context) error {
		res, err := d.node.Run(ctx, "ip neigh show dev gre1 "+proto.String())
		if err != nil {
			return err
		}
		last = strings.TrimSpace(string(res.Stdout))
		if !strings.Contains(last+" ", "lladdr "+nbma.String()+" ") {
			return fmt.Errorf("%s: neighbor %s is %q, want lladdr %s", d.name, proto, last, nbma)
		}
		return nil
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w (last: %q)", err, last)
	}
	return err
}

// ipdLogState logs show dmvpn, show ipsec (for a node with an ipsec
// section) and the counters of each node.
func ipdLogState(ctx context.Context, t *testing.T, nodes ...*dnode) {
	t.Helper()
	for _, d := range nodes {
		cmds := []string{"show dmvpn", "show ipsec", "show counters"}
		if !strings.Contains(d.extra, "ipsec:") {
			cmds = slices.Delete(cmds, 1, 2)
		}
		for _, cmd := range cmds {
			out, err := d.ctl(ctx, cmd)
			if err != nil {
				t.Logf("%s %s: %v", d.name, cmd, err)
				continue
			}
			t.Logf("%s %s:\n%s", d.name, cmd, out)
		}
	}
}

// ipdProtoUDP is the IPv4 protocol number of UDP (IKE, NAT-T).
const ipdProtoUDP = 17

// ipdCapture is a capture on the underlay bridge port of one node.
type ipdCapture struct {
	c    *lab.Capture
	port string
}

// ipdStartCapture captures on node port's bridge port (the switch side, so
// that decrypted GRE re-entering the host after XFRM is not seen).
func ipdStartCapture(ctx context.Context, l *lab.Lab, port, name string) (*ipdCapture, error) {
	c, err := l.Node(l.Topology().Switch).Capture(ctx, port, name)
	if err != nil {
		return nil, err
	}
	return &ipdCapture{c: c, port: port}, nil
}

// stopESPOnly stops the capture and fails unless it saw at least min ESP
// packets and no cleartext GRE.
func (c *ipdCapture) stopESPOnly(ctx context.Context, min int) (lab.PacketCounts, error) {
	counts, err := c.c.Stop(ctx)
	if err != nil {
		return counts, err
	}
	if err := lab.CheckESPOnly(counts, min); err != nil {
		return counts, fmt.Errorf("bridge port %s: %w (pcap %s)", c.port, err, c.c.Path)
	}
	// Between protected peers IPv4 carries only ESP and IKE (UDP).
	for proto, n := range counts.ByProto {
		if proto != lab.ProtoESP && proto != ipdProtoUDP && n > 0 {
			return counts, fmt.Errorf("bridge port %s: %d IPv4 packets of protocol %d besides ESP and IKE (pcap %s)", c.port, n, proto, c.c.Path)
		}
	}
	return counts, nil
}

// ipdRegisteredOverSA checks, on spoke s, that its SA with the NHS at nbma
// is established and came up no later than its registration: show ipsec
// --json's SA.Since against show nhrp nhs --json's NHS.Since, both
// stamped by s's dmvpnd when the state last changed. It returns both.
func ipdRegisteredOverSA(ctx context.Context, s *dnode, nbma netip.Addr) (up, registered time.Time, err error) {
	sas, err := ipdShowIPsec(ctx, s)
	if err != nil {
		return up, registered, err
	}
	nhss, err := scNHSList(ctx, s)
	if err != nil {
		return up, registered, err
	}
	i := slices.IndexFunc(sas, func(sa api.SA) bool { return sa.PeerNBMA == nbma })
	j := slices.IndexFunc(nhss, func(n api.NHS) bool { return n.NBMA == nbma })
	switch {
	case i < 0 || sas[i].State != api.SAEstablished:
		return up, registered, fmt.Errorf("%s: registered but show ipsec --json has no established SA with %s: %+v", s.name, nbma, sas)
	case j < 0 || nhss[j].State != api.NHSResponding:
		return up, registered, fmt.Errorf("%s: NHS %s not responding: %s", s.name, nbma, scNHSStates(nhss))
	}
	up, registered = sas[i].Since, nhss[j].Since
	switch {
	case up.IsZero() || registered.IsZero():
		return up, registered, fmt.Errorf("%s: no time for the SA with %s (%v) or the registration (%v)", s.name, nbma, up, registered)
	case registered.Before(up):
		return up, registered, fmt.Errorf("%s: registered with %s at %v, before its SA came up at %v", s.name, nbma, registered, up)
	}
	return up, registered, nil
}
