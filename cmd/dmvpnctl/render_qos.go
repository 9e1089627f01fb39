package main

import (
	"context"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
)

// newShowQoS is "show qos [PEER]": the per-tunnel QoS shapers, every one
// or the one toward a peer's tunnel or NBMA address.
func newShowQoS(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:   "qos [PEER]",
		Short: "Per-tunnel QoS: each peer's shaper and classes with their counters",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a netip.Addr
			if len(args) == 1 {
				var err error
				if a, err = parseAddr(args[0]); err != nil {
					return err
				}
			}
			ctx, cancel := o.ctx(cmd)
			defer cancel()
			return showQoS(ctx, o, a)
		},
	}
}

func showQoS(ctx context.Context, o *opts, a netip.Addr) error {
	peers, err := o.api().QoS(ctx, a)
	if err != nil {
		return err
	}
	return o.emit(peers, func() error { return renderQoS(o.out, peers) })
}

// renderQoS prints one block per peer: the peer, then a row for its
// shaper and one per class. Rates are tc's units; a priority class's rate
// is its policed maximum.
func renderQoS(w io.Writer, peers []api.QoSPeer) error {
	if len(peers) == 0 {
		_, err := io.WriteString(w, "No per-tunnel QoS installed\n")
		return err
	}
	var b strings.Builder
	for i, p := range peers {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("Peer " + addr(p.Tunnel) + ", NBMA " + addr(p.NBMA) + ", group " + p.Group + "\n")
		t := newTable(column{title: "Class"}, column{title: "Kind"}, column{title: "DSCP"},
			column{title: "Rate", right: true}, column{title: "Ceil", right: true}, column{title: "Bytes", right: true},
			column{title: "Packets", right: true}, column{title: "Drops", right: true},
			column{title: "Overlimits", right: true}, column{title: "Backlog", right: true})
		row := func(c api.QoSClass, kind string) {
			u := func(v uint64) string { return strconv.FormatUint(v, 10) }
			t.add(c.Name, kind, strings.Join(c.DSCP, ","), config.Rate(c.Rate).String(), config.Rate(c.Ceil).String(),
				u(c.Bytes), u(c.Packets), u(c.Drops), u(c.Overlimits), u(c.Backlog)+"b/"+u(c.Qlen)+"p")
		}
		row(p.Shaper, "shaper")
		for _, c := range p.Classes {
			kind := "share"
			switch {
			case c.Priority:
				kind = "priority"
			case len(c.DSCP) == 0:
				kind = "default"
			}
			row(c, kind)
		}
		if err := t.write(&b); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
