package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// newDMVPNDetail is "show dmvpn detail": every peer with all it carries.
func newDMVPNDetail(o *opts) *cobra.Command {
	return &cobra.Command{
		Use: "detail", Short: "Every peer with its NHRP entries, neighbor, routes, SAs and BGP session", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := o.ctx(cmd)
			defer cancel()
			d, err := o.api().DMVPN(ctx)
			if err != nil {
				return err
			}
			peers, err := o.api().PeerDetails(ctx, netip.Addr{})
			if err != nil {
				return err
			}
			return o.emit(peers, func() error { return renderDMVPNDetail(o.out, d, peers, o.now()) })
		},
	}
}

// newDMVPNPeer is "show dmvpn peer ADDR".
func newDMVPNPeer(o *opts) *cobra.Command {
	return &cobra.Command{
		Use: "peer ADDR", Short: "Everything about the peer at a tunnel or NBMA address", Args: cobra.ExactArgs(1),
		RunE: withAddr(o, func(ctx context.Context, a netip.Addr) error {
			peers, err := o.api().PeerDetails(ctx, a)
			if err != nil {
				return err
			}
			return o.emit(peers, func() error { return renderPeerDetails(o.out, peers, o.now()) })
		}),
	}
}

// newClearDMVPN is "clear dmvpn peer ADDR".
func newClearDMVPN(o *opts) *cobra.Command {
	c := group("dmvpn", "Clear DMVPN peers")
	c.AddCommand(&cobra.Command{
		Use:   "peer ADDR",
		Short: "Drop a peer's registration (hub) or resolved entry and shortcuts (spoke), and its SAs",
		Args:  cobra.ExactArgs(1),
		RunE: withAddr(o, func(ctx context.Context, a netip.Addr) error {
			res, err := o.api().ClearPeer(ctx, a)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, l := range res.Actions {
				b.WriteString(titleCase(l) + "\n")
			}
			_, err = io.WriteString(o.out, b.String())
			return err
		}),
	})
	return c
}

// newClearRegistration is "clear nhrp registration ADDR".
func newClearRegistration(o *opts) *cobra.Command {
	return &cobra.Command{
		Use: "registration ADDR", Short: "Drop a client's registration on a hub (it registers again at its next refresh)",
		Args: cobra.ExactArgs(1),
		RunE: withAddr(o, func(ctx context.Context, a netip.Addr) error {
			n, err := o.api().ClearRegistration(ctx, a)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(o.out, "Cleared %d NHRP registration(s) of %s\n", n, a)
			return err
		}),
	}
}

func renderDMVPNDetail(w io.Writer, d api.DMVPN, peers []api.PeerDetail, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Interface: %s, IPv4 NHRP Details\n", d.Interface)
	fmt.Fprintf(&b, "Type:%s, NHRP Peers:%d,\n", titleCase(d.Role), len(peers))
	fmt.Fprintf(&b, "Local: tunnel %s, NBMA %s\n\n", orDash(prefixString(d.Address)), addr(d.NBMA))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if len(peers) == 0 {
		if _, err := io.WriteString(w, "No peers\n\n"); err != nil {
			return err
		}
	} else if err := renderPeerDetails(w, peers, now); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	return renderNHS(w, d.NHS, now)
}

func renderPeerDetails(w io.Writer, peers []api.PeerDetail, now time.Time) error {
	var b strings.Builder
	for i, p := range peers {
		if i > 0 {
			b.WriteString("\n")
		}
		writePeerDetail(&b, p, now)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writePeerDetail(b *strings.Builder, p api.PeerDetail, now time.Time) {
	fmt.Fprintf(b, "Peer %s, NBMA %s", addr(p.Tunnel), addr(p.NBMA))
	if p.ObservedNBMA.IsValid() && p.ObservedNBMA != p.NBMA {
		fmt.Fprintf(b, " (observed %s)", p.ObservedNBMA)
	}
	fmt.Fprintf(b, ", %s %s, Attrb %s\n", p.State, since(now, p.Since), attrString(p.Attrs))
	if p.Group != "" {
		fmt.Fprintf(b, "  NHRP group: %s\n", p.Group)
	}
	if p.NHS != nil {
		fmt.Fprintf(b, "  NHS: priority %d, %s since %s, registration expires in %s\n",
			p.NHS.Priority, p.NHS.State, since(now, p.NHS.Since), until(now, p.NHS.Expires))
	}
	if len(p.Cache) > 0 {
		b.WriteString("  NHRP entries:\n")
		var t strings.Builder
		_ = renderCache(&t, p.Cache, now)
		indent(b, t.String(), "    ")
		b.WriteString("\n")
	}
	if p.Path != "" {
		fmt.Fprintf(b, "  Direct path: %s\n", p.Path)
	}
	if p.Neighbor != nil {
		fmt.Fprintf(b, "  Neighbor: %s lladdr %s\n", p.Neighbor.Tunnel, p.Neighbor.NBMA)
	} else {
		b.WriteString("  Neighbor: none\n")
	}
	if len(p.Routes) > 0 {
		b.WriteString("  Routes via the peer:\n")
		t := newTable(column{title: "Prefix"}, column{title: "Via"}, column{title: "Source"},
			column{title: "Metric", right: true}, column{title: "Expires", right: true})
		for _, r := range p.Routes {
			t.add(orDash(prefixString(r.Prefix)), addr(r.Via), string(r.Source), strconv.Itoa(r.Metric), until(now, r.Expires))
		}
		var tb strings.Builder
		_ = t.write(&tb)
		indent(b, tb.String(), "    ")
		b.WriteString("\n")
	} else {
		b.WriteString("  Routes via the peer: none\n")
	}
	if p.SA != nil {
		s := p.SA
		fmt.Fprintf(b, "  IPsec %s: %s %s, remote %s", s.Name, s.State, since(now, s.Since), addr(s.Remote))
		if s.NATTPort != 0 {
			fmt.Fprintf(b, " (NAT-T port %d)", s.NATTPort)
		}
		if s.Reason != "" {
			fmt.Fprintf(b, ", %s", s.Reason)
		}
		b.WriteString("\n")
		writeIKESAs(b, s.IKESAs, now, "    ")
	} else {
		b.WriteString("  IPsec: none\n")
	}
	if n := p.BGP; n != nil {
		fmt.Fprintf(b, "  BGP: AS %d, %s %s, prefixes received %d, accepted %d\n",
			n.AS, n.State, since(now, n.Since), n.Received, n.Accepted)
	} else {
		b.WriteString("  BGP: no session\n")
	}
}

// indent writes text with every non-empty line prefixed.
func indent(b *strings.Builder, text, prefix string) {
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.TrimSpace(l) != "" {
			b.WriteString(prefix + l)
		}
	}
}
