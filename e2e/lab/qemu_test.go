package lab

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
)

func TestQemuArgs(t *testing.T) {
	c := vmConfig{
		Kernel:     Kernel{Image: "/c/kernel/vmlinuz", Version: "6.1.0-56-amd64", ModulesDir: "/c/kernel/root/lib/modules/6.1.0-56-amd64"},
		Initramfs:  "/c/lab/initramfs-0123.cpio",
		MemoryMB:   2048,
		CPUs:       2,
		ResultsDir: "/c/lab/runs/TestSmoke",
		Agent:      "/c/lab/runs/TestSmoke/labagent",
		Console:    "/c/lab/runs/TestSmoke/console.log",
		Socket:     "/tmp/lab1/agent.sock",
		Monitor:    "/tmp/lab1/monitor.sock",
	}
	args, err := c.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	golden.File(t, "qemu-tcg.args", strings.Join(args, "\n")+"\n")

	c.Accel = "kvm"
	args, err = c.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args[:4], " "); got != "-accel kvm -cpu host" {
		t.Errorf("kvm args start %q", got)
	}

	c.Accel = ""
	c.NICs = []hostNIC{{HostNIC: HostNIC{Node: "hub", Ports: []int{22}}, mac: "52:54:00:4c:00:01", ports: map[int]int{22: 40022}}}
	args, err = c.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	want := "-netdev user,id=hostnic0,net=172.30.0.0/24,host=172.30.0.2,restrict=on,hostfwd=tcp:127.0.0.1:40022-172.30.0.15:22 " +
		"-device virtio-net-pci,netdev=hostnic0,mac=52:54:00:4c:00:01"
	if got := strings.Join(args[len(args)-4:], " "); got != want {
		t.Errorf("host NIC args:\n got %s\nwant %s", got, want)
	}

	for _, bad := range []vmConfig{
		{Accel: "hvf"},
		{ResultsDir: "/a,b"},
		{Socket: "/a b"},
	} {
		if _, err := bad.qemuArgs(); err == nil {
			t.Errorf("qemuArgs(%+v) = nil error", bad)
		}
	}
}

func TestHostNICs(t *testing.T) {
	nics, err := hostNICs([]HostNIC{{Node: "hub", Ports: []int{22}}, {Node: "s1", Ports: []int{22, 80}}})
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{hostNICs: nics}
	seen := map[netip.AddrPort]bool{}
	for _, f := range []struct {
		node string
		port int
	}{{"hub", 22}, {"s1", 22}, {"s1", 80}} {
		a, err := l.HostAddr(f.node, f.port)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Addr().IsLoopback() || a.Port() == 0 || seen[a] {
			t.Errorf("HostAddr(%s, %d) = %v: not a distinct loopback port", f.node, f.port, a)
		}
		seen[a] = true
	}
	if _, err := l.HostAddr("hub", 80); err == nil {
		t.Error("HostAddr(hub, 80): no error for a port without forward")
	}
	for _, bad := range [][]HostNIC{{{Node: ""}}, {{Node: "a"}, {Node: "a"}}} {
		if _, err := hostNICs(bad); err == nil {
			t.Errorf("hostNICs(%+v): no error", bad)
		}
	}
}
