package lab

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pcapBytes builds an Ethernet pcap with one IPv4 packet per proto.
func pcapBytes(packets ...[]byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b2c3d4)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535)
	le.PutUint32(hdr[20:], 1)
	b.Write(hdr)
	for _, p := range packets {
		rec := make([]byte, 16)
		le.PutUint32(rec[8:], uint32(len(p)))
		le.PutUint32(rec[12:], uint32(len(p)))
		b.Write(rec)
		b.Write(p)
	}
	return b.Bytes()
}

func ipv4Frame(proto byte, payload []byte) []byte {
	f := make([]byte, 14+20)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	f[14] = 0x45
	f[14+9] = proto
	return append(f, payload...)
}

func udp4500(first uint32) []byte {
	u := make([]byte, 12)
	binary.BigEndian.PutUint16(u[0:], 4500)
	binary.BigEndian.PutUint16(u[2:], 4500)
	binary.BigEndian.PutUint32(u[8:], first)
	return u
}

func TestCountPcap(t *testing.T) {
	arp := make([]byte, 42)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	data := pcapBytes(
		ipv4Frame(ProtoESP, make([]byte, 8)),
		ipv4Frame(ProtoESP, make([]byte, 8)),
		ipv4Frame(ProtoGRE, make([]byte, 8)),
		ipv4Frame(ProtoUDP, udp4500(0x1234)),
		ipv4Frame(ProtoUDP, udp4500(0)), // IKE on 4500: not ESP
		arp,
	)
	got, err := countPcap(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := PacketCounts{Total: 6, ByProto: map[uint8]int{ProtoESP: 2, ProtoGRE: 1, ProtoUDP: 2}, NATT: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("countPcap (-want +got):\n%s", diff)
	}
	// Truncated final record: counts what is complete.
	if got, err := countPcap(bytes.NewReader(data[:len(data)-5])); err != nil || got.Total != 5 {
		t.Errorf("truncated: %+v, %v", got, err)
	}
	if _, err := countPcap(bytes.NewReader([]byte("not a pcap file at all, no"))); err == nil {
		t.Error("countPcap(garbage) = nil error")
	}
}

func TestCheckESPOnly(t *testing.T) {
	tests := []struct {
		name    string
		c       PacketCounts
		wantErr bool
	}{
		{"esp only", PacketCounts{ByProto: map[uint8]int{ProtoESP: 3}}, false},
		{"natt", PacketCounts{ByProto: map[uint8]int{ProtoUDP: 3}, NATT: 3}, false},
		{"cleartext gre", PacketCounts{ByProto: map[uint8]int{ProtoESP: 3, ProtoGRE: 1}}, true},
		{"nothing", PacketCounts{ByProto: map[uint8]int{}}, true},
	}
	for _, tc := range tests {
		if err := CheckESPOnly(tc.c, 2); (err != nil) != tc.wantErr {
			t.Errorf("%s: CheckESPOnly = %v, wantErr %v", tc.name, err, tc.wantErr)
		}
	}
}
