package nhrpcap_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

func readAll(t testing.TB, b []byte) ([]nhrpcap.Frame, error) {
	t.Helper()
	r, err := nhrpcap.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out []nhrpcap.Frame
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := nhrpcaptest.NewWriter(&buf, nhrpcap.LinkTypeRaw)
	ts := []time.Time{time.Unix(1700000000, 123456000).UTC(), time.Unix(1700000001, 0).UTC()}
	data := [][]byte{{0x45, 1, 2}, {0x60}}
	for i := range ts {
		if err := w.WriteFrame(ts[i], data[i]); err != nil {
			t.Fatal(err)
		}
	}
	frames, err := readAll(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []nhrpcap.Frame{
		{Number: 1, Timestamp: ts[0], LinkType: nhrpcap.LinkTypeRaw, Data: data[0], OriginalLength: 3},
		{Number: 2, Timestamp: ts[1], LinkType: nhrpcap.LinkTypeRaw, Data: data[1], OriginalLength: 1},
	}
	if diff := cmp.Diff(want, frames); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var empty bytes.Buffer
	if err := nhrpcaptest.NewWriter(&empty, nhrpcap.LinkTypeEthernet).Flush(); err != nil {
		t.Fatal(err)
	}
	if frames, err := readAll(t, empty.Bytes()); err != nil || len(frames) != 0 {
		t.Errorf("empty file: %d frames, %v", len(frames), err)
	}
}

// classicPcap builds a pcap file by hand in the given byte order.
func classicPcap(order binary.AppendByteOrder, nanos bool, lt uint32, sec, frac uint32, data []byte, origLen uint32) []byte {
	magic := uint32(0xa1b2c3d4)
	if nanos {
		magic = 0xa1b23c4d
	}
	b := order.AppendUint32(nil, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = order.AppendUint32(b, 65535)
	b = order.AppendUint32(b, lt)
	b = order.AppendUint32(b, sec)
	b = order.AppendUint32(b, frac)
	b = order.AppendUint32(b, uint32(len(data)))
	b = order.AppendUint32(b, origLen)
	return append(b, data...)
}

func TestClassicPcapVariants(t *testing.T) {
	for _, tt := range []struct {
		name  string
		order binary.AppendByteOrder
		nanos bool
		frac  uint32
		want  time.Time
	}{
		{"big endian micro", binary.BigEndian, false, 5, time.Unix(10, 5000)},
		{"little endian micro", binary.LittleEndian, false, 5, time.Unix(10, 5000)},
		{"big endian nano", binary.BigEndian, true, 5, time.Unix(10, 5)},
		{"little endian nano", binary.LittleEndian, true, 5, time.Unix(10, 5)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			frames, err := readAll(t, classicPcap(tt.order, tt.nanos, 113|0x10000000, 10, tt.frac, []byte{1, 2, 3}, 9))
			if err != nil {
				t.Fatal(err)
			}
			want := []nhrpcap.Frame{{Number: 1, Timestamp: tt.want.UTC(), LinkType: nhrpcap.LinkTypeLinuxSLL, Data: []byte{1, 2, 3}, OriginalLength: 9}}
			if diff := cmp.Diff(want, frames); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if frames[0].OriginalLength <= len(frames[0].Data) {
				t.Error("OriginalLength does not exceed the captured length of a frame cut at the snap length")
			}
		})
	}
}

// pcapng block builders (little or big endian).
type ng struct {
	o binary.AppendByteOrder
	b []byte
}

func (n *ng) block(typ uint32, body []byte) {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	total := uint32(12 + len(body))
	n.b = n.o.AppendUint32(n.b, typ)
	n.b = n.o.AppendUint32(n.b, total)
	n.b = append(n.b, body...)
	n.b = n.o.AppendUint32(n.b, total)
}

func (n *ng) shb() {
	body := n.o.AppendUint32(nil, 0x1a2b3c4d)
	body = n.o.AppendUint16(body, 1)
	body = n.o.AppendUint16(body, 0)
	body = n.o.AppendUint64(body, ^uint64(0))
	n.block(0x0a0d0d0a, body)
}

func (n *ng) idb(lt uint16, tsresol byte) {
	body := n.o.AppendUint16(nil, lt)
	body = n.o.AppendUint16(body, 0)
	body = n.o.AppendUint32(body, 0)
	if tsresol != 0 {
		body = n.o.AppendUint16(body, 9)
		body = n.o.AppendUint16(body, 1)
		body = append(body, tsresol, 0, 0, 0)
		body = n.o.AppendUint32(body, 0) // opt_endofopt
	}
	n.block(1, body)
}

func (n *ng) epb(iface uint32, ts uint64, data []byte, orig uint32) {
	body := n.o.AppendUint32(nil, iface)
	body = n.o.AppendUint32(body, uint32(ts>>32))
	body = n.o.AppendUint32(body, uint32(ts))
	body = n.o.AppendUint32(body, uint32(len(data)))
	body = n.o.AppendUint32(body, orig)
	n.block(6, append(body, data...))
}

func TestPcapng(t *testing.T) {
	le := &ng{o: binary.LittleEndian}
	le.shb()
	le.idb(1, 0)                          // Ethernet, microseconds
	le.idb(101, 9)                        // raw, nanoseconds
	le.block(4, []byte{0, 0, 0, 0})       // name resolution block: skipped
	le.epb(0, 1_500_000, []byte{0xaa}, 1) // 1.5 s
	le.epb(1, 2_000_000_001, []byte{0x45, 0}, 2)
	le.block(3, append(binary.LittleEndian.AppendUint32(nil, 3), 1, 2, 3)) // simple packet block, iface 0
	// A second section, big endian, with its own interface list.
	be := &ng{o: binary.BigEndian}
	be.shb()
	be.idb(276, 0x80|10) // SLL2, 2^-10 s
	be.epb(0, 1024*3+512, []byte{9, 9}, 4)
	frames, err := readAll(t, append(le.b, be.b...))
	if err != nil {
		t.Fatal(err)
	}
	want := []nhrpcap.Frame{
		{Number: 1, Timestamp: time.Unix(1, 500_000_000).UTC(), LinkType: 1, Data: []byte{0xaa}, OriginalLength: 1},
		{Number: 2, Timestamp: time.Unix(2, 1).UTC(), LinkType: 101, Data: []byte{0x45, 0}, OriginalLength: 2},
		{Number: 3, LinkType: 1, Data: []byte{1, 2, 3}, OriginalLength: 3},
		{Number: 4, Timestamp: time.Unix(3, 500_000_000).UTC(), LinkType: 276, Data: []byte{9, 9}, OriginalLength: 4},
	}
	if diff := cmp.Diff(want, frames); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReaderErrors(t *testing.T) {
	badIface := &ng{o: binary.LittleEndian}
	badIface.shb()
	badIface.epb(0, 0, []byte{1}, 1)
	badLen := &ng{o: binary.LittleEndian}
	badLen.shb()
	badLen.b = binary.LittleEndian.AppendUint32(badLen.b, 1)
	badLen.b = binary.LittleEndian.AppendUint32(badLen.b, 13)
	trailer := &ng{o: binary.LittleEndian}
	trailer.shb()
	trailer.idb(1, 0)
	trailer.b[len(trailer.b)-1] = 0xff
	huge := classicPcap(binary.LittleEndian, false, 1, 0, 0, nil, 0)
	binary.LittleEndian.PutUint32(huge[24+8:], 1<<30)
	overrun := &ng{o: binary.LittleEndian}
	overrun.shb()
	overrun.idb(1, 0)
	overrun.epb(0, 0, []byte{1, 2, 3, 4}, 4)
	binary.LittleEndian.PutUint32(overrun.b[len(overrun.b)-16:], 99) // caplen 99 in an 8-octet data area
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty file", nil, "reading file magic"},
		{"unknown magic", []byte("GIF89a.............................."), "unknown file magic"},
		{"truncated pcap header", classicPcap(binary.BigEndian, false, 1, 0, 0, nil, 0)[:10], "pcap file header truncated"},
		{"truncated record", classicPcap(binary.BigEndian, false, 1, 0, 0, []byte{1, 2, 3, 4}, 4)[:42], "pcap record data truncated: 2 of 4 octets"},
		{"huge record", huge, "exceeds 262144"},
		{"packet before interface", badIface.b, "undeclared interface 0"},
		{"block length not a multiple of 4", badLen.b, "length 13"},
		{"trailing length mismatch", trailer.b, "trailing length"},
		{"captured length overruns block", overrun.b, "overruns its block"},
		{"truncated section header", []byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0}, "truncated"},
		{"bad byte-order magic", []byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4}, "byte-order magic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAll(t, tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "nhrpcap: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// FuzzReader: any file gives frames or an error, never a panic, and the
// reader makes progress (no endless loop on a zero-length block).
func FuzzReader(f *testing.F) {
	// A classic pcap with one Ethernet/IPv4/GRE/NHRP-looking frame.
	fr, err := nhrpcaptest.EthernetGRE(src4, dst4, 42, true, payload)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(classicPcap(binary.LittleEndian, false, 1, 1, 2, fr, uint32(len(fr))))
	// A two-section pcapng, little and big endian.
	le := &ng{o: binary.LittleEndian}
	le.shb()
	le.idb(1, 9)
	le.epb(0, 5, fr, uint32(len(fr)))
	be := &ng{o: binary.BigEndian}
	be.shb()
	be.idb(101, 0)
	be.epb(0, 5, fr[14:], uint32(len(fr)-14))
	f.Add(append(le.b, be.b...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := nhrpcap.NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for i := 0; ; i++ {
			if i > len(b) {
				t.Fatalf("more frames (%d) than input octets (%d)", i, len(b))
			}
			fr, err := r.Next()
			if err != nil {
				return
			}
			nhrpcap.Extract(fr)
		}
	})
}
