package nhrp_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

// tsharkFields are the Wireshark (4.x) NHRP fields the judge compares,
// plus the expert and malformed markers. Field names are Wireshark's,
// including its "addr_byets" typo.
var tsharkFields = []string{
	"nhrp.hdr.afn", "nhrp.hdr.pro.type", "nhrp.hdr.hopcnt", "nhrp.hdr.pktsz", "nhrp.hdr.chksum.status",
	"nhrp.hdr.extoff", "nhrp.hdr.version", "nhrp.hdr.op.type", "nhrp.hdr.shtl.len", "nhrp.hdr.sstl.len",
	"nhrp.src.prot.len", "nhrp.dst.prot.len", "nhrp.flags", "nhrp.reqid", "nhrp.err.code", "nhrp.err.offset",
	"nhrp.src.nbma.addr", "nhrp.src.nbma.addr_bytes", "nhrp.src.prot.addr", "nhrp.src.prot.addr_bytes",
	"nhrp.dst.prot.addr", "nhrp.dst.prot.addr_byets",
	"nhrp.code", "nhrp.prefix", "nhrp.unused", "nhrp.mtu", "nhrp.htime", "nhrp.cli.addr_tl.len",
	"nhrp.cli.saddr_tl.len", "nhrp.prot.len", "nhrp.pref",
	"nhrp.client.nbma.addr", "nhrp.client.nbma.addr_bytes", "nhrp.client.prot.addr", "nhrp.client.prot.addr_bytes",
	"nhrp.ext.c", "nhrp.ext.type", "nhrp.ext.len",
	"nhrp.auth_ext.reserved", "nhrp.auth_ext.spi", "nhrp.auth_ext.src_addr", "nhrp.auth_ext.data",
	"nhrp.vendor_ext.id", "nhrp.vendor_ext.data", "nhrp.unknown_ext.value",
	"_ws.expert.severity", "_ws.expert.message", "_ws.malformed",
}

