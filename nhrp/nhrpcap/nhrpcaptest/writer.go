// Package nhrpcaptest writes classic pcap files, which tests use to hand
// packets to Wireshark and to the nhrpcap reader.
package nhrpcaptest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
)

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	ipProtoGRE    = 47
)

// Writer writes a classic little-endian, microsecond pcap file.
type Writer struct {
	w        io.Writer
	linkType nhrpcap.LinkType
	started  bool
}

// NewWriter returns a Writer producing frames of the given link type. The
// file header is written with the first frame (or by Flush).
func NewWriter(w io.Writer, lt nhrpcap.LinkType) *Writer { return &Writer{w: w, linkType: lt} }

func (w *Writer) header() error {
	if w.started {
		return nil
	}
	w.started = true
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xA1B2C3D4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 0xFFFF)
	binary.LittleEndian.PutUint32(h[20:], uint32(w.linkType))
	if _, err := w.w.Write(h[:]); err != nil {
		return fmt.Errorf("nhrpcaptest: writing pcap header: %w", err)
	}
	return nil
}

// Flush writes the file header if no frame has been written yet.
func (w *Writer) Flush() error { return w.header() }

// WriteFrame appends one frame.
func (w *Writer) WriteFrame(ts time.Time, data []byte) error {
	if err := w.header(); err != nil {
		return err
	}
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(ts.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(ts.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(data)))
	if _, err := w.w.Write(h[:]); err != nil {
		return fmt.Errorf("nhrpcaptest: writing record header: %w", err)
	}
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("nhrpcaptest: writing record: %w", err)
	}
	return nil
}

// EthernetGRE returns an Ethernet II frame carrying nhrp in GRE (protocol
// type 0x2001, with the key if hasKey) over IPv4 or IPv6 from src to dst,
// with locally administered MAC addresses. The IPv4 header checksum is set.
func EthernetGRE(src, dst netip.Addr, key uint32, hasKey bool, nhrp []byte) ([]byte, error) {
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("nhrpcaptest: outer addresses %v and %v are not of one family", src, dst)
	}
	gre := []byte{0, 0, 0x20, 0x01}
	if hasKey {
		gre[0] = 0x20
		gre = binary.BigEndian.AppendUint32(gre, key)
	}
	payloadLen := len(gre) + len(nhrp)
	b := []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1}
	if src.Is4() {
		if payloadLen+20 > 0xFFFF {
			return nil, fmt.Errorf("nhrpcaptest: %d-octet payload too large for IPv4", payloadLen)
		}
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+payloadLen))
		ip[6] = 0x40 // don't fragment
		ip[8] = 64
		ip[9] = ipProtoGRE
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], Checksum(ip))
		b = append(b, ip...)
	} else {
		if payloadLen > 0xFFFF {
			return nil, fmt.Errorf("nhrpcaptest: %d-octet payload too large for IPv6", payloadLen)
		}
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv6)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(payloadLen))
		ip[6] = ipProtoGRE
		ip[7] = 64
		s, d := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		b = append(b, ip...)
	}
	b = append(b, gre...)
	return append(b, nhrp...), nil
}
