#!/bin/sh
# dmvpnd lab initramfs. Mounts the host's / read-only over 9p, puts a
# throw-away tmpfs overlay on top, mounts the writable results share and
# switch_roots into the agent (e2e/lab/agent/labagent) as PID 1.
export PATH=/bin
fail() { echo "lab-init: FAILED: $*"; poweroff -f; sleep 5; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "lab-init: loading modules"
insmod /modules/virtio_ring.ko || fail "insmod virtio_ring.ko"
insmod /modules/virtio.ko || fail "insmod virtio.ko"
insmod /modules/virtio_pci_modern_dev.ko || fail "insmod virtio_pci_modern_dev.ko"
insmod /modules/virtio_pci_legacy_dev.ko || fail "insmod virtio_pci_legacy_dev.ko"
insmod /modules/virtio_pci.ko || fail "insmod virtio_pci.ko"
insmod /modules/9pnet.ko || fail "insmod 9pnet.ko"
insmod /modules/9pnet_virtio.ko || fail "insmod 9pnet_virtio.ko"
insmod /modules/netfs.ko || fail "insmod netfs.ko"
insmod /modules/fscache.ko || fail "insmod fscache.ko"
insmod /modules/9p.ko || fail "insmod 9p.ko"
insmod /modules/overlay.ko || fail "insmod overlay.ko"
insmod /modules/virtio_console.ko || fail "insmod virtio_console.ko"
RESULTS= AGENT= MODULES=
for x in $(cat /proc/cmdline); do
	case "$x" in
	lab.results=*) RESULTS="${x#*=}" ;;
	lab.agent=*) AGENT="${x#*=}" ;;
	lab.modules=*) MODULES="${x#*=}" ;;
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
mkdir -p /newroot/lib/modules/6.1.0-test-amd64
mount --bind "/lower$MODULES" /newroot/lib/modules/6.1.0-test-amd64 || fail "bind modules"
mkdir -p "/newroot$RESULTS"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results "/newroot$RESULTS" || fail "mount results"
hostname lab
echo "lab-init: switch_root"
exec switch_root /newroot "$AGENT" init
fail "switch_root"
