package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Build creates topo where the lab runs (one script, bounded by the step
// timeout). In native mode namespace names get a per-lab prefix. A lab has
// at most one topology.
func (l *Lab) Build(topo Topology) {
	l.t.Helper()
	if err := l.build(topo); err != nil {
		l.t.Fatal(err)
	}
}

func (l *Lab) build(topo Topology) error {
	l.mu.Lock()
	if l.topo != nil {
		l.mu.Unlock()
		return fmt.Errorf("lab: topology already built")
	}
	l.mu.Unlock()
	topo = topo.withDefaults()
	if l.Mode() == ModeNative && topo.Prefix == "" {
		topo.Prefix = fmt.Sprintf("dl%d-", time.Now().UnixNano()%100000)
	}
	plan, err := topo.Plan()
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.topo = &topo // recorded before running, so cleanup removes partial builds
	l.mu.Unlock()
	start := time.Now()
	ctx, cancel := l.stepContext()
	defer cancel()
	script := "set -ex\n" + strings.Join(plan, "\n") + "\n"
	// The results directory is the same path on the host: write it here.
	if err := os.WriteFile(filepath.Join(l.dir, "plan.sh"), []byte(script), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if _, err := l.Run(ctx, script); err != nil {
		return fmt.Errorf("lab: build topology: %w", err)
	}
	if err := l.moveHostNICs(ctx, topo); err != nil {
		return err
	}
	l.Timings["topology"] = time.Since(start)
	return nil
}

// Topology returns the built topology (with defaults and prefix applied).
func (l *Lab) Topology() Topology {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.topo == nil {
		return Topology{}.withDefaults()
	}
	return *l.topo
}

// Node is a handle on one namespace of the topology: a node, a NAT router
// or the switch. The zero-named node ("") is the lab's root namespace.
type Node struct {
	l    *Lab
	Name string // as in the Topology
	NS   string // namespace name (Name plus the lab's prefix); "" for root
}

// Node returns the handle of the named namespace; "" is the root namespace.
// It does not check that the name exists, so a node can be addressed
// before Build.
func (l *Lab) Node(name string) *Node {
	if name == "" {
		return &Node{l: l}
	}
	return &Node{l: l, Name: name, NS: l.Topology().NS(name)}
}

// wrap prefixes cmd so that it runs in the node's namespace. A simple
// command is exec'd directly; anything else goes through sh -c (each exec
// costs under emulation).
func (n *Node) wrap(cmd string) string {
	if n.NS == "" {
		return cmd
	}
	if !strings.ContainsAny(cmd, "\n;&|<>()$`\\\"'*?[]#~={}!") {
		return "ip netns exec " + n.NS + " " + cmd
	}
	return "ip netns exec " + n.NS + " sh -c " + shellQuote(cmd)
}

// Exec runs cmd in the node's namespace; see Lab.Exec.
func (n *Node) Exec(ctx context.Context, cmd string) (Result, error) {
	return n.l.Exec(ctx, n.wrap(cmd))
}

// Run runs cmd in the node's namespace; see Lab.Run.
func (n *Node) Run(ctx context.Context, cmd string) (Result, error) {
	return n.l.Run(ctx, n.wrap(cmd))
}

// MustRun runs cmd in the node's namespace; see Lab.MustRun.
func (n *Node) MustRun(cmd string) string {
	n.l.t.Helper()
	return n.l.MustRun(n.wrap(cmd))
}

// logDir is where the node's process logs go (in the results dir).
func (n *Node) logDir() string {
	name := n.Name
	if name == "" {
		name = "root"
	}
	return n.l.dir + "/nodes/" + name
}

// scratchDir is the node's private runtime directory.
func (n *Node) scratchDir() string {
	name := n.Name
	if name == "" {
		name = "root"
	}
	return n.l.scratch + "/" + name
}
