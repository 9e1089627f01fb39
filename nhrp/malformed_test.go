package nhrp_test

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

var update = flag.Bool("update", false, "rewrite golden files and the malformed-input corpus")

const malformedDir = "testdata/malformed"

// malformedCase is one malformed input with the exact error it must give.
type malformedCase struct {
	name, doc string
	input     []byte
	code      nhrp.ErrorCode
	offset    int
	reason    string
	category  error
}

var categories = map[string]error{
	"truncated": nhrp.ErrTruncated, "length": nhrp.ErrLength, "checksum": nhrp.ErrChecksum,
	"address": nhrp.ErrAddress, "unsupported": nhrp.ErrUnsupported, "hop-count": nhrp.ErrHopCount,
	"extension": nhrp.ErrExtension,
}

func categoryName(err error) string {
	for k, v := range categories {
		if v == err {
			return k
		}
	}
	return "?"
}

// frrRegistration is a registration request laid out as FRR sends it:
// header 0-19, mandatory 20-39, CIE 40-51, extensions from 52: responder
// 52, forward transit 56, reverse transit 60, NAT 64 (one 20-octet CIE),
// End 88; 92 octets.
func frrRegistration(t testing.TB) []byte {
	p := nhrp.NewRegistrationRequest(s1NBMA, s1Tunnel, hubTunnel, 1, 300, 0, false)
	p.SetNATAddress(nhrp.CIE{PrefixLength: 32, ClientNBMA: hubNBMA, ClientProto: hubTunnel})
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 92 {
		t.Fatalf("base packet is %d octets, the cases below assume 92", len(b))
	}
	return b
}

// fix sets ar$pktsz to len(b) and recomputes the checksum, so that a case
// tests one fault only.
func fix(b []byte) []byte {
	binary.BigEndian.PutUint16(b[10:], uint16(len(b)))
	nhrpcaptest.SetNHRPChecksum(b)
	return b
}

