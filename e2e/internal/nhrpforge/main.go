// Command nhrpforge sends crafted NHRP packets on a GRE tunnel, for the
// lab's adversarial scenario (e2e TestAdversarial). It is an attack tool
// for tests and is never installed: it plays a spoke that holds the group
// PSK (run on its gre1, what it sends leaves through its own SA) or an
// outsider (run on an unprotected tunnel, what it sends leaves in clear).
//
// It uses the project's own codec (package nhrp) and NHRP socket
// (kernel.ListenNHRP): every packet is well formed, only its claims lie.
//
//	nhrpforge [global flags] COMMAND [flags]
//
// Commands:
//
//	register  Registration Requests: -cie PROTO[,NBMA[,HOLD]] (repeatable),
//	          -range FIRST-LAST (one CIE per address), -unique, -per-packet N
//	resreply  an unsolicited Resolution Reply: -cie, -plen, -id
//	answer    wait for a Resolution Request and answer it, once per -cie
//	traffic   a Traffic Indication for a data packet -data-src -> -data-dst
//	errind    an Error Indication about a made-up registration
//	purge     a Purge Request for -purge ADDR (repeatable)
//	syn       not NHRP: GRE (key -key) carrying a TCP SYN -inner-src ->
//	          -inner-dst:-port (default 179), -count times, from this
//	          node's own address (through its own SA)
//	flood     the bench-lab load generator: Registration Requests from -n
//	          spokes, each as raw GRE from its own NBMA address (flood.go);
//	          prints one JSON summary instead of a line per packet
//
// With -spoof-src the packets leave as raw GRE (key -key) from that outer
// source address instead: an off-path outsider spoofing a protected node.
//
// Every packet sent and received is printed as one JSON line on stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nhrpforge:", err)
		os.Exit(1)
	}
}

// record is one JSON output line.
type record struct {
	Dir    string   `json:"dir"` // "sent", "recv" or "listen" (answer is waiting)
	Type   string   `json:"type"`
	Peer   string   `json:"peer"` // NBMA sent to / received from
	ID     uint32   `json:"id,omitempty"`
	CIEs   int      `json:"cies,omitempty"`
	Codes  []string `json:"codes,omitempty"`
	Error  string   `json:"error,omitempty"` // Error Indication code
	Target string   `json:"target,omitempty"`
	Bytes  int      `json:"bytes"`
}

func describe(dir string, peer netip.Addr, p *nhrp.Packet, n int) record {
	r := record{Dir: dir, Type: p.Type.String(), Peer: peer.String(), CIEs: len(p.CIEs), Bytes: n}
	if p.Type.HasCIEs() {
		r.ID = p.RequestID
		r.Target = p.DstProto.String()
		for _, c := range p.CIEs {
			r.Codes = append(r.Codes, c.Code.String())
		}
	}
	if p.Type == nhrp.TypeErrorIndication {
		r.Error = p.ErrorCode.String()
	}
	return r
}

type globals struct {
	dev                         string
	to                          netip.Addr
	srcNBMA, srcProto, dstProto netip.Addr
	spoof                       netip.Addr
	key                         uint
	count                       int
	gap                         time.Duration
	listen                      time.Duration
}

func addrFlag(fs *flag.FlagSet, p *netip.Addr, name, usage string) {
	fs.Func(name, usage, func(s string) (err error) { *p, err = netip.ParseAddr(s); return err })
}

