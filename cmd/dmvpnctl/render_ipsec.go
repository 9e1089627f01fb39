package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// renderIPsec is a table of the peers' protection state, then each peer's
// IKE and CHILD_SAs as charon lists them (swanctl --list-sas habits).
func renderIPsec(w io.Writer, sas []api.SA, now time.Time) error {
	if len(sas) == 0 {
		_, err := io.WriteString(w, "No IPsec SAs\n")
		return err
	}
	t := newTable(column{title: "Peer NBMA Addr"}, column{title: "State"}, column{title: "Local"}, column{title: "Remote"},
		column{title: "NAT-T", right: true}, column{title: "UpDn Tm", right: true}, column{title: "Reason"})
	for _, s := range sas {
		natt := "-"
		if s.NATTPort != 0 {
			natt = strconv.Itoa(int(s.NATTPort))
		}
		t.add(addr(s.PeerNBMA), string(s.State), addr(s.Local), addr(s.Remote), natt, since(now, s.Since), orDash(s.Reason))
	}
	if err := t.write(w); err != nil {
		return err
	}
	var b strings.Builder
	for _, s := range sas {
		if len(s.IKESAs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\nPeer %s (%s)\n", addr(s.PeerNBMA), s.Name)
		writeIKESAs(&b, s.IKESAs, now, "  ")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeIKESAs writes IKE SAs and their children, each line prefixed by indent.
func writeIKESAs(b *strings.Builder, ikes []api.IKESA, now time.Time, indent string) {
	for _, ike := range ikes {
		role := "responder"
		if ike.Initiator {
			role = "initiator"
		}
		fmt.Fprintf(b, "%sIKE SA #%s %s, up %s, %s, remote %s", indent, ike.ID, ike.State, since(now, ike.Established), role, addrPort(ike.Remote))
		if ike.RemoteID != "" {
			fmt.Fprintf(b, " [%s]", ike.RemoteID)
		}
		if ike.Terminating {
			b.WriteString(", terminating")
		}
		b.WriteString("\n")
		fmt.Fprintf(b, "%s  %s, rekey in %s\n", indent,
			proposal(alg(ike.EncrAlg, ike.EncrKeySize), ike.IntegAlg, ike.PRFAlg, ike.DHGroup), until(now, ike.RekeyAt))
		for _, c := range ike.Children {
			encap := ""
			if c.Encap {
				encap = " in UDP"
			}
			fmt.Fprintf(b, "%s  CHILD_SA %s #%s %s, %s %s%s, SPIs in %s out %s\n", indent, c.Name, c.ID, c.State,
				c.Mode, orDash(c.Protocol), encap, orDash(c.SPIIn), orDash(c.SPIOut))
			fmt.Fprintf(b, "%s    %s, installed %s ago, rekey in %s, expires in %s\n", indent,
				proposal(alg(c.EncrAlg, c.EncrKeySize), c.IntegAlg), since(now, c.Installed), until(now, c.RekeyAt), until(now, c.Expires))
			fmt.Fprintf(b, "%s    in  %d bytes, %d packets\n", indent, c.BytesIn, c.PacketsIn)
			fmt.Fprintf(b, "%s    out %d bytes, %d packets\n", indent, c.BytesOut, c.PacketsOut)
		}
	}
}

// alg is "NAME-KEYSIZE" as swanctl prints it, or NAME without a size.
func alg(name string, keySize int) string {
	if name == "" || keySize == 0 {
		return name
	}
	return name + "-" + strconv.Itoa(keySize)
}

// proposal joins the non-empty algorithms with "/", "-" when none.
func proposal(algs ...string) string {
	var set []string
	for _, a := range algs {
		if a != "" {
			set = append(set, a)
		}
	}
	return orDash(strings.Join(set, "/"))
}