func malformedCases(t testing.TB) []malformedCase {
	base := func() []byte { return frrRegistration(t) }
	set := func(b []byte, off int, v ...byte) []byte { copy(b[off:], v); return b }
	set16 := func(b []byte, off int, v uint16) []byte { binary.BigEndian.PutUint16(b[off:], v); return b }
	noExt := func() []byte { b := base()[:52]; set16(b, 14, 0); return fix(b) }
	return []malformedCase{
		{"empty", "no octets at all", nil, 7, 0, "fixed header truncated: 0 of 20 octets", nhrp.ErrTruncated},
		{"truncated-header", "10 of the 20 fixed header octets", base()[:10], 7, 10, "fixed header truncated: 10 of 20 octets", nhrp.ErrTruncated},
		{"pktsz-exceeds-buffer", "packet cut at 60 octets, ar$pktsz still 92", base()[:60], 7, 10, "packet size 92 exceeds the 60 octets received", nhrp.ErrTruncated},
		{"pktsz-below-buffer", "4 trailing octets beyond ar$pktsz", append(base(), 0, 0, 0, 0), 7, 10, "packet size 92 but 96 octets received", nhrp.ErrLength},
		{"pktsz-below-header", "ar$pktsz 8, smaller than the fixed header", fix(base()[:20])[:8], 7, 8, "fixed header truncated: 8 of 20 octets", nhrp.ErrTruncated},
		{"wrong-checksum", "checksum off by one", func() []byte { b := base(); b[13]++; return b }(), 7, 12, "checksum 0x717f, computed 0x717e", nhrp.ErrChecksum},
		{"hop-count-0", "ar$hopcnt 0", fix(set(base(), 9, 0)), 15, 9, "hop count 0", nhrp.ErrHopCount},
		{"afn-unsupported", "ar$afn 3 (E.164)", fix(set16(base(), 0, 3)), 7, 0, "unsupported NBMA address family 3", nhrp.ErrUnsupported},
		{"protocol-unsupported", "ar$pro.type 0x0806", fix(set16(base(), 2, 0x0806)), 7, 2, "unsupported protocol type 0x0806", nhrp.ErrUnsupported},
		{"version-2", "ar$op.version 2", fix(set(base(), 16, 2)), 7, 16, "unsupported version 2", nhrp.ErrUnsupported},
		{"type-0", "ar$op.type 0", fix(set(base(), 17, 0)), 7, 17, "unknown packet type 0", nhrp.ErrUnsupported},
		{"type-9", "ar$op.type 9", fix(set(base(), 17, 9)), 7, 17, "unknown packet type 9", nhrp.ErrUnsupported},
		{"nbma-length-0", "source NBMA address length 0", fix(set(base(), 18, 0)), 7, 18, "source NBMA address length 0, want 4 for address family 1", nhrp.ErrAddress},
		{"nbma-length-63", "source NBMA address length 63", fix(set(base(), 18, 63)), 7, 18, "source NBMA address length 63, want 4 for address family 1", nhrp.ErrAddress},
		{"nbma-length-16-ipv4", "16-octet NBMA address with afn IPv4", fix(set(base(), 18, 16)), 7, 18, "source NBMA address length 16, want 4 for address family 1", nhrp.ErrAddress},
		{"src-proto-length-0", "source protocol address length 0", fix(set(base(), 20, 0)), 7, 20, "source protocol address length 0, want 4 for protocol type 0x0800", nhrp.ErrAddress},
		{"dst-proto-length-63", "destination protocol address length 63", fix(set(base(), 21, 63)), 7, 21, "destination protocol address length 63, want 4 for protocol type 0x0800", nhrp.ErrAddress},
		{"truncated-mandatory", "header only, ar$pktsz 24", fix(base()[:24]), 7, 20, "mandatory part truncated: 4 of 8 fixed octets", nhrp.ErrTruncated},
		{"truncated-mandatory-addresses", "mandatory part ends inside the destination protocol address", fix(set16(base()[:38], 14, 0)), 7, 28, "mandatory part addresses truncated: 10 of 12 octets", nhrp.ErrTruncated},
		{"truncated-cie", "CIE cut after 6 of its 12 header octets (no extensions)", fix(noExt()[:46]), 7, 40, "CIE truncated: 6 of 12 header octets", nhrp.ErrTruncated},
		{"truncated-cie-address", "CIE announces a 4-octet client NBMA address that is not there", fix(set(base(), 48, 4)), 7, 40, "CIE addresses truncated: 0 of 4 octets", nhrp.ErrTruncated},
		{"cie-nbma-length-63", "CIE client NBMA address length 63", fix(set(base(), 48, 63)), 7, 48, "CIE client NBMA address length 63, want 0 or 4", nhrp.ErrAddress},
		{"cie-proto-length-16", "CIE client protocol address length 16 with IPv4 protocol type", fix(set(base(), 50, 16)), 7, 50, "CIE client protocol address length 16, want 0 or 4", nhrp.ErrAddress},
		{"extoff-past-end", "ar$extoff 200 in a 92-octet packet", fix(set16(base(), 14, 200)), 7, 14, "extension offset 200 past the end of the 92-octet packet", nhrp.ErrTruncated},
		{"extoff-at-end", "ar$extoff equal to ar$pktsz: extensions without End", fix(set16(base(), 14, 92)), 9, 14, "extension offset 92 at the end of the packet: extensions without End", nhrp.ErrExtension},
		{"extoff-in-mandatory", "ar$extoff 30, inside the mandatory part", fix(set16(base(), 14, 30)), 7, 14, "extension offset 30 inside the mandatory part (ends at 40)", nhrp.ErrLength},
		{"extoff-in-cie", "ar$extoff 46 cuts the CIE", fix(set16(base(), 14, 46)), 7, 40, "CIE truncated: 6 of 12 header octets", nhrp.ErrTruncated},
		{"ext-length-overrun", "NAT extension length 100, 24 octets left", fix(set16(base(), 66, 100)), 9, 66, "extension length 100 overruns the packet by 76 octets", nhrp.ErrLength},
		{"truncated-ext-header", "End extension cut to 2 octets", fix(base()[:90]), 9, 88, "extension header truncated: 2 of 4 octets", nhrp.ErrTruncated},
		{"data-after-end", "4 octets after the End extension", fix(append(base(), 1, 2, 3, 4)), 9, 92, "4 octets after the End extension", nhrp.ErrExtension},
		{"end-with-length", "End extension with length 2", fix(append(set16(base(), 90, 2), 0, 0)), 9, 90, "End extension with length 2", nhrp.ErrExtension},
		{"transit-truncated-cie", "forward transit extension holding 5 octets", fix(append(append(base()[:56], 0x80, 0x04, 0x00, 0x05, 1, 2, 3, 4, 5), base()[60:]...)),
			9, 60, "forward-transit-nhs extension: CIE truncated: 5 of 12 header octets", nhrp.ErrTruncated},
		{"responder-cie-bad-length", "responder address CIE with client protocol length 63", fix(append(append(base()[:52], 0x80, 0x03, 0x00, 0x0c, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 63, 0), base()[56:]...)),
			9, 66, "responder-address extension: CIE client protocol address length 63, want 0 or 4", nhrp.ErrAddress},
		{"auth-too-short", "authentication extension of 2 octets", fix(append(append(base()[:88], 0x80, 0x07, 0x00, 0x02, 0, 1), base()[88:]...)), 9, 90, "authentication extension length 2, want at least 4", nhrp.ErrExtension},
		{"vendor-too-short", "vendor-private extension of 1 octet", fix(append(append(base()[:88], 0x00, 0x08, 0x00, 0x01, 0), base()[88:]...)), 9, 90, "vendor-private extension length 1, want at least 3", nhrp.ErrExtension},
	}
}

