package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// IP protocol numbers the checks look for.
const (
	ProtoGRE = 47
	ProtoESP = 50
	ProtoUDP = 17
)

// PacketCounts summarises the IPv4 packets of a capture.
type PacketCounts struct {
	Total int
	// ByProto counts IPv4 packets by protocol number.
	ByProto map[uint8]int
	// NATT counts UDP/4500 packets carrying ESP (non-zero SPI marker).
	NATT int
}

// ReadPcapCounts reads a classic pcap file (Ethernet or Linux cooked
// link type) and counts its IPv4 packets by protocol.
func ReadPcapCounts(path string) (PacketCounts, error) {
	f, err := os.Open(path)
	if err != nil {
		return PacketCounts{}, fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	return countPcap(f)
}

func countPcap(r io.Reader) (PacketCounts, error) {
	c := PacketCounts{ByProto: map[uint8]int{}}
	var gh [24]byte
	if _, err := io.ReadFull(r, gh[:]); err != nil {
		return c, fmt.Errorf("lab: pcap header: %w", err)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(gh[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return c, errors.New("lab: not a pcap file")
	}
	link := bo.Uint32(gh[20:24])
	var l2 int
	switch link {
	case 1: // Ethernet
		l2 = 14
	case 113: // Linux cooked v1
		l2 = 16
	default:
		return c, fmt.Errorf("lab: unsupported pcap link type %d", link)
	}
	var ph [16]byte
	buf := make([]byte, 0, 65536)
	for {
		if _, err := io.ReadFull(r, ph[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return c, nil
			}
			// A capture cut mid-record (tcpdump killed) still counts what it has.
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return c, nil
			}
			return c, fmt.Errorf("lab: pcap record: %w", err)
		}
		incl := bo.Uint32(ph[8:12])
		if incl > 1<<18 {
			return c, fmt.Errorf("lab: pcap record of %d bytes", incl)
		}
		buf = buf[:incl]
		if _, err := io.ReadFull(r, buf); err != nil {
			return c, nil
		}
		c.Total++
		if int(incl) < l2+20 {
			continue
		}
		etype := binary.BigEndian.Uint16(buf[l2-2 : l2])
		ip := buf[l2:]
		if etype != 0x0800 || ip[0]>>4 != 4 {
			continue
		}
		proto := ip[9]
		c.ByProto[proto]++
		ihl := int(ip[0]&0x0f) * 4
		if proto == ProtoUDP && len(ip) >= ihl+12 {
			udp := ip[ihl:]
			dport := binary.BigEndian.Uint16(udp[2:4])
			sport := binary.BigEndian.Uint16(udp[0:2])
			// NAT-T ESP: port 4500 with a non-zero first word (zero marks IKE).
			if (dport == 4500 || sport == 4500) && binary.BigEndian.Uint32(udp[8:12]) != 0 {
				c.NATT++
			}
		}
	}
}

// CheckESPOnly returns nil when the capture holds at least min ESP packets
// (plain or UDP-encapsulated) and no cleartext GRE, and an error saying what
// it saw otherwise.
func CheckESPOnly(c PacketCounts, min int) error {
	esp := c.ByProto[ProtoESP] + c.NATT
	gre := c.ByProto[ProtoGRE]
	switch {
	case gre > 0:
		return fmt.Errorf("lab: %d cleartext GRE packets on the underlay (ESP %d, total %d)", gre, esp, c.Total)
	case esp < min:
		return fmt.Errorf("lab: %d ESP packets on the underlay, want at least %d (total %d)", esp, min, c.Total)
	}
	return nil
}
