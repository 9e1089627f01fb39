package nhrpdecode_test

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/cmd/dmvpnctl/nhrpdecode"
	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

// run executes `decode args...` and returns its output and error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := nhrpdecode.NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// checkCapture renders a capture as text and JSON and compares both with
// golden files; the JSON must also parse and list as many packets.
func checkCapture(t *testing.T, pcap, goldenBase string, wantPackets int) {
	t.Helper()
	text, err := run(t, pcap)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, text)
	}
	golden.Check(t, goldenBase+".txt", text)
	js, err := run(t, "--json", pcap)
	if err != nil {
		t.Fatalf("decode --json: %v", err)
	}
	golden.Check(t, goldenBase+".json", js)
	var recs []map[string]any
	if err := json.Unmarshal([]byte(js), &recs); err != nil {
		t.Fatalf("JSON output does not parse: %v", err)
	}
	if len(recs) != wantPackets || strings.Count(text, "\nframe ")+1 != wantPackets {
		t.Errorf("%d JSON records, %d text records, want %d", len(recs), strings.Count(text, "\nframe ")+1, wantPackets)
	}
}

func TestGoldenFRRCaptures(t *testing.T) {
	for _, name := range []string{"frr-phase3.pcap", "frr-phase3-fast-redirect.pcap"} {
		t.Run(name, func(t *testing.T) {
			checkCapture(t, filepath.Join("..", "..", "..", "nhrp", "testdata", name),
				filepath.Join("testdata", strings.TrimSuffix(name, ".pcap")), 14)
		})
	}
}

// externalDir is ../shared/testdata/nhrp-external beside the repository.
func externalDir(t *testing.T) string {
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "..", "shared", "testdata", "nhrp-external"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("external captures not available: %v", err)
	}
	return dir
}

func TestGoldenExternalCaptures(t *testing.T) {
	dir := externalDir(t)
	for name, n := range map[string]int{
		"ios_nhrp.pcap": 1, "NHRP_registration.pcap": 4, "NHRP-responder-address.pcap": 2,
		"nhrp-trace.pcap": 4, "nhrp.pcapng": 25, "pb_nhrp_1.pcap": 1,
	} {
		t.Run(name, func(t *testing.T) {
			checkCapture(t, filepath.Join(dir, name), filepath.Join("testdata", "external", name), n)
		})
	}
}

// TestSyntheticCapture covers what the real captures lack: IPv6 outer and
// inner addresses, NHRP over IP protocol 54, a raw-IP link type, a packet
// with a bad checksum (shown with its error, not skipped), an error
// indication, a vendor-private and an unknown extension.
func TestSyntheticCapture(t *testing.T) {
	addr := netip.MustParseAddr
	reg := nhrp.NewRegistrationRequest(addr("2001:db8::2"), addr("fd00::2"), addr("fd00::1"), 1, 600, 1400, true)
	reg.SetCleartextAuth([]byte("secret"))
	regBytes, err := reg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	res := nhrp.NewResolutionRequest(addr("198.51.100.2"), addr("10.0.0.2"), addr("192.168.2.1"), 2, 300, 0)
	res.AddExtension(nhrp.Extension{Type: nhrp.ExtensionVendorPrivate, Vendor: nhrp.VendorPrivate{OUI: [3]byte{0, 0, 0x0c}, Data: []byte{1, 2}}})
	res.AddExtension(nhrp.Extension{Type: 0x0100, Compulsory: true, Raw: []byte{0xca, 0xfe}})
	resBytes, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), resBytes...)
	bad[12] ^= 0xff
	ei := nhrp.NewErrorIndication(addr("198.51.100.1"), addr("10.0.0.1"), addr("10.0.0.2"), nhrp.ErrorUnrecognizedExtension, 80, resBytes)
	eiBytes, err := ei.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	w := nhrpcaptest.NewWriter(&buf, nhrpcap.LinkTypeRaw)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 678000, time.UTC)
	frame := func(src, dst netip.Addr, b []byte) []byte {
		f, err := nhrpcaptest.EthernetGRE(src, dst, 42, true, b)
		if err != nil {
			t.Fatal(err)
		}
		return f[14:] // raw IP
	}
	// NHRP directly over IP protocol 54: an IPv4 header by hand.
	ip54 := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 54, 0, 0, 198, 51, 100, 1, 198, 51, 100, 2}
	ip54[3] = byte(20 + len(eiBytes))
	ip54 = append(ip54, eiBytes...)
	for i, f := range [][]byte{
		frame(addr("2001:db8::2"), addr("2001:db8::1"), regBytes),
		frame(addr("198.51.100.2"), addr("198.51.100.1"), resBytes),
		frame(addr("198.51.100.2"), addr("198.51.100.1"), bad),
		ip54,
		{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, // UDP: not NHRP, skipped
	} {
		if err := w.WriteFrame(ts.Add(time.Duration(i)*time.Millisecond), f); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "synthetic.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	checkCapture(t, path, filepath.Join("testdata", "synthetic"), 4)

	out, err := run(t, "--show-secrets", path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `cleartext password "secret"`) {
		t.Errorf("--show-secrets did not print the password:\n%s", out)
	}
	if plain, _ := run(t, path); strings.Contains(plain, "secret") {
		t.Errorf("password printed without --show-secrets:\n%s", plain)
	}
}

func TestCommandErrors(t *testing.T) {
	if _, err := run(t); err == nil {
		t.Error("no error without a file argument")
	}
	if _, err := run(t, filepath.Join(t.TempDir(), "missing.pcap")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	notPcap := filepath.Join(t.TempDir(), "x.txt")
	if err := os.WriteFile(notPcap, []byte("hello, world, not a capture"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, notPcap); err == nil || !strings.Contains(err.Error(), "unknown file magic") {
		t.Errorf("not a capture: %v", err)
	}
	// A capture cut in the middle of a record: the packets before it are
	// printed, then the error is returned.
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "nhrp", "testdata", "frr-phase3.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, cut)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("cut capture: error %v", err)
	}
	if !strings.Contains(out, "registration-request") {
		t.Errorf("cut capture: packets before the cut not printed:\n%s", out)
	}
}
