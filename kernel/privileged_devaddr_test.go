package kernel

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestPrivDeviceIPv4: the underlay address is read from the device; a
// device without a global address and a missing device are errors naming
// the device.
func TestPrivDeviceIPv4(t *testing.T) {
	fd, h, _ := singleNode(t)
	k := newKernel(t, fd)
	got, err := k.DeviceIPv4("ul0")
	if err != nil || got != netip.MustParseAddr("172.16.9.1") {
		t.Errorf("DeviceIPv4(ul0) = %v, %v; want 172.16.9.1", got, err)
	}
	if err := h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "bare0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.DeviceIPv4("bare0"); err == nil || !strings.Contains(err.Error(), "bare0") {
		t.Errorf("DeviceIPv4(bare0) error = %v, want one naming bare0", err)
	}
	if _, err := k.DeviceIPv4("nosuch0"); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("DeviceIPv4(nosuch0) error = %v, want one naming nosuch0", err)
	}
}
