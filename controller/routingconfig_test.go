package controller

import (
	"testing"
	"time"

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

// TestRoutingConfigTimers: bgp.timers reach the speaker, the keepalive
// defaulting to a third of the hold time, and routing accepts them.
func TestRoutingConfigTimers(t *testing.T) {
	for _, tt := range []struct {
		timers          string
		hold, keepalive time.Duration
	}{
		{"", 90 * time.Second, 30 * time.Second},
		{"  timers: {hold: 30s}\n", 30 * time.Second, 10 * time.Second},
		{"  timers: {hold: 9s, keepalive: 2s}\n", 9 * time.Second, 2 * time.Second},
	} {
		cfg, err := config.Parse([]byte(`
tunnel: {name: gre1, key: 42, local_nbma: 198.51.100.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 300s}
bgp:
  enabled: true
  asn: 65000
` + tt.timers))
		if err != nil {
			t.Fatalf("config.Parse(%q): %v", tt.timers, err)
		}
		rc, err := routingConfig(cfg)
		if err != nil {
			t.Fatalf("routingConfig: %v", err)
		}
		if rc.HoldTime != tt.hold || rc.KeepaliveInterval != tt.keepalive {
			t.Errorf("%q: hold %s keepalive %s, want %s and %s", tt.timers, rc.HoldTime, rc.KeepaliveInterval, tt.hold, tt.keepalive)
		}
		if err := rc.Validate(); err != nil {
			t.Errorf("%q: routing rejects the derived config: %v", tt.timers, err)
		}
	}
}
