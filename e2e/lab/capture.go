package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Capture is a running tcpdump writing a pcap into the results directory.
type Capture struct {
	proc *Proc
	// Path is the pcap file: the same path on the host and in the guest.
	Path string
}

// Capture starts tcpdump on iface in node's namespace, writing
// DIR/pcap/NAME.pcap, and returns once tcpdump is listening. Underlay bridge
// ports are in the switch namespace: l.Node("inet").Capture(ctx, "s1", "s1-esp").
func (n *Node) Capture(ctx context.Context, iface, name string) (*Capture, error) {
	path := n.l.dir + "/pcap/" + name + ".pcap"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("lab: %w", err)
	}
	p, err := n.Start(ctx, "tcpdump-"+name, fmt.Sprintf("tcpdump -n -U --immediate-mode -Z root -s 256 -i %s -w %s", shellQuote(iface), shellQuote(path)))
	if err != nil {
		return nil, err
	}
	ready := fmt.Sprintf(`while IFS= read -r line; do case $line in *"listening on"*) exit 0;; esac; done < %s; false`, shellQuote(p.Log))
	if err := waitReady(ctx, n.l, p, "("+ready+")"); err != nil {
		return nil, fmt.Errorf("lab: capture on %s %s: %w", n.Name, iface, err)
	}
	return &Capture{proc: p, Path: path}, nil
}

// Stop ends the capture (tcpdump flushes on SIGTERM) and returns its counts.
func (c *Capture) Stop(ctx context.Context) (PacketCounts, error) {
	if err := c.proc.Stop(ctx); err != nil {
		return PacketCounts{}, err
	}
	return ReadPcapCounts(c.Path)
}
