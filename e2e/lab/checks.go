package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Ping sends count echo requests from the node to dst (one per 0.2 s,
// waiting at most 1 s for the last reply) and returns nil when at least one
// reply came back, else an error carrying ping's output.
func (n *Node) Ping(ctx context.Context, dst netip.Addr, count int) error {
	res, err := n.Exec(ctx, fmt.Sprintf("ping -n -q -c %d -i 0.2 -W 1 %s", count, dst))
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		return fmt.Errorf("lab: ping %s from %s failed (exit %d): %s", dst, n.Name, res.Exit, res.Stdout)
	}
	return nil
}

// WaitPing retries Ping (1 probe) until it succeeds or ctx ends.
func (n *Node) WaitPing(ctx context.Context, dst netip.Addr) error {
	return WaitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error { return n.Ping(ctx, dst, 1) })
}

// CheckESPOnUnderlay captures on the switch port of node port while
// traffic runs, and returns nil when at least min ESP packets and no
// cleartext GRE crossed it (see CheckESPOnly). name names the pcap file.
func (l *Lab) CheckESPOnUnderlay(ctx context.Context, port, name string, min int, traffic func(context.Context) error) error {
	sw := l.Node(l.Topology().Switch)
	c, err := sw.Capture(ctx, port, name)
	if err != nil {
		return err
	}
	terr := traffic(ctx)
	counts, err := c.Stop(ctx)
	if err != nil {
		return err
	}
	if err := CheckESPOnly(counts, min); err != nil {
		return fmt.Errorf("%w (pcap %s)", err, c.Path)
	}
	if terr != nil {
		return fmt.Errorf("lab: traffic during capture: %w", terr)
	}
	return nil
}
