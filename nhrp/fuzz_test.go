package nhrp_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// FuzzUnmarshal feeds arbitrary octets to the decoder. Oracle: never panic;
// a packet that decodes re-encodes, the re-encoding decodes to an equal
// packet and encodes again to identical octets (roundTrip); and decoding
// into a reused, dirty Packet gives the same result as into a fresh one.
func FuzzUnmarshal(f *testing.F) {
	// An FRR registration request with responder, transit, NAT and End
	// extensions, the layout the malformed corpus mutates.
	f.Add(frrRegistration(f))
	// Constructed packets of all eight types, every extension, IPv4 and
	// IPv6 NBMA and protocol addresses (see samples_test.go).
	for _, s := range samples() {
		b, err := s.pkt.Marshal()
		if err != nil {
			f.Fatalf("%s: %v", s.name, err)
		}
		f.Add(b)
	}
	// Every NHRP packet of the real FRR captures in testdata/.
	for _, name := range []string{"frr-phase3.pcap", "frr-phase3-fast-redirect.pcap"} {
		for _, p := range readNHRP(f, filepath.Join("testdata", name)) {
			f.Add(p.NHRP)
		}
	}
	// Every malformed input of testdata/malformed, to mutate from the edges.
	files, _ := filepath.Glob(filepath.Join(malformedDir, "*.txt"))
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		c, err := parseMalformed(strings.TrimSuffix(filepath.Base(file), ".txt"), string(text))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.input)
	}
	// A Cisco-style odd-length packet with a cleartext authentication
	// extension (pktsz 81, checksum over a zero-padded last octet).
	cisco := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 5, 30, 1514, true)
	cisco.SetCleartextAuth([]byte("CISCO"))
	b, err := cisco.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)

	dirty := samples()[4].pkt // resolution reply: every kind of extension
	dirtyBytes, err := dirty.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := roundTrip(b, (*nhrp.Packet).Marshal); err != nil {
			t.Fatal(err)
		}
		fresh, errFresh := nhrp.Parse(b)
		var reused nhrp.Packet
		if err := reused.Unmarshal(dirtyBytes); err != nil {
			t.Fatal(err)
		}
		errReused := reused.Unmarshal(b)
		if (errFresh == nil) != (errReused == nil) {
			t.Fatalf("fresh decode error %v, reused decode error %v", errFresh, errReused)
		}
		if errFresh != nil {
			if errFresh.Error() != errReused.Error() {
				t.Fatalf("fresh decode error %v, reused decode error %v", errFresh, errReused)
			}
			return
		}
		if diff := cmp.Diff(fresh, &reused, cmpPacket...); diff != "" {
			t.Fatalf("reused decode differs (-fresh +reused):\n%s", diff)
		}
	})
}
