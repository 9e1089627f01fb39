package lab

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testModulesDep = `kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/overlayfs/overlay.ko:
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/x/a-b.ko.xz: kernel/x/c.ko
kernel/x/c.ko: kernel/x/a-b.ko.xz
`

func TestResolveModules(t *testing.T) {
	md, err := parseModulesDep(strings.NewReader(testModulesDep))
	if err != nil {
		t.Fatal(err)
	}
	got, err := md.resolve("virtio_pci", "9pnet_virtio", "9p", "overlay")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
		"kernel/drivers/virtio/virtio_pci.ko",
		"kernel/net/9p/9pnet.ko",
		"kernel/net/9p/9pnet_virtio.ko",
		"kernel/fs/netfs/netfs.ko",
		"kernel/fs/fscache/fscache.ko",
		"kernel/fs/9p/9p.ko",
		"kernel/fs/overlayfs/overlay.ko",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolve (-want +got):\n%s", diff)
	}
}

func TestResolveModulesErrors(t *testing.T) {
	md, err := parseModulesDep(strings.NewReader(testModulesDep))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nosuch", "a_b"} {
		if _, err := md.resolve(name); err == nil {
			t.Errorf("resolve(%q) = nil error, want error", name)
		}
	}
	if _, err := parseModulesDep(strings.NewReader("no colon here\n")); err == nil {
		t.Error("parseModulesDep(bad line) = nil error")
	}
}
