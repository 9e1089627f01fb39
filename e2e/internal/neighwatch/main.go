// Command neighwatch times a tunnel's kernel neighbour table filling up,
// for `make bench-lab` (e2e TestBenchLab). Run in the hub's namespace, it
// subscribes to neighbour events, prints "ready" once subscribed, and
// records when the number of distinct entries on -dev with a link-layer
// address (the NBMA address) inside -prefix reaches each of -n; with
// -exec it runs that command (e.g. `ip -batch FILE`, the kernel floor)
// right after subscribing. It exits when the last count is reached, at
// -timeout, when no new entry came for -idle, or on SIGTERM, printing
// one JSON summary (result) on stdout.
//
// Should the kernel drop events because the socket's buffer overflowed,
// it re-reads the table with a dump and counts the overflow.
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
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "neighwatch:", err)
		os.Exit(1)
	}
}

// result is the JSON summary. Times are Unix nanoseconds (realtime).
type result struct {
	// ReachedNS maps each count asked for to when it was reached.
	ReachedNS map[int]int64 `json:"reached_ns"`
	FirstNS   int64         `json:"first_ns,omitempty"` // first entry seen
	LastNS    int64         `json:"last_ns,omitempty"`  // last new entry seen
	Count     int           `json:"count"`              // entries at exit
	ExecNS    int64         `json:"exec_ns,omitempty"`  // -exec started
	ExecEndNS int64         `json:"exec_end_ns,omitempty"`
	// ExecCPUNS is the -exec command's utime+stime (with its children's:
	// the shell and the command it runs).
	ExecCPUNS int64  `json:"exec_cpu_ns,omitempty"`
	ExecErr   string `json:"exec_error,omitempty"`
	Overflows int    `json:"overflows"`
	TimedOut  bool   `json:"timed_out,omitempty"`
	Idle      bool   `json:"idle,omitempty"` // no new entry for -idle

}

type counts []int

func (c *counts) String() string { return fmt.Sprint([]int(*c)) }

func (c *counts) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("count %q: want a positive integer", f)
		}
		*c = append(*c, n)
	}
	slices.Sort(*c)
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("neighwatch", flag.ContinueOnError)
	dev := fs.String("dev", "gre1", "tunnel device")
	var prefix netip.Prefix
	fs.Func("prefix", "count only tunnel addresses in this prefix (required)", func(s string) (err error) {
		prefix, err = netip.ParsePrefix(s)
		return err
	})
	var ns counts
	fs.Var(&ns, "n", "counts to time, comma separated (required)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	idle := fs.Duration("idle", 0, "give up once entries were seen but none new for this long (0: never)")
	execCmd := fs.String("exec", "", "shell command to run once subscribed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !prefix.IsValid() || len(ns) == 0 {
		return errors.New("-prefix and -n are required")
	}
	ifi, err := net.InterfaceByName(*dev)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()

	w := &watcher{ifindex: ifi.Index, prefix: prefix, want: ns, seen: map[netip.Addr]bool{},
		res: result{ReachedNS: map[int]int64{}}}
	sub, err := subscribe()
	if err != nil {
		return err
	}
	defer func() { sub.stop() }()
	// Entries present before the subscription count too.
	if err := w.resync(); err != nil {
		return err
	}
	fmt.Println("ready")
	execDone := make(chan struct{})
	if *execCmd != "" {
		w.res.ExecNS = time.Now().UnixNano()
		go func() {
			defer close(execDone)
			cpu, err := runExec(*execCmd)
			if err != nil {
				w.execErr = err.Error()
			}
			w.execEnd, w.execCPU = time.Now().UnixNano(), cpu.Nanoseconds()
		}()
	} else {
		close(execDone)
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for !w.finished() && !w.res.TimedOut && !w.res.Idle {
		select {
		case <-tick.C:
			if *idle > 0 && w.res.LastNS != 0 && time.Since(time.Unix(0, w.res.LastNS)) > *idle {
				w.res.Idle = true
			}
		case u, ok := <-sub.updates:
			if ok {
				w.update(u)
				continue
			}
			// The library stops at the first error, after reporting it.
			var err error
			select {
			case err = <-sub.errs:
			default:
			}
			if !errors.Is(err, unix.ENOBUFS) {
				return fmt.Errorf("neighbour subscription ended: %v", err)
			}
			w.res.Overflows++
			sub.stop()
			if sub, err = subscribe(); err != nil {
				return err
			}
			if err := w.resync(); err != nil {
				return err
			}
		case <-ctx.Done():
			w.res.TimedOut = true
		}
	}
	if *execCmd != "" {
		<-execDone
		w.res.ExecEndNS, w.res.ExecCPUNS, w.res.ExecErr = w.execEnd, w.execCPU, w.execErr
	}
	w.res.Count = len(w.seen)
	b, err := json.Marshal(w.res)
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", b)
	return nil
}

// subscription is one neighbour event subscription.
type subscription struct {
	updates chan netlink.NeighUpdate
	errs    chan error
	done    chan struct{}
}

// subscribe subscribes to neighbour events with a 64 MB socket buffer.
func subscribe() (subscription, error) {
	s := subscription{
		updates: make(chan netlink.NeighUpdate, 4096),
		errs:    make(chan error, 1),
		done:    make(chan struct{}),
	}
	err := netlink.NeighSubscribeWithOptions(s.updates, s.done, netlink.NeighSubscribeOptions{
		ReceiveBufferSize:      64 << 20,
		ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			select {
			case s.errs <- err:
			default:
			}
		},
	})
	if err != nil {
		return subscription{}, fmt.Errorf("subscribe: %w", err)
	}
	return s, nil
}