func run(args []string) error {
	var g globals
	fs := flag.NewFlagSet("nhrpforge", flag.ContinueOnError)
	fs.StringVar(&g.dev, "dev", "gre1", "GRE tunnel to send on")
	addrFlag(fs, &g.to, "to", "NBMA address to send to (required)")
	addrFlag(fs, &g.srcNBMA, "src-nbma", "source NBMA address in the packet (default: the tunnel's local address)")
	addrFlag(fs, &g.srcProto, "src-proto", "source protocol address (required)")
	addrFlag(fs, &g.dstProto, "dst-proto", "destination protocol address (required)")
	addrFlag(fs, &g.spoof, "spoof-src", "send as raw GRE from this outer source address instead of on -dev (an off-path outsider)")
	fs.UintVar(&g.key, "key", 42, "GRE key with -spoof-src and syn")
	fs.IntVar(&g.count, "count", 1, "send every packet this many times")
	fs.DurationVar(&g.gap, "gap", 20*time.Millisecond, "pause between packets")
	fs.DurationVar(&g.listen, "listen", 0, "after sending, print what arrives on the tunnel for this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no command (register, resreply, answer, traffic, errind, purge, syn, flood)")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "syn":
		return runSYN(g, rest)
	case "flood":
		return runFlood(g, rest)
	}
	if g.spoof.IsValid() {
		return runSpoofed(g, cmd, rest)
	}
	ifi, err := net.InterfaceByName(g.dev)
	if err != nil {
		return err
	}
	if !g.srcNBMA.IsValid() {
		if g.srcNBMA, err = localNBMA(g.dev); err != nil {
			return err
		}
	}
	conn, err := kernel.ListenNHRP(kernel.ListenNHRPConfig{Ifindex: ifi.Index})
	if err != nil {
		return err
	}
	defer conn.Close()
	h := header{srcNBMA: g.srcNBMA, srcProto: g.srcProto, dstProto: g.dstProto}
	if cmd == "answer" {
		return runAnswer(conn, g, rest)
	}
	if !g.to.IsValid() || !g.srcProto.IsValid() || !g.dstProto.IsValid() {
		return errors.New("-to, -src-proto and -dst-proto are required")
	}
	if err := sendAll(conn, g, h, cmd, rest); err != nil {
		return err
	}
	if g.listen > 0 {
		return receive(conn, g.listen, func(netip.Addr, *nhrp.Packet) bool { return false })
	}
	return nil
}

// runSpoofed sends the command's packets as raw GRE from g.spoof.
func runSpoofed(g globals, cmd string, rest []string) error {
	if cmd == "answer" || g.listen > 0 {
		return errors.New("-spoof-src sends only: no answer, no -listen")
	}
	if !g.to.IsValid() || !g.srcProto.IsValid() || !g.dstProto.IsValid() {
		return errors.New("-to, -src-proto and -dst-proto are required")
	}
	if !g.srcNBMA.IsValid() {
		g.srcNBMA = g.spoof
	}
	conn, err := newRawGRE(g.spoof, uint32(g.key))
	if err != nil {
		return err
	}
	defer conn.Close()
	return sendAll(conn, g, header{srcNBMA: g.srcNBMA, srcProto: g.srcProto, dstProto: g.dstProto}, cmd, rest)
}

// sendAll builds the command's packets and sends them g.count times.
func sendAll(conn writer, g globals, h header, cmd string, rest []string) error {
	pkts, err := build(cmd, h, rest)
	if err != nil {
		return err
	}
	for i := range g.count {
		for j, p := range pkts {
			if i+j > 0 {
				time.Sleep(g.gap)
			}
			if err := send(conn, p, g.to); err != nil {
				return err
			}
		}
	}
	return nil
}

// writer sends one NHRP packet to an NBMA address.
type writer interface {
	WriteTo(b []byte, nbma netip.Addr) (int, error)
}

// build parses a command's flags and returns its packets.
func build(cmd string, h header, args []string) ([]*nhrp.Packet, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cies cieList
	fs.Var(&cies, "cie", "PROTO[,NBMA[,HOLD]] (repeatable)")
	plen := fs.Uint("plen", nhrp.HostPrefixLength, "CIE prefix length")
	holding := fs.Uint("hold", 300, "holding time of CIEs without one")
	var err error
	switch cmd {
	case "register":
		unique := fs.Bool("unique", false, "set the unique flag")
		perPacket := fs.Int("per-packet", 0, "CIEs per packet (0: all in one)")
		rng := fs.String("range", "", "FIRST-LAST: one CIE per address, claiming -range-nbma")
		var rangeNBMA netip.Addr
		addrFlag(fs, &rangeNBMA, "range-nbma", "client NBMA of the -range CIEs (default: none)")
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		var out []nhrp.CIE
		for _, c := range cies {
			out = append(out, c.cie(uint8(*plen), uint16(*holding)))
		}
		if *rng != "" {
			first, last, ok := strings.Cut(*rng, "-")
			a, err1 := netip.ParseAddr(first)
			b, err2 := netip.ParseAddr(last)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("-range %q: want FIRST-LAST", *rng)
			}
			more, err := rangeCIEs(a, b, rangeNBMA, uint8(*plen), uint16(*holding))
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
		if len(out) == 0 {
			return nil, errors.New("register: no CIE")
		}
		return registrations(h, out, *unique, *perPacket), nil
	case "resreply":
		id := fs.Uint("id", 0, "request id (0: random)")
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rid := uint32(*id)
		if rid == 0 {
			rid = randomID()
		}
		var out []nhrp.CIE
		for _, c := range cies {
			out = append(out, c.cie(uint8(*plen), uint16(*holding)))
		}
		return []*nhrp.Packet{resolutionReply(h, rid, out)}, nil
	case "traffic":
		var src, dst netip.Addr
		addrFlag(fs, &src, "data-src", "source of the data packet the indication quotes")
		addrFlag(fs, &dst, "data-dst", "destination of the data packet the indication quotes")
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if !src.Is4() || !dst.Is4() {
			return nil, errors.New("traffic: -data-src and -data-dst (IPv4) are required")
		}
		return []*nhrp.Packet{trafficIndication(h, src, dst)}, nil
	case "errind":
		code := fs.Uint("code", uint(nhrp.ErrorLoopDetected), "error code")
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		p, err := errorIndication(h, nhrp.ErrorCode(*code))
		if err != nil {
			return nil, err
		}
		return []*nhrp.Packet{p}, nil
	case "purge":
		var addrs addrList
		fs.Var(&addrs, "purge", "address to purge (repeatable)")
		noReply := fs.Bool("no-reply", false, "set the N (no reply) flag")
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, errors.New("purge: no -purge address")
		}
		return []*nhrp.Packet{purgeRequest(h, *noReply, addrs)}, nil
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	return nil, err
}

