package lab

import (
	"fmt"
	"path"
	"strings"
)

// initModules are loaded by the initramfs before switch_root: what it takes
// to mount the host root over virtio 9p with an overlay on top, and to reach
// the agent's virtio-serial port. Their dependencies come from modules.dep.
var initModules = []string{"virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_console"}

// initApplets are the busybox applets the init script uses.
var initApplets = []string{"cat", "echo", "hostname", "insmod", "mkdir", "mount", "poweroff", "sh", "sleep", "switch_root"}

// Kernel command-line keys the init script reads. Keys with a dot are
// ignored by the kernel itself and not copied into init's environment.
const (
	cmdlineResults = "lab.results" // guest path where the writable share is mounted
	cmdlineAgent   = "lab.agent"   // guest path of the agent binary
	cmdlineModules = "lab.modules" // guest path of the unpacked /lib/modules/VERSION
)

// renderInit returns the /init script. moduleFiles are archive paths
// ("modules/virtio.ko") in load order; version is the kernel release whose
// /lib/modules directory is bind-mounted in the new root.
func renderInit(moduleFiles []string, version string) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# dmvpnd lab initramfs. Mounts the host's / read-only over 9p, puts a
# throw-away tmpfs overlay on top, mounts the writable results share and
# switch_roots into the agent (e2e/lab/agent/labagent) as PID 1.
export PATH=/bin
fail() { echo "lab-init: FAILED: $*"; poweroff -f; sleep 5; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "lab-init: loading modules"
`)
	for _, m := range moduleFiles {
		fmt.Fprintf(&b, "insmod /%s || fail \"insmod %s\"\n", m, path.Base(m))
	}
	fmt.Fprintf(&b, `RESULTS= AGENT= MODULES=
for x in $(cat /proc/cmdline); do
	case "$x" in
	%s=*) RESULTS="${x#*=}" ;;
	%s=*) AGENT="${x#*=}" ;;
	%s=*) MODULES="${x#*=}" ;;
	esac
done
[ -n "$RESULTS" ] && [ -n "$AGENT" ] && [ -n "$MODULES" ] || fail "missing lab.* kernel parameters"
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower || fail "mount hostroot"
mount -t tmpfs -o mode=0755 rw /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "mount overlay"
mount --move /proc /newroot/proc || fail "move /proc"
mount --move /sys /newroot/sys || fail "move /sys"
mount --move /dev /newroot/dev || fail "move /dev"
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 shm /newroot/dev/shm
mount -t tmpfs -o mode=0755 run /newroot/run || fail "mount /run"
# /tmp stays the overlay's (writable, thrown away with the guest): a fresh
# tmpfs there would hide a checkout under the host's /tmp (the kernel
# modules, the agent and the binaries under test live in its .cache).
mkdir -p /newroot/lib/modules/%[4]s
mount --bind "/lower$MODULES" /newroot/lib/modules/%[4]s || fail "bind modules"
mkdir -p "/newroot$RESULTS"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results "/newroot$RESULTS" || fail "mount results"
hostname lab
echo "lab-init: switch_root"
exec switch_root /newroot "$AGENT" init
fail "switch_root"
`, cmdlineResults, cmdlineAgent, cmdlineModules, version)
	return b.String()
}