// stop ends the subscription.
func (s subscription) stop() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// runExec runs line with /bin/sh and returns its CPU time: utime+stime
// of the shell and of what it ran and waited for (wait4's rusage).
func runExec(line string) (time.Duration, error) {
	cmd := exec.Command("/bin/sh", "-c", line)
	out, err := cmd.CombinedOutput()
	var cpu time.Duration
	if ps := cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		return cpu, fmt.Errorf("%v: %s", err, out)
	}
	return cpu, nil
}

type watcher struct {
	ifindex int
	prefix  netip.Prefix
	want    []int
	seen    map[netip.Addr]bool
	res     result
	execEnd int64
	execCPU int64
	execErr string
	now     func() int64 // Unix ns; nil: the realtime clock
}

func (w *watcher) clock() int64 {
	if w.now != nil {
		return w.now()
	}
	return time.Now().UnixNano()
}

func (w *watcher) finished() bool { return len(w.seen) >= w.want[len(w.want)-1] }

// counts reports whether n is an entry the bench counts: on the device,
// in the prefix, with an NBMA address, not failed or incomplete.
func (w *watcher) counts(n netlink.Neigh) (netip.Addr, bool) {
	// The library decodes a 4-byte link-layer address (GRE: the NBMA
	// address) into LLIPAddr, others into HardwareAddr.
	if n.LinkIndex != w.ifindex || (len(n.LLIPAddr) == 0 && len(n.HardwareAddr) == 0) {
		return netip.Addr{}, false
	}
	if n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	a = a.Unmap()
	return a, ok && w.prefix.Contains(a)
}

func (w *watcher) update(u netlink.NeighUpdate) {
	a, ok := w.counts(u.Neigh)
	switch {
	case u.Type == unix.RTM_DELNEIGH && ok:
		delete(w.seen, a)
	case u.Type == unix.RTM_NEWNEIGH && ok:
		w.add(a, w.clock())
	case u.Type == unix.RTM_NEWNEIGH:
		// An entry that stopped counting (e.g. it became incomplete).
		if b, _ := netip.AddrFromSlice(u.IP); w.seen[b.Unmap()] {
			delete(w.seen, b.Unmap())
		}
	}
}

func (w *watcher) add(a netip.Addr, now int64) {
	if w.seen[a] {
		return
	}
	w.seen[a] = true
	if w.res.FirstNS == 0 {
		w.res.FirstNS = now
	}
	w.res.LastNS = now
	for _, n := range w.want {
		if _, ok := w.res.ReachedNS[n]; !ok && len(w.seen) >= n {
			w.res.ReachedNS[n] = now
		}
	}
}

// resync re-reads the device's table: after an overflow events were lost.
func (w *watcher) resync() error {
	list, err := netlink.NeighList(w.ifindex, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("neighbour dump: %w", err)
	}
	now := w.clock()
	present := map[netip.Addr]bool{}
	for _, n := range list {
		if a, ok := w.counts(n); ok {
			present[a] = true
		}
	}
	for a := range w.seen {
		if !present[a] {
			delete(w.seen, a)
		}
	}
	for a := range present {
		w.add(a, now)
	}
	return nil
}
