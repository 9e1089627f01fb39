package lab

import (
	"strings"
	"testing"
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
	}
	args, err := c.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "qemu-tcg.args", strings.Join(args, "\n")+"\n")

	c.Accel = "kvm"
	args, err = c.qemuArgs()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args[:4], " "); got != "-accel kvm -cpu host" {
		t.Errorf("kvm args start %q", got)
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
