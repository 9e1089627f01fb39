package nhrp_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
)

// readNHRP returns the NHRP packets of a capture file.
func readNHRP(t testing.TB, path string) []nhrpcap.Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := nhrpcap.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []nhrpcap.Packet
	for {
		fr, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if p, ok := nhrpcap.Extract(fr); ok {
			out = append(out, p)
		}
	}
}

// checkRoundTrip asserts that every packet decodes and re-encodes to the
// identical octets, and returns the count per type.
func checkRoundTrip(t *testing.T, name string, pkts []nhrpcap.Packet) map[nhrp.Type]int {
	t.Helper()
	types := map[nhrp.Type]int{}
	var p nhrp.Packet // reused, as the daemon does
	for _, cp := range pkts {
		if err := p.Unmarshal(cp.NHRP); err != nil {
			t.Errorf("%s frame %d: %v", name, cp.Frame, err)
			continue
		}
		types[p.Type]++
		b, err := p.Marshal()
		if err != nil {
			t.Errorf("%s frame %d: Marshal: %v", name, cp.Frame, err)
			continue
		}
		if !bytes.Equal(b, cp.NHRP) {
			t.Errorf("%s frame %d (%s): re-encoding differs\n got %x\nwant %x", name, cp.Frame, p.Type, b, cp.NHRP)
		}
		if err := roundTrip(cp.NHRP, (*nhrp.Packet).Marshal); err != nil {
			t.Errorf("%s frame %d: %v", name, cp.Frame, err)
		}
	}
	return types
}

// TestFRRCaptures: every NHRP packet of the FRR nhrpd captures (see
// testdata/README.md) decodes and re-encodes to the identical bytes.
func TestFRRCaptures(t *testing.T) {
	want := map[nhrp.Type]int{
		nhrp.TypeRegistrationRequest: 2, nhrp.TypeRegistrationReply: 2, nhrp.TypeTrafficIndication: 2,
		nhrp.TypeResolutionRequest: 4, nhrp.TypeResolutionReply: 4,
	}
	for _, name := range []string{"frr-phase3.pcap", "frr-phase3-fast-redirect.pcap"} {
		t.Run(name, func(t *testing.T) {
			got := checkRoundTrip(t, name, readNHRP(t, filepath.Join("testdata", name)))
			for typ, n := range want {
				if got[typ] != n {
					t.Errorf("%d %s packets, want %d", got[typ], typ, n)
				}
			}
		})
	}
}

// externalDir locates ../shared/testdata/nhrp-external next to the
// repository root; tests using it skip when it is absent.
func externalDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root not found")
		}
		dir = parent
	}
	ext := filepath.Join(dir, "..", "shared", "testdata", "nhrp-external")
	if _, err := os.Stat(ext); err != nil {
		t.Skipf("external captures not available: %v", err)
	}
	return ext
}

// TestExternalCaptures: the tcpdump test-suite captures from other
// implementations (Cisco IOS among them; VLAN-tagged Ethernet, pcapng)
// round-trip byte for byte; the truncated one fails fast and precisely.
func TestExternalCaptures(t *testing.T) {
	dir := externalDir(t)
	wellFormed := map[string]int{
		"ios_nhrp.pcap":               1,
		"NHRP_registration.pcap":      4,
		"NHRP-responder-address.pcap": 2,
		"nhrp-trace.pcap":             4,
		"nhrp.pcapng":                 25,
	}
	for name, n := range wellFormed {
		t.Run(name, func(t *testing.T) {
			pkts := readNHRP(t, filepath.Join(dir, name))
			if len(pkts) != n {
				t.Errorf("%d NHRP packets, want %d", len(pkts), n)
			}
			checkRoundTrip(t, name, pkts)
		})
	}
	t.Run("pb_nhrp_1.pcap", func(t *testing.T) {
		pkts := readNHRP(t, filepath.Join(dir, "pb_nhrp_1.pcap"))
		if len(pkts) != 1 {
			t.Fatalf("%d NHRP packets, want 1", len(pkts))
		}
		done := make(chan error, 1)
		go func() { _, err := nhrp.Parse(pkts[0].NHRP); done <- err }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("decoder did not return within 10 s")
		}
		var pe *nhrp.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v, want a *ParseError", err)
		}
		want := nhrp.ParseError{Code: nhrp.ErrorProtocolError, Offset: 10, Reason: "packet size 30547 exceeds the 40 octets received", Err: nhrp.ErrTruncated}
		if *pe != want {
			t.Errorf("got %+v, want %+v", *pe, want)
		}
	})
}
