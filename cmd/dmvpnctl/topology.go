package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// topology is what the picture shows, as read from the daemon.
type topology struct {
	dmvpn     api.DMVPN
	shortcuts []api.Shortcut
	sas       []api.SA // nil with IPsec off
}

// newTopology is `show topology`: this node, its hubs and peers, drawn.
func newTopology(o *opts) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "topology",
		Short: "Draw this node, its NHSs, peers, shortcuts and SAs (Graphviz DOT, or SVG through dot)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "dot" && format != "svg" {
				return fmt.Errorf("--format %q: want dot or svg", format)
			}
			ctx, cancel := o.ctx(cmd)
			defer cancel()
			var tp topology
			var err error
			if tp.dmvpn, err = o.api().DMVPN(ctx); err != nil {
				return err
			}
			if tp.shortcuts, err = o.api().Shortcuts(ctx); err != nil {
				return err
			}
			tp.sas, err = o.api().IPsec(ctx)
			var ae *api.Error
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				tp.sas, err = nil, nil
			}
			if err != nil {
				return err
			}
			var dot bytes.Buffer
			if err := renderDOT(&dot, tp); err != nil {
				return err
			}
			if format == "dot" {
				_, err := o.out.Write(dot.Bytes())
				return err
			}
			bin, err := exec.LookPath("dot")
			if err != nil {
				return errors.New("--format svg needs Graphviz's dot (apt-get install graphviz); --format dot prints the source")
			}
			run := exec.CommandContext(cmd.Context(), bin, "-Tsvg")
			run.Stdin, run.Stdout, run.Stderr = &dot, o.out, o.errOut
			return run.Run()
		},
	}
	c.Flags().StringVar(&format, "format", "dot", "dot or svg")
	return c
}

// renderDOT draws the topology: hubs as boxes, this node double-circled,
// registrations as edges to the NHSs (solid while responding), peers with
// their state, shortcut prefixes as edge labels, and SA state as colour
// (green established, red otherwise, grey without IPsec).
func renderDOT(w io.Writer, tp topology) error {
	d := tp.dmvpn
	var b strings.Builder
	b.WriteString("digraph dmvpn {\n\trankdir=LR;\n\tnode [fontname=\"monospace\"];\n")
	self := d.Address.Addr()
	fmt.Fprintf(&b, "\t%s [label=%s, shape=doublecircle];\n", dq(id(self, d.NBMA)), dq(d.Interface, d.Role+" "+addr(self), "NBMA "+addr(d.NBMA)))
	sa := map[netip.Addr]api.SAState{}
	for _, s := range tp.sas {
		sa[s.PeerNBMA] = s.State
	}
	color := func(nbma netip.Addr) string {
		if tp.sas == nil {
			return "grey40"
		}
		if sa[nbma] == api.SAEstablished {
			return "darkgreen"
		}
		return "red"
	}
	nhs := map[netip.Addr]bool{}
	for _, n := range d.NHS {
		nhs[n.NBMA] = true
		style := "dashed"
		if n.State == api.NHSResponding {
			style = "solid"
		}
		fmt.Fprintf(&b, "\t%s [label=%s, shape=box];\n", dq(id(n.Protocol, n.NBMA)), dq("NHS "+addr(n.Protocol), "NBMA "+addr(n.NBMA)))
		fmt.Fprintf(&b, "\t%s -> %s [label=%s, style=%s, color=%s];\n", dq(id(self, d.NBMA)), dq(id(n.Protocol, n.NBMA)),
			dq("registration "+string(n.State)), style, color(n.NBMA))
	}
	via := map[netip.Addr][]string{}
	for _, s := range tp.shortcuts {
		via[s.Via] = append(via[s.Via], s.Prefix.String())
	}
	peers := slices.Clone(d.Peers)
	slices.SortFunc(peers, func(a, b api.Peer) int { return a.Tunnel.Compare(b.Tunnel) })
	for _, p := range peers {
		if nhs[p.NBMA] {
			continue
		}
		label := []string{addr(p.Tunnel), "NBMA " + addr(p.NBMA), string(p.State)}
		if p.ObservedNBMA.IsValid() && p.ObservedNBMA != p.NBMA {
			label = append(label, "NAT "+p.ObservedNBMA.String())
		}
		fmt.Fprintf(&b, "\t%s [label=%s, shape=ellipse];\n", dq(id(p.Tunnel, p.NBMA)), dq(label...))
		edge := "registered"
		if d.Role != "hub" {
			edge = "resolved"
		}
		style := "dashed"
		if scs := via[p.Tunnel]; len(scs) > 0 {
			slices.Sort(scs)
			edge, style = "shortcut "+strings.Join(scs, ","), "bold"
		} else if p.State == api.PeerUp {
			style = "solid"
		}
		fmt.Fprintf(&b, "\t%s -> %s [label=%s, style=%s, color=%s];\n", dq(id(self, d.NBMA)), dq(id(p.Tunnel, p.NBMA)), dq(edge), style, color(p.NBMA))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// id names a node by its tunnel address, or its NBMA address while the
// tunnel address is unknown.
func id(tunnel, nbma netip.Addr) string {
	if tunnel.IsValid() {
		return tunnel.String()
	}
	return "nbma " + nbma.String()
}

// dq quotes DOT string lines, joined by DOT's line break.
func dq(lines ...string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	for i, l := range lines {
		lines[i] = r.Replace(l)
	}
	return `"` + strings.Join(lines, `\n`) + `"`
}
