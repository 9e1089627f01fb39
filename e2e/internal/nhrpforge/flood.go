package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp"
	"golang.org/x/sys/unix"
)

// The flood command is the load generator of `make bench-lab`: it plays N
// spokes, spoke i with NBMA address -nbma+i and tunnel address -proto+i,
// each sending one Registration Request to the hub (-to, -dst-proto) as
// raw GRE from its own NBMA address (one IP_HDRINCL socket sends from all
// of them), at full rate or -rate per second. Replies arrive at the same
// addresses: the namespace it runs in must accept them as local (a local
// route for the range, e.g. `ip route add local 100.64.0.0/16 dev lo`) and
// a raw GRE socket receives a copy of each. A spoke without an answer
// retransmits its request (same request id) after -retry, doubling, at
// most -tries times in all, as a spoke does. It prints one JSON summary (floodResult) on stdout and
// writes the tunnel and NBMA address of every spoke acknowledged with
// success to -acked.

// floodResult is the flood command's summary. Times are Unix nanoseconds
// of the machine's realtime clock, comparable with other processes on it.
type floodResult struct {
	Spokes      int            `json:"spokes"`
	Sent        int            `json:"sent"`        // packets, retransmissions included
	Retransmits int            `json:"retransmits"` // packets beyond each spoke's first
	Success     int            `json:"success"`     // spokes acknowledged with code 0
	Refused     int            `json:"refused"`     // spokes answered with another code
	Codes       map[string]int `json:"codes,omitempty"`
	ErrorInds   int            `json:"error_indications"`
	Lost        int            `json:"lost"`       // transmissions beyond the replies received (Sent - Replies), after a drain
	Unanswered  int            `json:"unanswered"` // spokes never answered at all
	Replies     int            `json:"replies"`    // registration replies received
	Unmatched   int            `json:"unmatched"`  // replies matching no request sent
	StartNS     int64          `json:"start_ns"`
	LastSendNS  int64          `json:"last_send_ns"`
	LastOKNS    int64          `json:"last_success_ns"`
	EndNS       int64          `json:"end_ns"`
	SendErrors  int            `json:"send_errors"` // sendto failures (ENOBUFS), retried like losses
	RxDrops     int64          `json:"rx_drops"`    // answers the raw GRE socket dropped (buffer full)
}

// floodConfig is the flood command's flags.
type floodConfig struct {
	n            int
	firstNBMA    netip.Addr
	firstProto   netip.Addr
	hold         uint
	rate         float64
	poisson      bool
	seed         uint64
	retry        time.Duration
	tries        int
	wait         time.Duration
	quiet        time.Duration
	drain        time.Duration
	timeout      time.Duration
	acked        string
	rcvbuf       int
	to, hubProto netip.Addr
	key          uint32
}

// sendOffsets returns when each of n first transmissions is due, from the
// start, at rate per second: one every 1/rate, or with poisson gaps drawn
// from an exponential distribution of mean 1/rate (seeded: the same seed,
// the same schedule). nil for rate 0 (as fast as the socket takes them).
// Evenly spaced sends are periodic: at 50/s against a 250 Hz kernel tick,
// the hub's work falls on the tick, or between ticks, for seconds at a
// time, and the tick's work is charged to the task it interrupts.
func sendOffsets(n int, rate float64, poisson bool, seed uint64) []time.Duration {
	if rate <= 0 {
		return nil
	}
	out := make([]time.Duration, n)
	r := rand.New(rand.NewPCG(seed, 0))
	at := 0.0 // seconds
	for i := range out {
		if poisson {
			if i > 0 {
				at += r.ExpFloat64() / rate
			}
		} else {
			at = float64(i) / rate
		}
		out[i] = time.Duration(at * float64(time.Second))
	}
	return out
}

// spokeState is one simulated spoke's progress.
type spokeState struct {
	tries    int
	lastSent time.Time
	answered bool
	ok       bool
}