// expectedFields renders what Wireshark should show for p, encoded as b,
// from the packet model (not from the encoder's output, except pktsz).
func expectedFields(p *nhrp.Packet, b []byte) map[string][]string {
	m := map[string][]string{}
	add := func(k string, v ...string) { m[k] = append(m[k], v...) }
	d := func(v any) string { return fmt.Sprint(v) }
	addr := func(field string, a netip.Addr) {
		if !a.IsValid() {
			return
		}
		if a.Is4() {
			add(field, a.String())
		} else {
			s := a.As16()
			add(field, hex.EncodeToString(s[:]))
		}
	}
	alen := func(a netip.Addr) int {
		if !a.IsValid() {
			return 0
		}
		return a.BitLen() / 8
	}
	add("nhrp.hdr.afn", fmt.Sprintf("0x%04x", uint16(p.AFN)))
	add("nhrp.hdr.pro.type", fmt.Sprintf("0x%04x", uint16(p.ProtocolType)))
	add("nhrp.hdr.hopcnt", d(p.HopCount))
	add("nhrp.hdr.pktsz", d(len(b)))
	add("nhrp.hdr.chksum.status", "1") // good
	add("nhrp.hdr.version", d(p.Version))
	add("nhrp.hdr.op.type", d(uint8(p.Type)))
	add("nhrp.hdr.shtl.len", d(alen(p.SrcNBMA)))
	add("nhrp.hdr.sstl.len", d(len(p.SrcNBMASubaddr)))
	add("nhrp.src.prot.len", d(alen(p.SrcProto)))
	add("nhrp.dst.prot.len", d(alen(p.DstProto)))
	switch p.Type {
	case nhrp.TypeErrorIndication:
		add("nhrp.err.code", d(uint16(p.ErrorCode)))
		add("nhrp.err.offset", d(p.ErrorOffset))
	case nhrp.TypeTrafficIndication:
	default:
		add("nhrp.flags", fmt.Sprintf("0x%04x", uint16(p.Flags)))
		add("nhrp.reqid", fmt.Sprintf("0x%08x", p.RequestID))
	}
	addr("nhrp.src.nbma.addr", p.SrcNBMA)
	addr("nhrp.src.prot.addr", p.SrcProto)
	addr("nhrp.dst.prot.addr", p.DstProto)
	cieLen := func(c *nhrp.CIE) int { return 12 + alen(c.ClientNBMA) + len(c.ClientNBMASubaddr) + alen(c.ClientProto) }
	cie := func(c *nhrp.CIE) {
		add("nhrp.code", d(uint8(c.Code)))
		add("nhrp.prefix", d(c.PrefixLength))
		add("nhrp.unused", d(c.Unused))
		add("nhrp.mtu", d(c.MTU))
		add("nhrp.htime", d(c.HoldingTime))
		add("nhrp.cli.addr_tl.len", d(alen(c.ClientNBMA)))
		add("nhrp.cli.saddr_tl.len", d(len(c.ClientNBMASubaddr)))
		add("nhrp.prot.len", d(alen(c.ClientProto)))
		add("nhrp.pref", d(c.Preference))
		addr("nhrp.client.nbma.addr", c.ClientNBMA)
		addr("nhrp.client.prot.addr", c.ClientProto)
	}
	for i := range p.CIEs {
		cie(&p.CIEs[i])
	}
	extTotal := 0
	var nested map[string][]string
	if p.Type == nhrp.TypeErrorIndication {
		// Wireshark dissects the offending packet right after the
		// mandatory part.
		if q, err := nhrp.Parse(p.Payload); err == nil {
			nested = expectedFields(q, p.Payload)
		}
	}
	for k, v := range nested {
		if !strings.HasPrefix(k, "_ws.") {
			add(k, v...)
		}
	}
	for i := range p.Extensions {
		e := &p.Extensions[i]
		c := "0"
		if e.Compulsory {
			c = "1"
		}
		add("nhrp.ext.c", c)
		add("nhrp.ext.type", fmt.Sprintf("0x%04x", uint16(e.Type)))
		n := 0
		switch {
		case e.Opaque || !e.Type.Known():
			n = len(e.Raw)
			if n > 0 {
				add("nhrp.unknown_ext.value", hex.EncodeToString(e.Raw))
			}
		case e.Type.CarriesCIEs():
			for j := range e.CIEs {
				n += cieLen(&e.CIEs[j])
				cie(&e.CIEs[j])
			}
		case e.Type == nhrp.ExtensionAuthentication:
			n = 4 + len(e.Auth.Data)
			add("nhrp.auth_ext.reserved", d(e.Auth.Type>>16))
			add("nhrp.auth_ext.spi", d(e.Auth.Type&0xffff))
			if p.AFN == nhrp.AFNIPv4 && len(e.Auth.Data) >= 4 {
				add("nhrp.auth_ext.src_addr", netip.AddrFrom4([4]byte(e.Auth.Data[:4])).String())
				if len(e.Auth.Data) > 4 {
					add("nhrp.auth_ext.data", hex.EncodeToString(e.Auth.Data[4:]))
				}
			}
		case e.Type == nhrp.ExtensionVendorPrivate:
			n = 3 + len(e.Vendor.Data)
			add("nhrp.vendor_ext.id", d(uint32(e.Vendor.OUI[0])<<16|uint32(e.Vendor.OUI[1])<<8|uint32(e.Vendor.OUI[2])))
			if len(e.Vendor.Data) > 0 {
				add("nhrp.vendor_ext.data", hex.EncodeToString(e.Vendor.Data))
			}
		}
		add("nhrp.ext.len", d(n))
		extTotal += 4 + n
	}
	extoff := 0
	if len(p.Extensions) > 0 {
		extoff = len(b) - extTotal
	}
	m["nhrp.hdr.extoff"] = append([]string{d(extoff)}, m["nhrp.hdr.extoff"]...)
	return m
}

