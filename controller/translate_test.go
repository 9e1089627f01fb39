package controller

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestLocalNBMAFromUnderlayDevice(t *testing.T) {
	cfg := parseConfig(t, "tunnel: {underlay_device: eth0, address: 10.0.0.2/24}\nnhrp: {role: spoke, network_id: 1, nhs: [{nbma: 198.51.100.1}]}\n")
	dev := func(name string) (netip.Addr, error) {
		if name != "eth0" {
			return netip.Addr{}, errors.New("no such device " + name)
		}
		return netip.MustParseAddr("198.51.100.7"), nil
	}
	got, err := localNBMA(cfg, dev)
	if err != nil || got != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("localNBMA = %v, %v; want 198.51.100.7", got, err)
	}
	failing := func(string) (netip.Addr, error) {
		return netip.Addr{}, errors.New("the device has no global IPv4 address")
	}
	if _, err := localNBMA(cfg, failing); err == nil || !strings.Contains(err.Error(), "tunnel.underlay_device") {
		t.Errorf("localNBMA with a failing device: %v, want an error naming tunnel.underlay_device", err)
	}
	cfg.Tunnel.LocalNBMA = netip.MustParseAddr("198.51.100.9")
	if got, err := localNBMA(cfg, failing); err != nil || got != cfg.Tunnel.LocalNBMA {
		t.Errorf("localNBMA with local_nbma set = %v, %v; want it used without asking the device", got, err)
	}
}