// runFlood runs the generator; args are the command's flags.
func runFlood(g globals, args []string) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	c := floodConfig{to: g.to, hubProto: g.dstProto, key: uint32(g.key)}
	fs.IntVar(&c.n, "n", 1000, "number of spokes")
	addrFlag(fs, &c.firstNBMA, "nbma", "NBMA address of the first spoke (required)")
	addrFlag(fs, &c.firstProto, "proto", "tunnel address of the first spoke (required)")
	fs.UintVar(&c.hold, "hold", 3600, "holding time of the registrations (s)")
	fs.Float64Var(&c.rate, "rate", 0, "first transmissions per second (0: as fast as the socket takes them)")
	fs.BoolVar(&c.poisson, "poisson", false, "with -rate: Poisson arrivals (exponential gaps of mean 1/rate, drawn from -seed) rather than one every 1/rate")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the -poisson gaps: the same seed, the same schedule")
	fs.DurationVar(&c.retry, "retry", time.Second, "first retransmission timeout, doubled for each further one")
	fs.IntVar(&c.tries, "tries", 5, "transmissions per spoke at most (1: no retransmission)")
	fs.DurationVar(&c.wait, "wait", 3*time.Second, "after a spoke's last transmission, how long to wait for its answer")
	fs.DurationVar(&c.quiet, "quiet", time.Second, "at the end, stop receiving once nothing arrived for this long (at most -drain)")
	fs.DurationVar(&c.drain, "drain", 0, "at the end, receive late answers for at most this long (0: -wait); a hub that fell behind answers requests long after the spokes gave up")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up after this long")
	fs.StringVar(&c.acked, "acked", "", "write 'TUNNEL NBMA' of each spoke acknowledged with success to this file")
	fs.IntVar(&c.rcvbuf, "rcvbuf", 32<<20, "receive buffer of the raw GRE socket (bytes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !c.to.Is4() || !c.hubProto.Is4() || !c.firstNBMA.Is4() || !c.firstProto.Is4() {
		return errors.New("flood: -to, -dst-proto, -nbma and -proto (IPv4) are required")
	}
	if c.n < 1 || c.n > 1<<16 || c.tries < 1 || c.hold > 0xffff {
		return errors.New("flood: want 1 <= -n <= 65536, -tries >= 1, -hold <= 65535")
	}
	res, acked, err := flood(c)
	if err != nil {
		return err
	}
	if c.acked != "" {
		if err := c.writeAcked(c.acked, acked); err != nil {
			return err
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", b)
	return err
}

// spokeAddrs returns spoke i's NBMA and tunnel address.
func (c floodConfig) spokeAddrs(i int) (nbma, proto netip.Addr) {
	return addAddr(c.firstNBMA, i), addAddr(c.firstProto, i)
}

// addAddr is the IPv4 address i after a.
func addAddr(a netip.Addr, i int) netip.Addr {
	b := a.As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(i)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func flood(c floodConfig) (floodResult, []int, error) {
	tx, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return floodResult{}, nil, fmt.Errorf("flood: raw socket: %w", err)
	}
	defer unix.Close(tx)
	_ = unix.SetsockoptInt(tx, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	rx, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_GRE)
	if err != nil {
		return floodResult{}, nil, fmt.Errorf("flood: raw GRE socket: %w", err)
	}
	defer unix.Close(rx)
	if err := unix.SetsockoptInt(rx, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, c.rcvbuf); err != nil {
		return floodResult{}, nil, fmt.Errorf("flood: SO_RCVBUFFORCE: %w", err)
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return floodResult{}, nil, fmt.Errorf("flood: SO_RCVTIMEO: %w", err)
	}

	var (
		mu     sync.Mutex
		res    = floodResult{Spokes: c.n, Codes: map[string]int{}}
		spokes = make([]spokeState, c.n)
		done   int
		lastRx time.Time
	)
	idBase := randomID() &^ 0xffffff // room for 16M requests above it
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // receiver
		defer wg.Done()
		buf := make([]byte, 65536)
		for ctx.Err() == nil {
			n, _, err := unix.Recvfrom(rx, buf, 0)
			if err != nil {
				continue // timeout (EAGAIN) or EINTR: check ctx
			}
			now := time.Now()
			payload, ok := parseGREIPv4(buf[:n], c.key)
			if !ok {
				continue
			}
			p, err := nhrp.Parse(payload)
			if err != nil {
				continue
			}
			mu.Lock()
			lastRx = now
			switch p.Type {
			case nhrp.TypeErrorIndication:
				res.ErrorInds++
			case nhrp.TypeRegistrationReply:
				res.Replies++
				k := int64(p.RequestID) - int64(idBase)
				if k < 0 || k >= int64(c.n) {
					res.Unmatched++
					break
				}
				s := &spokes[k]
				if s.answered {
					break // an answer to an earlier transmission came late
				}
				s.answered = true
				done++
				code := nhrp.CIESuccess
				if len(p.CIEs) > 0 {
					code = p.CIEs[0].Code
				}
				if code == nhrp.CIESuccess && len(p.CIEs) > 0 {
					s.ok = true
					res.Success++
					res.LastOKNS = now.UnixNano()
				} else {
					res.Refused++
					res.Codes[code.String()]++
				}
			}
			mu.Unlock()
		}
	}()

	// Sender: first transmissions in order (paced by -rate), then
	// retransmissions of the unanswered as their timers expire.
	start := time.Now()
	res.StartNS = start.UnixNano()
	sendOne := func(i int) {
		nbma, proto := c.spokeAddrs(i)
		mu.Lock()
		// Retransmissions keep the request id, as FRR nhrpd's and
		// dmvpnd's clients do: they are the same request.
		id := idBase + uint32(i)
		s := &spokes[i]
		s.tries++
		s.lastSent = time.Now()
		res.Sent++
		if s.tries > 1 {
			res.Retransmits++
		}
		mu.Unlock()
		p := nhrp.NewRegistrationRequest(nbma, proto, c.hubProto, id, uint16(c.hold), 0, false)
		b, err := p.Marshal()
		if err == nil {
			err = unix.Sendto(tx, greIPv4(nbma, c.to, c.key, b), 0, &unix.SockaddrInet4{Addr: c.to.As4()})
		}
		mu.Lock()
		res.LastSendNS = time.Now().UnixNano()
		if err != nil {
			res.SendErrors++
		}
		mu.Unlock()
	}
	due := sendOffsets(c.n, c.rate, c.poisson, c.seed)
	for i := range c.n {
		if due != nil {
			if d := time.Until(start.Add(due[i])); d > 0 {
				time.Sleep(d)
			}
		}
		sendOne(i)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		mu.Lock()
		finished := done == c.n
		var resend []int
		pending := false
		now := time.Now()
		for i := range spokes {
			s := &spokes[i]
			if s.answered {
				continue
			}
			age := now.Sub(s.lastSent)
			if s.tries < c.tries {
				pending = true
				if age >= c.retry<<(s.tries-1) {
					resend = append(resend, i)
				}
			} else if age < c.wait {
				pending = true
			}
		}
		mu.Unlock()
		if finished || !pending || ctx.Err() != nil {
			break
		}
		for _, i := range resend {
			sendOne(i)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	res.EndNS = time.Now().UnixNano()
	// Drain: answers to retransmitted requests may still be on their
	// way (a hub busy with a burst answers seconds late); a transmission
	// is lost only when no answer comes. Wait until nothing arrived for
	// -quiet, at most -drain (default -wait); once every spoke has its
	// answer, until every transmission has one or nothing arrived for 1 s
	// (the rest are copies of answered requests, which a hub may answer
	// once: see the lost count).
	drain := c.drain
	if drain <= 0 {
		drain = c.wait
	}
	for end := time.Now().Add(drain); ctx.Err() == nil && time.Now().Before(end); {
		mu.Lock()
		silent := time.Since(lastRx)
		quiet := silent >= c.quiet || done == c.n && (res.Replies >= res.Sent || silent >= min(c.quiet, time.Second))
		mu.Unlock()
		if quiet {
			break
		}
		<-tick.C
	}
	cancel()
	wg.Wait()
	if d, err := socketDrops(rx, "/proc/net/raw"); err == nil {
		res.RxDrops = d
	} else {
		fmt.Fprintln(os.Stderr, "nhrpforge: flood:", err)
		res.RxDrops = -1
	}
	var acked []int
	for i, s := range spokes {
		if !s.answered {
			res.Unanswered++
		}
		if s.ok {
			acked = append(acked, i)
		}
	}
	// A reply answers one transmission; which one, the shared request
	// id does not tell: what is lost is what was sent beyond the replies.
	res.Lost = max(res.Sent-res.Replies, 0)
	return res, acked, nil
}

// writeAcked writes "TUNNEL NBMA" per acknowledged spoke.
func (c floodConfig) writeAcked(path string, acked []int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, i := range acked {
		nbma, proto := c.spokeAddrs(i)
		fmt.Fprintf(w, "%s %s\n", proto, nbma)
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// socketDrops returns the drops counter of socket fd from a
// /proc/net/raw-style table (the line with its inode).
func socketDrops(fd int, table string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("fstat: %w", err)
	}
	b, err := os.ReadFile(table)
	if err != nil {
		return 0, err
	}
	return dropsOf(string(b), st.Ino)
}

// dropsOf finds the socket with inode ino in a /proc/net/raw table:
// "sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops".
func dropsOf(table string, ino uint64) (int64, error) {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < 13 || f[9] != strconv.FormatUint(ino, 10) {
			continue
		}
		return strconv.ParseInt(f[12], 10, 64)
	}
	return 0, fmt.Errorf("socket inode %d not in the table", ino)
}

// parseGREIPv4 returns the NHRP payload of an IPv4 GRE packet with key
// (as a raw IPPROTO_GRE socket delivers it: IP header included), or false
// when it is something else.
func parseGREIPv4(b []byte, key uint32) ([]byte, bool) {
	h, ok := nhrp.ParseIPHeader(b)
	if !ok || h.Version != 4 || len(b) < h.Len+4 || h.Protocol != unix.IPPROTO_GRE {
		return nil, false
	}
	g := b[h.Len:]
	flags := binary.BigEndian.Uint16(g)
	if flags&0x0007 != 0 || binary.BigEndian.Uint16(g[2:]) != kernel.EtherTypeNHRP {
		return nil, false // version != 0, or not NHRP
	}
	off := 4
	if flags&0x8000 != 0 { // checksum present
		off += 4
	}
	if flags&0x2000 == 0 || len(g) < off+4 || binary.BigEndian.Uint32(g[off:]) != key {
		return nil, false
	}
	off += 4
	if flags&0x1000 != 0 { // sequence number present
		off += 4
	}
	if len(g) < off {
		return nil, false
	}
	return g[off:], true
}
