// Command qosflow sends paced UDP flows between lab namespaces and
// measures what arrives, for the per-tunnel QoS scenario (e2e
// TestPerTunnelQoS). One process does both ends: run in the lab's root
// namespace, it opens each flow's receiving socket in the namespace named
// by "to" and its sending socket in the one named by "from" (a socket
// keeps the namespace it was created in), so no start-up race between a
// sender and its receiver exists.
//
//	qosflow -for 4s -drain 1s \
//	  -flow name=voice,from=hub,to=s1,dst=10.0.0.2:5000,dscp=46,size=200,pps=50 \
//	  -flow name=bulk,from=hub,to=s1,dst=10.0.0.2:5001,size=1400,pps=1786
//
// size is the IP packet's size (UDP payload plus 28 bytes), dscp the inner
// DSCP (IP_TOS = dscp << 2). Every flow sends pps packets a second for
// -for, paced by a 10 ms tick (or one packet per tick below 100/s), each
// carrying a magic, its sequence number and its send time. A sender that
// falls behind (its thread not scheduled) does not catch up in a burst: it
// skips what it owes beyond one tick's share, as a phone's packetiser
// would (counted as skipped, not sent). The receivers
// keep reading for -drain after the last send (queues empty), then one
// JSON summary (result) goes to stdout. Latency is arrival minus send
// time: both ends read the same kernel's clock.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "qosflow:", err)
		os.Exit(1)
	}
}

// flowSpec is one -flow.
type flowSpec struct {
	Name     string
	From, To string // network namespace names ("" : this one)
	Dst      netip.AddrPort
	DSCP     uint8
	Size     int // IP packet size
	PPS      int
}

// flowResult is one flow's summary.
type flowResult struct {
	Name       string `json:"name"`
	Sent       int    `json:"sent"`
	Skipped    int    `json:"skipped"` // behind schedule, never sent
	SendErrors int    `json:"send_errors"`
	Received   int    `json:"received"` // distinct sequence numbers
	Duplicates int    `json:"duplicates"`
	Foreign    int    `json:"foreign"` // datagrams without the flow's magic
	Bytes      int64  `json:"bytes"`   // IP bytes of the distinct packets
	// RxBitsPerSec is Bytes over the arrival window (first to last).
	RxBitsPerSec float64 `json:"rx_bits_per_sec"`
	// Latency percentiles of the received packets, in milliseconds.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// result is the JSON summary.
type result struct {
	DurationMS int64        `json:"duration_ms"`
	Flows      []flowResult `json:"flows"`
}

type flowList []flowSpec

func (f *flowList) String() string { return fmt.Sprint(len(*f)) }

func (f *flowList) Set(s string) error {
	fs, err := parseFlow(s)
	if err != nil {
		return err
	}
	*f = append(*f, fs)
	return nil
}

// parseFlow parses "name=...,from=NS,to=NS,dst=A:P,dscp=N,size=N,pps=N".
func parseFlow(s string) (flowSpec, error) {
	f := flowSpec{Size: 200}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return f, fmt.Errorf("flow %q: %q is not key=value", s, kv)
		}
		var err error
		num := func(lo, hi int) int {
			n, e := strconv.Atoi(v)
			if e != nil || n < lo || n > hi {
				err = fmt.Errorf("flow %q: %s=%q not in %d..%d", s, k, v, lo, hi)
			}
			return n
		}
		switch k {
		case "name":
			f.Name = v
		case "from":
			f.From = v
		case "to":
			f.To = v
		case "dst":
			f.Dst, err = netip.ParseAddrPort(v)
		case "dscp":
			f.DSCP = uint8(num(0, 63))
		case "size":
			f.Size = num(28+12, 65000)
		case "pps":
			f.PPS = num(1, 100000)
		default:
			err = fmt.Errorf("flow %q: unknown key %q", s, k)
		}
		if err != nil {
			return f, err
		}
	}
	switch {
	case f.Name == "":
		return f, fmt.Errorf("flow %q: no name", s)
	case !f.Dst.IsValid() || !f.Dst.Addr().Is4():
		return f, fmt.Errorf("flow %q: no IPv4 dst", s)
	case f.PPS == 0:
		return f, fmt.Errorf("flow %q: no pps", s)
	}
	return f, nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("qosflow", flag.ContinueOnError)
	var flows flowList
	fs.Var(&flows, "flow", "a flow: name=,from=NS,to=NS,dst=ADDR:PORT,dscp=,size=,pps= (repeatable)")
	dur := fs.Duration("for", 4*time.Second, "how long every flow sends")
	drain := fs.Duration("drain", time.Second, "how long the receivers read after the last send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(flows) == 0 {
		return errors.New("no -flow")
	}
	rx := make([]*receiver, len(flows))
	tx := make([]*net.UDPConn, len(flows))
	for i, f := range flows {
		var err error
		if rx[i], err = listen(f, uint32(i)); err != nil {
			return err
		}
		if tx[i], err = dial(f); err != nil {
			return err
		}
	}
	var rwg sync.WaitGroup
	for _, r := range rx {
		rwg.Add(1)
		go func() { defer rwg.Done(); r.read() }()
	}
	start := time.Now()
	stop := start.Add(*dur)
	res := make([]flowResult, len(flows))
	var swg sync.WaitGroup
	for i, f := range flows {
		swg.Add(1)
		go func() {
			defer swg.Done()
			res[i].Sent, res[i].Skipped, res[i].SendErrors = send(tx[i], f, uint32(i), start, stop)
		}()
	}
	swg.Wait()
	time.Sleep(*drain)
	for _, r := range rx {
		_ = r.c.Close()
	}
	rwg.Wait()
	out := result{DurationMS: dur.Milliseconds()}
	for i, f := range flows {
		out.Flows = append(out.Flows, rx[i].summary(f.Name, res[i]))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// inNS runs fn on a thread in network namespace ns ("": this one). The
// thread is never handed back to the scheduler (the goroutine exits
// locked), so no other goroutine runs in the wrong namespace.
func inNS(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("namespace %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func dial(f flowSpec) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := inNS(f.From, func() error {
		var err error
		c, err = net.ListenUDP("udp4", nil)
		if err != nil {
			return err
		}
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, int(f.DSCP)<<2)
		}); err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		return nil, fmt.Errorf("flow %s: sender in %q: %w", f.Name, f.From, err)
	}
	return c, nil
}

