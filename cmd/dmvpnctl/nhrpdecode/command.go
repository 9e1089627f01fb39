package nhrpdecode

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// NewCommand returns the `decode FILE` command, meant to sit under the
// `dmvpnctl nhrp` command group.
func NewCommand() *cobra.Command {
	var asJSON, showSecrets bool
	cmd := &cobra.Command{
		Use:   "decode FILE",
		Short: "Print the NHRP packets in a pcap or pcapng capture",
		Long: `Print every NHRP packet in a pcap or pcapng capture file: type, addresses,
flags by name, request id, every CIE and extension. NHRP is found in GRE
(protocol 0x2001) over IPv4 or IPv6, or directly over IP protocol 54, on
Ethernet (with or without VLAN tags), Linux cooked (SLL, SLL2) and raw IP
captures. Malformed packets are printed with their decode error, the RFC 2332
error code an NHS would answer with, and the offset of the offending field.

Capture on the underlay, e.g.: tcpdump -i eth0 -w nhrp.pcap 'proto gre or proto 54'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("nhrp decode: %w", err)
			}
			defer f.Close()
			recs, readErr := Decode(f)
			opt := Options{ShowSecrets: showSecrets}
			out := cmd.OutOrStdout()
			if asJSON {
				err = RenderJSON(out, recs, opt)
			} else {
				err = RenderText(out, recs, opt)
			}
			if readErr != nil {
				return fmt.Errorf("nhrp decode: %s: %w", args[0], readErr)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array instead of text")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "print authentication passwords instead of hiding them")
	return cmd
}
