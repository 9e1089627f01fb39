package lab

import (
	"fmt"
	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
	"strings"
)

// vmConfig is everything qemu needs for one guest.
type vmConfig struct {
	Kernel     Kernel
	Initramfs  string
	Accel      string // "tcg" or "kvm"
	MemoryMB   int
	CPUs       int
	ResultsDir string   // host dir shared writable; mounted at the same path in the guest
	Agent      string   // agent binary path (inside ResultsDir or on the host root)
	Console    string   // file receiving the guest's serial console
	Socket     string   // unix socket qemu listens on for the agent's virtio-serial port
	Monitor    string   // unix socket qemu serves its human monitor on
	BIOS       string   // firmware for -bios; empty: qemu's default (SeaBIOS)
	ExtraArgs  []string // appended to the kernel command line
	NICs       []hostNIC
}

// kernelCmdline is the guest kernel's command line.
func (c vmConfig) kernelCmdline() string {
	return strings.Join(append([]string{
		"console=ttyS0", "loglevel=4", "panic=-1", "rdinit=/init",
		// Emulated CPUs gain nothing from side-channel mitigations.
		"mitigations=off", "random.trust_cpu=on",
		// The crypto manager's self-tests run when an algorithm is first
		// instantiated (the first ESP SA) and take seconds under TCG.
		"cryptomgr.notests=1",
		// The boot-time check that the IO-APIC delivers the timer fails
		// when the host is busy (TCG runs the guest slower than its
		// clock) and panics the kernel ("IO-APIC + timer doesn't work");
		// the emulated timer works, the check is what fails.
		"no_timer_check",
		// Under multi-threaded TCG the vCPUs' TSCs fail the kernel's
		// boot-time synchronisation check, so it falls back to the
		// emulated HPET: every clock read is then a system call plus an
		// emulated MMIO read (435 ns from Go in the guest, against 80 ns
		// with the TSC through the vDSO), which no real host or KVM guest
		// pays. TCG's TSC is the host's clock for every vCPU; the vDSO
		// keeps time monotonic across vCPUs.
		"tsc=reliable",
		cmdlineResults + "=" + c.ResultsDir,
		cmdlineAgent + "=" + c.Agent,
		cmdlineModules + "=" + c.Kernel.ModulesDir,
	}, c.ExtraArgs...), " ")
}

// qemuArgs renders the qemu-system-x86_64 argument list. The guest has no
// network card (-nic none): all of its networks live inside it, and the
// host's network is never touched; the exception are NICs, each a
// restricted user-mode network that only carries the host's forwards in.
func (c vmConfig) qemuArgs() ([]string, error) {
	for _, s := range []string{c.ResultsDir, c.Agent, c.Kernel.ModulesDir, c.Console, c.Socket, c.Monitor} {
		// qemu's option syntax uses ',' as a separator, the cmdline uses spaces.
		if strings.ContainsAny(s, ", \t\n") {
			return nil, fmt.Errorf("lab: path %q contains a comma or space", s)
		}
	}
	accel := "tcg,thread=multi"
	cpu := "max"
	switch c.Accel {
	case "", "tcg":
	case "kvm":
		accel, cpu = "kvm", "host"
	default:
		return nil, fmt.Errorf("lab: unknown accelerator %q", c.Accel)
	}
	args := []string{
		"-accel", accel,
		"-cpu", cpu,
		"-m", fmt.Sprint(c.MemoryMB),
		"-smp", fmt.Sprint(c.CPUs),
		"-nographic", "-no-reboot", "-nodefaults",
		"-nic", "none",
		"-kernel", c.Kernel.Image,
		"-initrd", c.Initramfs,
		"-append", c.kernelCmdline(),
		"-chardev", "file,id=con,path=" + c.Console,
		"-serial", "chardev:con",
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-virtfs", "local,path=" + c.ResultsDir + ",mount_tag=results,security_model=none,multidevs=remap",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent,path=" + c.Socket + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=" + agent.PortName,
	}
	if c.Monitor != "" {
		args = append(args, "-monitor", "unix:"+c.Monitor+",server=on,wait=off")
	}
	if c.BIOS != "" {
		args = append(args, "-bios", c.BIOS)
	}
	for i, n := range c.NICs {
		args = append(args, n.qemuArgs(i)...)
	}
	return args, nil
}
