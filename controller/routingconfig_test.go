package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// TestRoutingConfigGRPCListen checks that every grpc_listen form the
// config accepts becomes an API address the routing package accepts.
func TestRoutingConfigGRPCListen(t *testing.T) {
	tests := []struct {
		listen string
		want   string
	}{
		{"", "unix:///run/dmvpnd/gobgp.sock"}, // the default
		{"off", ""},
		{"127.0.0.1:50051", "127.0.0.1:50051"},
		{"[::1]:50051", "[::1]:50051"},
		{"unix:/run/dmvpnd/gobgp.sock", "unix:///run/dmvpnd/gobgp.sock"},
		{"unix:///run/dmvpnd/gobgp.sock", "unix:///run/dmvpnd/gobgp.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			yaml := `
tunnel: {name: gre1, key: 42, local_nbma: 198.51.100.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 300s}
bgp:
  enabled: true
  asn: 65000
  prefixes: [10.1.0.0/24]
`
			if tt.listen != "" {
				yaml += "  grpc_listen: \"" + tt.listen + "\"\n"
			}
			cfg, err := config.Parse([]byte(yaml))
			if err != nil {
				t.Fatalf("config.Parse: %v", err)
			}
			rc, err := routingConfig(cfg)
			if err != nil {
				t.Fatalf("routingConfig: %v", err)
			}
			if diff := cmp.Diff(tt.want, rc.API); diff != "" {
				t.Errorf("API (-want +got):\n%s", diff)
			}
			if err := rc.Validate(); err != nil {
				t.Errorf("routing rejects the derived config: %v", err)
			}
		})
	}
}