// header: magic (4), flow index (4), sequence (4), send time (8).
const (
	magic   = 0x71f10a5e
	hdrSize = 20
)

// send paces f's packets from start until stop: after each 10 ms tick
// (or 1/pps, whichever is longer) it sends what the rate owes so far, at
// most one tick's share (rounded up); the rest is skipped.
func send(c *net.UDPConn, f flowSpec, idx uint32, start, stop time.Time) (sent, skipped, errs int) {
	tick := 10 * time.Millisecond
	if p := time.Second / time.Duration(f.PPS); p > tick {
		tick = p
	}
	share := int((int64(f.PPS)*int64(tick) + int64(time.Second) - 1) / int64(time.Second))
	payload := make([]byte, max(f.Size-28, hdrSize))
	t := time.NewTicker(tick)
	defer t.Stop()
	for now := time.Now(); now.Before(stop); now = <-t.C {
		owed := int(int64(f.PPS)*int64(now.Sub(start))/int64(time.Second)) + 1 - sent - skipped
		if owed > share {
			skipped += owed - share
			owed = share
		}
		for ; owed > 0; owed-- {
			binary.BigEndian.PutUint32(payload[0:], magic)
			binary.BigEndian.PutUint32(payload[4:], idx)
			binary.BigEndian.PutUint32(payload[8:], uint32(sent))
			binary.BigEndian.PutUint64(payload[12:], uint64(time.Now().UnixNano()))
			if _, err := c.WriteToUDPAddrPort(payload, f.Dst); err != nil {
				errs++ // a full local queue (ENOBUFS) is part of a flood
			}
			sent++
		}
	}
	return sent, skipped, errs
}

// receiver is one flow's receiving socket and what it saw.
type receiver struct {
	c   *net.UDPConn
	idx uint32
	mu  sync.Mutex
	// seen marks received sequence numbers.
	seen        map[uint32]bool
	lat         []time.Duration
	dups, alien int
	bytes       int64
	first, last time.Time
}

func listen(f flowSpec, idx uint32) (*receiver, error) {
	r := &receiver{idx: idx, seen: map[uint32]bool{}}
	err := inNS(f.To, func() error {
		var err error
		r.c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(f.Dst))
		if err != nil {
			return err
		}
		return r.c.SetReadBuffer(4 << 20)
	})
	if err != nil {
		return nil, fmt.Errorf("flow %s: receiver in %q on %s: %w", f.Name, f.To, f.Dst, err)
	}
	return r, nil
}

func (r *receiver) read() {
	b := make([]byte, 65536)
	for {
		n, err := r.c.Read(b)
		if err != nil {
			return
		}
		now := time.Now()
		r.mu.Lock()
		switch {
		case n < hdrSize || binary.BigEndian.Uint32(b) != magic || binary.BigEndian.Uint32(b[4:]) != r.idx:
			r.alien++
		case r.seen[binary.BigEndian.Uint32(b[8:])]:
			r.dups++
		default:
			r.seen[binary.BigEndian.Uint32(b[8:])] = true
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(b[12:])))
			r.lat = append(r.lat, now.Sub(sent))
			r.bytes += int64(n + 28)
			if r.first.IsZero() {
				r.first = now
			}
			r.last = now
		}
		r.mu.Unlock()
	}
}

func (r *receiver) summary(name string, sent flowResult) flowResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := sent
	out.Name, out.Received, out.Duplicates, out.Foreign, out.Bytes = name, len(r.lat), r.dups, r.alien, r.bytes
	if w := r.last.Sub(r.first); w > 0 {
		out.RxBitsPerSec = float64(r.bytes*8) / w.Seconds()
	}
	if len(r.lat) > 0 {
		lat := slices.Clone(r.lat)
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		out.P50MS, out.P99MS, out.MaxMS = ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1])
	}
	return out
}
