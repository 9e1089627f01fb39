package kerneltest

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// TestContractFake runs the dataplane contract against the fake; the real
// kernel runs the same suite in the lab (kernel's TestContractKernel).
func TestContractFake(t *testing.T) {
	RunContract(t, func(t *testing.T) System {
		f := New()
		line := func(dst netip.Prefix) string { return dst.String() + " dev gre1 proto static" }
		return System{
			Open: func(*testing.T) ContractDataplane { return f },
			Tunnel: kernel.TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Key: 42, TTL: 64,
				MTU: 1400, Address: netip.MustParsePrefix("10.0.0.1/32")},
			AddForeignRoute: func(_ *testing.T, dst netip.Prefix) { f.AddForeignRoute(line(dst)) },
			HasForeignRoute: func(_ *testing.T, dst netip.Prefix) bool {
				return slices.Contains(f.Lines(), "route "+line(dst))
			},
			TunnelLayout: func(_ *testing.T, prefix netip.Prefix) []string { return f.TunnelLayout(prefix) },
		}
	})
}