// runTshark returns, per frame, the values of tsharkFields.
func runTshark(t *testing.T, pcap string) []map[string][]string {
	t.Helper()
	args := []string{"-r", pcap, "-n", "-T", "fields", "-E", "separator=|", "-E", "aggregator=,", "-E", "occurrence=a"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "tshark", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	var rows []map[string][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		cols := strings.Split(line, "|")
		if len(cols) != len(tsharkFields) {
			t.Fatalf("tshark row with %d columns, want %d: %q", len(cols), len(tsharkFields), line)
		}
		row := map[string][]string{}
		for i, c := range cols {
			if c != "" {
				row[tsharkFields[i]] = strings.Split(c, ",")
			}
		}
		// An address field holds either the IPv4 form or, for other
		// lengths, the bytes form: fold the two together.
		for _, f := range []string{"nhrp.src.nbma.addr", "nhrp.src.prot.addr", "nhrp.client.nbma.addr", "nhrp.client.prot.addr"} {
			if v, ok := row[f+"_bytes"]; ok {
				row[f] = append(row[f], v...)
				delete(row, f+"_bytes")
			}
		}
		if v, ok := row["nhrp.dst.prot.addr_byets"]; ok {
			row["nhrp.dst.prot.addr"] = append(row["nhrp.dst.prot.addr"], v...)
			delete(row, "nhrp.dst.prot.addr_byets")
		}
		rows = append(rows, row)
	}
	return rows
}

// TestWiresharkJudge encodes a packet of every type and with every
// extension, over IPv4 and IPv6, writes them to a pcap as Ethernet/IPv4/GRE
// (protocol 0x2001) and has tshark dissect it. It fails on any expert
// error or malformed mark and on any field whose value differs from what
// was encoded. A sabotaged frame (request id changed behind the encoder's
// back, checksum fixed up) proves the comparison can fail.
func TestWiresharkJudge(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	if testing.Short() {
		t.Skip("runs tshark")
	}
	var buf bytes.Buffer
	w := nhrpcaptest.NewWriter(&buf, nhrpcap.LinkTypeEthernet)
	type frame struct {
		name string
		want map[string][]string
	}
	var frames []frame
	for i, s := range samples() {
		b, err := s.pkt.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		fr, err := nhrpcaptest.EthernetGRE(hubNBMA, s1NBMA, 42, i%2 == 0, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrame(time.Unix(int64(i), 0), fr); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame{s.name, expectedFields(s.pkt, b)})
	}
	// The sabotaged frame: request id 8 -> 9 in the encoding only.
	sab := samples()[2].pkt
	sb, _ := sab.Marshal()
	sb[27]++
	fix(sb)
	fr, _ := nhrpcaptest.EthernetGRE(hubNBMA, s1NBMA, 42, true, sb)
	if err := w.WriteFrame(time.Unix(100, 0), fr); err != nil {
		t.Fatal(err)
	}
	pcap := filepath.Join(t.TempDir(), "judge.pcap")
	if err := os.WriteFile(pcap, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := runTshark(t, pcap)
	if len(rows) != len(frames)+1 {
		t.Fatalf("tshark saw %d frames, want %d", len(rows), len(frames)+1)
	}
	for i, f := range frames {
		got := rows[i]
		for _, k := range []string{"_ws.expert.severity", "_ws.expert.message", "_ws.malformed"} {
			if v, ok := got[k]; ok {
				t.Errorf("%s: tshark reports %s %v", f.name, k, v)
			}
			delete(got, k)
		}
		if diff := cmp.Diff(f.want, got); diff != "" {
			t.Errorf("%s: Wireshark's view differs from the encoded packet (-encoded +wireshark):\n%s", f.name, diff)
		}
	}
	// Wireshark decodes the group's extension as Cisco's (vendor ID
	// 00-00-0C = 12) with the name as its data, in registrations and in
	// resolution requests and replies.
	groups := map[string]string{"registration-request-group": sampleGroup,
		"resolution-request-group": sampleGroup, "resolution-reply-group": "branch-10m"}
	for i, f := range frames {
		want, ok := groups[f.name]
		if !ok {
			continue
		}
		delete(groups, f.name)
		ids, data := rows[i]["nhrp.vendor_ext.id"], rows[i]["nhrp.vendor_ext.data"]
		if len(ids) == 0 || ids[0] != "12" || len(data) == 0 {
			t.Fatalf("%s: tshark vendor IDs %v, data %v; want Cisco (12) first", f.name, ids, data)
		}
		name, err := hex.DecodeString(data[0])
		if err != nil || string(name) != want {
			t.Errorf("%s: tshark decodes group %q (%v), want %q", f.name, name, err, want)
		}
	}
	if len(groups) > 0 {
		t.Errorf("group samples that never reached tshark: %v", groups)
	}
	sabRow := rows[len(frames)]
	sabWant := expectedFields(sab, sb)
	if got, want := sabRow["nhrp.reqid"], sabWant["nhrp.reqid"]; cmp.Equal(got, want) {
		t.Errorf("sabotaged request id went unnoticed: tshark %v, model %v", got, want)
	}
}
