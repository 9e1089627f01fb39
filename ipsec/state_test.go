package ipsec_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// TestStateJSON: the snapshot dmvpnctl prints is plain data with readable
// enums and addresses.
func TestStateJSON(t *testing.T) {
	h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub})
	h.waitCmd("initiate", isCmd("initiate"))
	h.srv.Emit("child-updown", vicitest.ChildUpdown(true, hubSA(1, true, greChild(2, "INSTALLED"))))
	st := h.waitState("up", func(s ipsec.State) bool { return len(s.Peers) == 1 && s.Peers[0].Status == ipsec.StatusUp })
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Status":"up"`, `"Initiate":"initiate"`, `"Observed":"192.0.2.1:4500"`,
		`"RemoteNBMA":"192.0.2.1"`, `"Conn":"dmvpn-peer-hub"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
}

// TestResyncSeesEverySA: list-sas streams many SAs; none may be lost
// (govici's CallStreaming can drop the last ones, see link.listSAs).
func TestResyncSeesEverySA(t *testing.T) {
	const n = 300
	var stream []*vicitest.Message
	for i := range n {
		stream = append(stream, vicitest.ListSA(vicitest.SA{
			Conn: "dmvpn-responder", UniqueID: uint32(i + 1), State: "ESTABLISHED",
			LocalHost: "192.0.2.50", LocalPort: 500, RemoteHost: fmt.Sprintf("10.1.%d.%d", i/200, i%200+1), RemotePort: 500,
			Children: []vicitest.ChildSA{{Name: "gre", UniqueID: uint32(i + 1000), State: "INSTALLED", Mode: "TRANSPORT"}},
		}))
	}
	stream = append(stream, vicitest.ListSA(vicitest.SA{Conn: "someone-else", UniqueID: 9999, State: "ESTABLISHED"}))
	for round := range 5 {
		h := newHarnessWith(t, pskConfig("192.0.2.50"), nil, func(s *vicitest.Server) {
			s.Handle("list-sas", func(*vicitest.Message) ([]*vicitest.Message, *vicitest.Message) { return stream, nil })
		})
		st := h.waitState("connected", func(s ipsec.State) bool { return s.Connected })
		if len(st.Unattributed) != n {
			t.Fatalf("round %d: %d SAs after resync, want %d", round, len(st.Unattributed), n)
		}
		if !st.Protected(netip.MustParseAddr("10.1.1.100")) {
			t.Errorf("round %d: 10.1.1.100 not protected", round)
		}
	}
}