// runAnswer waits for a Resolution Request and answers it once per -cie,
// back to the NBMA it came from.
func runAnswer(conn *kernel.NHRPConn, g globals, args []string) error {
	fs := flag.NewFlagSet("answer", flag.ContinueOnError)
	var cies cieList
	fs.Var(&cies, "cie", "PROTO[,NBMA[,HOLD]] to answer with (repeatable: one reply each)")
	plen := fs.Uint("plen", nhrp.HostPrefixLength, "CIE prefix length")
	holding := fs.Uint("hold", 300, "holding time of CIEs without one")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for the request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(cies) == 0 {
		return errors.New("answer: no -cie")
	}
	var req *nhrp.Packet
	var from netip.Addr
	if err := emit(record{Dir: "listen", Type: nhrp.TypeResolutionRequest.String()}); err != nil {
		return err
	}
	err := receive(conn, *timeout, func(f netip.Addr, p *nhrp.Packet) bool {
		if p.Type != nhrp.TypeResolutionRequest {
			return false
		}
		req, from = p.Clone(), f
		return true
	})
	if err != nil {
		return err
	}
	if req == nil {
		return fmt.Errorf("answer: no resolution request within %v", *timeout)
	}
	for i, c := range cies {
		if i > 0 {
			time.Sleep(g.gap)
		}
		cie := c.cie(uint8(*plen), uint16(*holding))
		if !cie.ClientNBMA.IsValid() {
			cie.ClientNBMA = g.srcNBMA
		}
		if err := send(conn, answer(req, cie), from); err != nil {
			return err
		}
	}
	return nil
}

func send(conn writer, p *nhrp.Packet, to netip.Addr) error {
	b, err := p.Marshal()
	if err != nil {
		return fmt.Errorf("encode %s: %w", p.Type, err)
	}
	if _, err := conn.WriteTo(b, to); err != nil {
		return err
	}
	return emit(describe("sent", to, p, len(b)))
}

// receive prints every NHRP packet arriving within d until done returns
// true for one.
func receive(conn *kernel.NHRPConn, d time.Duration, done func(netip.Addr, *nhrp.Packet) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil // the deadline closed the socket
			}
			return err
		}
		p, err := nhrp.Parse(buf[:n])
		if err != nil {
			if err := emit(record{Dir: "recv", Type: "malformed: " + err.Error(), Peer: from.String(), Bytes: n}); err != nil {
				return err
			}
			continue
		}
		if err := emit(describe("recv", from, p, n)); err != nil {
			return err
		}
		if done(from, p) {
			return nil
		}
	}
}

func emit(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", b)
	return err
}

// localNBMA is the tunnel's local (outer) address, as `ip tunnel` set it:
// the device address of an mGRE tunnel is its 4-byte local address.
func localNBMA(dev string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(ifi.HardwareAddr) != 4 {
		return netip.Addr{}, fmt.Errorf("%s: device address %x is not an IPv4 NBMA address; pass -src-nbma", dev, []byte(ifi.HardwareAddr))
	}
	return netip.AddrFrom4([4]byte(ifi.HardwareAddr)), nil
}
