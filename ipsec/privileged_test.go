package ipsec_test

// Tests against real charon daemons in two network namespaces. They need
// root, esp4 and the XFRM crypto modules (the lab's Debian kernel), and run
// only with DMVPND_PRIVILEGED=1.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
	"github.com/strongswan/govici/vici"
)

const labTimeout = 90 * time.Second // qemu TCG is slow; the first ESP SA loads modules

// checkESP sends GRE from a to b and checks that a's outbound ESP state
// counted it and b's inbound state received it.
func checkESP(t *testing.T, a, b *node) {
	t.Helper()
	before, _ := a.espPackets(a.addr, b.addr)
	var wire map[string]int
	if a.wire {
		wire = a.egress()
	}
	const n = 20
	if err := a.sendGRE(b.addr, n); err != nil {
		t.Fatalf("sending GRE: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, okOut := a.espPackets(a.addr, b.addr)
		in, okIn := b.espPackets(a.addr, b.addr)
		if okOut && okIn && out-before >= n && in >= n {
			t.Logf("ESP %s->%s: %d packets out (+%d), %d in", a.addr, b.addr, out, out-before, in)
			if a.wire {
				checkWire(t, a, wire, n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ESP counters %s->%s: out %d (found %v, before %d), in %d (found %v), want +%d",
				a.addr, b.addr, out, okOut, before, in, okIn, n)
		}
		time.Sleep(100 * time.Millisecond) // polling kernel counters with a deadline
	}
}

// countSAs asks charon directly how many IKE and CHILD SAs are established.
func countSAs(t *testing.T, sock string) (ike, child int) {
	t.Helper()
	c := newContractClient(t, sock)
	defer func() { _ = c.cmd.Close() }() // callers poll: no session left open per call
	for _, m := range c.stream("list-sas", "list-sa", nil) {
		for _, k := range m.Keys() {
			sa, ok := m.Get(k).(*vici.Message)
			if !ok || sa.Get("state") != "ESTABLISHED" {
				continue
			}
			ike++
			if cs, ok := sa.Get("child-sas").(*vici.Message); ok {
				for _, ck := range cs.Keys() {
					if c, ok := cs.Get(ck).(*vici.Message); ok && c.Get("state") == "INSTALLED" {
						child++
					}
				}
			}
		}
	}
	return ike, child
}

func pskLab() ipsec.Config {
	return ipsec.Config{Auth: ipsec.Auth{Method: ipsec.AuthPSK, PSK: ipsec.NewSecret("lab psk 0123456789")}}
}

func peerOf(n *node, init ipsec.Initiation) ipsec.Peer {
	return ipsec.Peer{RemoteNBMA: n.addr, Initiate: init}
}

// upPair starts charon and a Manager on both nodes: b responds, a initiates.
func upPair(t *testing.T, a, b *node, cfgA, cfgB ipsec.Config) (ma, mb *ipsec.Manager) {
	t.Helper()
	a.startCharon()
	b.startCharon()
	mb = b.manager(cfgB)
	if err := mb.SetPeers([]ipsec.Peer{peerOf(a, ipsec.Respond)}); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, mb)
	ma = a.manager(cfgA)
	if err := ma.SetPeers([]ipsec.Peer{peerOf(b, ipsec.Initiate)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ev := waitUp(t, ma, b.addr.String(), labTimeout)
	waitUp(t, mb, a.addr.String(), labTimeout)
	t.Logf("SA up after %v, observed %v", time.Since(start).Round(time.Millisecond), ev.Observed)
	if ev.Observed.Addr() != b.addr {
		t.Errorf("observed %v, want %v", ev.Observed, b.addr)
	}
	return ma, mb
}

func waitConnected(t *testing.T, m *ipsec.Manager) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !m.State().Connected || len(m.State().Peers) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("manager not connected: %+v", m.State())
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

func TestCharonPSK(t *testing.T) {
	requirePrivileged(t)
	a, b := newPair(t)
	ca, cb := pskLab(), pskLab()
	ca.VerifyInterval = time.Second
	ma, _ := upPair(t, a, b, ca, cb)
	checkESP(t, a, b)
	checkESP(t, b, a)
	if ike, child := countSAs(t, a.sock); ike != 1 || child != 1 {
		t.Errorf("charon a: %d IKE_SAs, %d CHILD_SAs; want 1 and 1", ike, child)
	}
	checkRepair(t, ma, a, b)
}

// checkRepair unloads a's connection to b and its credentials behind
// m's back, as swanctl --load-all with an empty swanctl.conf does, and
// waits for m to load them again. The counts must be exact: a fingerprint
// or credential check that disagreed with the real charon would repair
// on every verification (m runs with a 1 s VerifyInterval).
func checkRepair(t *testing.T, m *ipsec.Manager, a, b *node) {
	t.Helper()
	if st := m.State(); st.RepairedConns != 0 || st.RepairedCreds != 0 {
		t.Fatalf("repairs against the real charon before anyone touched it: %d connections, %d credentials", st.RepairedConns, st.RepairedCreds)
	}
	s := vicitest.Dial(t, a.sock)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := func(cmd, k, v string) *vici.Message {
		in := vici.NewMessage()
		if k != "" {
			_ = in.Set(k, v)
		}
		resp, err := s.Call(ctx, cmd, in)
		if err != nil {
			t.Fatalf("%s %s: %v", cmd, v, err)
		}
		return resp
	}
	keys := func(cmd string) []string { l, _ := call(cmd, "", "").Get("keys").([]string); return l }
	creds := 0
	for _, id := range keys("get-shared") {
		call("unload-shared", "id", id)
		creds++
	}
	for _, id := range keys("get-keys") {
		call("unload-key", "id", id)
		creds++
	}
	conn := "dmvpn-peer-" + b.addr.String()
	call("unload-conn", "name", conn)
	start := time.Now()
	for {
		conns, _ := call("get-conns", "", "").Get("conns").([]string)
		st := m.State()
		if slices.Contains(conns, conn) && st.RepairedConns >= 1 && int(st.RepairedCreds) >= creds {
			t.Logf("repaired %v after the unload", time.Since(start).Round(time.Millisecond))
			if st.RepairedConns != 1 || int(st.RepairedCreds) != creds {
				t.Errorf("repairs: %d connections, %d credentials; want exactly 1 and %d", st.RepairedConns, st.RepairedCreds, creds)
			}
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("not repaired 10 s after the unload: charon lists %v; %d connections, %d credentials repaired", conns, st.RepairedConns, st.RepairedCreds)
		}
		time.Sleep(100 * time.Millisecond) // polling charon with a deadline
	}
}

func TestCharonX509(t *testing.T) {
	requirePrivileged(t)
	a, b := newPair(t)
	ca := ipsectest.NewPKI(t, "dmvpnd lab CA")
	x509For := func(n *node) ipsec.Config {
		dir := filepath.Join(n.dir, "pki")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		caf, cert, key := ca.WriteFiles(t, dir, "node "+n.addr.String(), n.addr)
		return ipsec.Config{Auth: ipsec.Auth{Method: ipsec.AuthX509, CAFile: caf, CertFile: cert, KeyFile: key},
			VerifyInterval: time.Second}
	}
	ma, _ := upPair(t, a, b, x509For(a), x509For(b))
	checkESP(t, a, b)
	checkRepair(t, ma, a, b)
}

// TestCharonX509RogueCA: a node whose certificate comes from another CA
// gets no SA, although it trusts the right CA itself.
func TestCharonX509RogueCA(t *testing.T) {
	requirePrivileged(t)
	a, b := newPair(t)
	ca := ipsectest.NewPKI(t, "dmvpnd lab CA")
	rogue := ipsectest.NewPKI(t, "rogue CA")
	cfgFor := func(n *node, issuer *ipsectest.PKI) ipsec.Config {
		dir := filepath.Join(n.dir, "pki")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		_, cert, key := issuer.WriteFiles(t, dir, "node "+n.addr.String(), n.addr)
		caf := filepath.Join(dir, "trusted-ca.pem")
		if err := os.WriteFile(caf, ca.CAPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		return ipsec.Config{Auth: ipsec.Auth{Method: ipsec.AuthX509, CAFile: caf, CertFile: cert, KeyFile: key},
			ConnectTimeout: 5 * time.Second}
	}
	a.startCharon()
	b.startCharon()
	mb := b.manager(cfgFor(b, ca))
	if err := mb.SetPeers([]ipsec.Peer{peerOf(a, ipsec.Respond)}); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, mb)
	ma := a.manager(cfgFor(a, rogue))
	if err := ma.SetPeers([]ipsec.Peer{peerOf(b, ipsec.Initiate)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-ma.Events():
			if ev.Status == ipsec.StatusUp {
				t.Fatalf("SA up with a certificate from a rogue CA: %+v", ev)
			}
			continue
		case ev := <-mb.Events():
			if ev.Status == ipsec.StatusUp {
				t.Fatalf("responder accepted a rogue certificate: %+v", ev)
			}
			continue
		case <-deadline:
		}
		break
	}
	if ike, _ := countSAs(t, b.sock); ike != 0 {
		t.Errorf("responder has %d IKE_SAs with the rogue node", ike)
	}
	if st := ma.State(); st.Peers[0].Attempts < 2 {
		t.Errorf("initiator made %d attempts in 20s, want retries", st.Peers[0].Attempts)
	}
}

// TestCharonRestart: charon on the initiating node dies and comes back;
// the Manager reconnects, reloads and brings the SA back, and the
// responder ends up with exactly one IKE_SA (unique = replace).
func TestCharonRestart(t *testing.T) {
	requirePrivileged(t)
	a, b := newPair(t)
	ma, mb := upPair(t, a, b, pskLab(), pskLab())
	a.stopCharon()
	deadline := time.After(30 * time.Second)
	for down := false; !down; {
		select {
		case ev := <-ma.Events():
			down = ev.Peer == b.addr.String() && ev.Status == ipsec.StatusDown
		case <-deadline:
			t.Fatalf("no down event after charon died: %+v", ma.State())
		}
	}
	start := time.Now()
	a.startCharon()
	ready := time.Now()
	waitUp(t, ma, b.addr.String(), labTimeout)
	t.Logf("SA restored %v after charon's socket reappeared (charon start took %v)",
		time.Since(ready).Round(time.Millisecond), ready.Sub(start).Round(time.Millisecond))
	checkESP(t, a, b)
	settle := time.Now().Add(20 * time.Second)
	for {
		ikeB, childB := countSAs(t, b.sock)
		if ikeB == 1 && childB == 1 {
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("responder has %d IKE_SAs and %d CHILD_SAs after the restart, want 1 and 1", ikeB, childB)
		}
		time.Sleep(200 * time.Millisecond) // polling charon with a deadline
	}
	if st := ma.State(); st.Reconnects < 1 {
		t.Errorf("reconnects %d", st.Reconnects)
	}
	_ = mb
}

// TestCharonSimultaneous: both ends want the SA at the same moment
// (InitiateTieBreak, short fallback). Exactly one IKE_SA and one
// CHILD_SA remain on each side.
func TestCharonSimultaneous(t *testing.T) {
	requirePrivileged(t)
	a, b := newPair(t)
	a.startCharon()
	b.startCharon()
	cfg := pskLab()
	cfg.FallbackDelay = 50 * time.Millisecond // make the fallback race the lower end's IKE
	ma, mb := a.manager(cfg), b.manager(cfg)
	waitConnectedNoPeers(t, ma)
	waitConnectedNoPeers(t, mb)
	if err := ma.SetPeers([]ipsec.Peer{peerOf(b, ipsec.InitiateTieBreak)}); err != nil {
		t.Fatal(err)
	}
	if err := mb.SetPeers([]ipsec.Peer{peerOf(a, ipsec.InitiateTieBreak)}); err != nil {
		t.Fatal(err)
	}
	waitUp(t, ma, b.addr.String(), labTimeout)
	waitUp(t, mb, a.addr.String(), labTimeout)
	settle := time.Now().Add(30 * time.Second)
	for {
		ia, ca := countSAs(t, a.sock)
		ib, cb := countSAs(t, b.sock)
		if ia == 1 && ca == 1 && ib == 1 && cb == 1 {
			t.Logf("one IKE_SA and one CHILD_SA per side; terminated by policy: a %d, b %d",
				ma.State().Terminated, mb.State().Terminated)
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("SAs: a %d IKE %d CHILD, b %d IKE %d CHILD; want 1 each", ia, ca, ib, cb)
		}
		time.Sleep(200 * time.Millisecond) // polling charon with a deadline
	}
	checkESP(t, a, b)
	checkESP(t, b, a)
}

func waitConnectedNoPeers(t *testing.T, m *ipsec.Manager) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !m.State().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("manager not connected: %+v", m.State())
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// checkWire checks a's egress counters since before: no cleartext GRE
// left the node, and at least n ESP (or ESP-in-UDP) packets did.
func checkWire(t *testing.T, a *node, before map[string]int, n int) {
	t.Helper()
	now := a.egress()
	gre, esp := now["gre"]-before["gre"], now["esp"]-before["esp"]+now["natt"]-before["natt"]
	t.Logf("on the wire from %s: %d ESP, %d cleartext GRE", a.ns, esp, gre)
	if gre != 0 || esp < n {
		t.Errorf("%s sent %d cleartext GRE and %d ESP packets on %s, want 0 and >= %d", a.ns, gre, esp, a.dev, n)
	}
}