func (c malformedCase) file() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\ncode %d\noffset %d\ncategory %s\nreason %s\n", c.doc, c.code, c.offset, categoryName(c.category), c.reason)
	h := hex.EncodeToString(c.input)
	for len(h) > 64 {
		b.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	if h != "" {
		b.WriteString(h + "\n")
	}
	return b.String()
}

func parseMalformed(name, text string) (malformedCase, error) {
	c := malformedCase{name: name}
	var hx strings.Builder
	for _, line := range strings.Split(text, "\n") {
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "#":
			c.doc = val
		case "code", "offset":
			n, err := strconv.Atoi(val)
			if err != nil {
				return c, fmt.Errorf("%s: %v", key, err)
			}
			if key == "code" {
				c.code = nhrp.ErrorCode(n)
			} else {
				c.offset = n
			}
		case "category":
			c.category = categories[val]
		case "reason":
			c.reason = val
		default:
			hx.WriteString(line)
		}
	}
	var err error
	c.input, err = hex.DecodeString(hx.String())
	return c, err
}

// TestMalformedCorpusInSync keeps testdata/malformed equal to the table
// above (go test -run MalformedCorpus -update rewrites it).
func TestMalformedCorpusInSync(t *testing.T) {
	cases := malformedCases(t)
	if *update {
		if err := os.RemoveAll(malformedDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(malformedDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		path := filepath.Join(malformedDir, c.name+".txt")
		if *update {
			if err := os.WriteFile(path, []byte(c.file()), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run with -update)", err)
			continue
		}
		if string(got) != c.file() {
			t.Errorf("%s is out of date (run with -update)", path)
		}
	}
	files, _ := filepath.Glob(filepath.Join(malformedDir, "*.txt"))
	if len(files) != len(cases) {
		t.Errorf("%d corpus files for %d cases", len(files), len(cases))
	}
}

// TestMalformedCorpus replays every input in testdata/malformed and asserts
// the exact error.
func TestMalformedCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(malformedDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", malformedDir, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parseMalformed(name, string(text))
			if err != nil {
				t.Fatal(err)
			}
			var p nhrp.Packet
			err = p.Unmarshal(c.input)
			var pe *nhrp.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Unmarshal error = %v, want a *ParseError", err)
			}
			if pe.Code != c.code || pe.Offset != c.offset {
				t.Errorf("code %d offset %d, want code %d offset %d (%v)", pe.Code, pe.Offset, c.code, c.offset, err)
			}
			if pe.Reason != c.reason {
				t.Errorf("reason %q, want %q", pe.Reason, c.reason)
			}
			if c.category == nil || !errors.Is(err, c.category) {
				t.Errorf("error %v is not in category %v", err, c.category)
			}
			if !strings.HasPrefix(err.Error(), "nhrp: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if _, err := nhrp.Parse(c.input); err == nil {
				t.Error("Parse accepted what Unmarshal rejected")
			}
		})
	}
}
