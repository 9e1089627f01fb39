package lab

import (
	"context"
	"fmt"
	"sort"
)

// FRR is a set of FRR daemons running for one node, in its namespace, with
// FRR's pathspace (-N) set to the node's namespace name: configuration in
// /etc/frr/NS/, sockets and pid files in /var/run/frr/NS/.
type FRR struct {
	n     *Node
	Procs map[string]*Proc
}

// frrDaemonArgs renders one daemon's command line.
func frrDaemonArgs(daemon, ns string) string {
	return fmt.Sprintf("/usr/lib/frr/%[1]s -N %[2]s -f /etc/frr/%[2]s/%[1]s.conf -i /var/run/frr/%[2]s/%[1]s.pid -u frr -g frr --log stdout", daemon, ns)
}

// StartFRR writes confs (daemon name -> configuration, e.g. "zebra",
// "nhrpd", "bgpd") and starts the daemons, zebra first, each in the
// foreground under Start, so their logs land in DIR/nodes/NODE/DAEMON.log.
// It waits until every daemon's vty socket exists.
func (n *Node) StartFRR(ctx context.Context, confs map[string]string) (*FRR, error) {
	ns := n.NS
	if ns == "" {
		return nil, fmt.Errorf("lab: FRR needs a node namespace")
	}
	daemons := make([]string, 0, len(confs))
	for d := range confs {
		daemons = append(daemons, d)
	}
	sort.Slice(daemons, func(i, j int) bool {
		// zebra first: the others connect to it.
		if (daemons[i] == "zebra") != (daemons[j] == "zebra") {
			return daemons[i] == "zebra"
		}
		return daemons[i] < daemons[j]
	})
	if _, err := n.l.Run(ctx, fmt.Sprintf("mkdir -p /etc/frr/%[1]s /var/run/frr/%[1]s && chown frr:frr /etc/frr/%[1]s /var/run/frr/%[1]s && touch /etc/frr/%[1]s/vtysh.conf", ns)); err != nil {
		return nil, err
	}
	f := &FRR{n: n, Procs: map[string]*Proc{}}
	for _, d := range daemons {
		path := fmt.Sprintf("/etc/frr/%s/%s.conf", ns, d)
		if err := n.l.WriteFile(ctx, path, []byte(confs[d]), 0o644); err != nil {
			return nil, err
		}
		if _, err := n.l.Run(ctx, "chown frr:frr "+path); err != nil {
			return nil, err
		}
		p, err := n.Start(ctx, d, frrDaemonArgs(d, ns))
		if err != nil {
			return nil, err
		}
		f.Procs[d] = p
		if err := waitReady(ctx, n.l, p, fmt.Sprintf("test -S /var/run/frr/%s/%s.vty", ns, d)); err != nil {
			return nil, fmt.Errorf("lab: FRR %s on %s: %w", d, n.Name, err)
		}
	}
	return f, nil
}

// Vtysh runs vtysh -N NS with the given -c commands.
func (f *FRR) Vtysh(ctx context.Context, commands ...string) (Result, error) {
	cmd := "vtysh -N " + f.n.NS
	for _, c := range commands {
		cmd += " -c " + shellQuote(c)
	}
	return f.n.Run(ctx, cmd)
}
