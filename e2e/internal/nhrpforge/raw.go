package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/dmvpnd/dmvpnd/kernel"
	"golang.org/x/sys/unix"
)

// rawGRE sends NHRP in GRE over a raw IPv4 socket with a source address
// of the caller's choosing: an off-path outsider spoofing a protected
// node's NBMA. Nothing about it goes through the tunnel or IPsec.
type rawGRE struct {
	fd  int
	src netip.Addr
	key uint32
}

func newRawGRE(src netip.Addr, key uint32) (*rawGRE, error) {
	if !src.Is4() {
		return nil, fmt.Errorf("spoofed source %v is not IPv4", src)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	return &rawGRE{fd: fd, src: src, key: key}, nil
}

// WriteTo sends b as GRE (key set, protocol NHRP) from the spoofed source
// to nbma.
func (r *rawGRE) WriteTo(b []byte, nbma netip.Addr) (int, error) {
	if !nbma.Is4() {
		return 0, fmt.Errorf("destination %v is not IPv4", nbma)
	}
	pkt := greIPv4(r.src, nbma, r.key, b)
	if err := unix.Sendto(r.fd, pkt, 0, &unix.SockaddrInet4{Addr: nbma.As4()}); err != nil {
		return 0, fmt.Errorf("send spoofed GRE to %v: %w", nbma, err)
	}
	return len(b), nil
}

func (r *rawGRE) Close() error { return unix.Close(r.fd) }

// greIPv4 is an IPv4 header (protocol GRE), a GRE header with the key
// present and protocol NHRP, and payload. The kernel fills in the IP
// checksum and id.
func greIPv4(src, dst netip.Addr, key uint32, payload []byte) []byte {
	b := make([]byte, 20+8+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64
	b[9] = unix.IPPROTO_GRE
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], 0x2000) // K
	binary.BigEndian.PutUint16(b[22:], kernel.EtherTypeNHRP)
	binary.BigEndian.PutUint32(b[24:], key)
	copy(b[28:], payload)
	return b
}
