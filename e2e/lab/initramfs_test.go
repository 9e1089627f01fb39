package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/google/go-cmp/cmp"
)

// fakeKernel writes a kernel tree with testModulesDep and dummy modules.
func fakeKernel(t *testing.T) (Kernel, string) {
	t.Helper()
	dir := t.TempDir()
	ver := "6.1.0-test-amd64"
	mdir := filepath.Join(dir, "kernel", "root", "lib", "modules", ver)
	dep := testModulesDep + "kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
	for _, line := range strings.Split(dep, "\n") {
		mod, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		p := filepath.Join(mdir, mod)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("ko:"+mod), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(mdir, "modules.dep"), dep)
	write(filepath.Join(dir, "kernel", "version"), ver+"\n")
	write(filepath.Join(dir, "kernel", "vmlinuz"), "kernel")
	bb := filepath.Join(dir, "busybox")
	write(bb, "busybox-binary")
	k, err := FindKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k, bb
}

func TestInitramfsContents(t *testing.T) {
	k, bb := fakeKernel(t)
	a, err := buildInitramfs(k, bb)
	if err != nil {
		t.Fatal(err)
	}
	var list strings.Builder
	for _, n := range a.names() {
		e := a.entries[n]
		kind := map[uint32]string{modeDir: "d", modeFile: "f", modeSymlink: "l"}[e.Mode&0o170000]
		list.WriteString(kind + " " + n)
		if kind == "l" {
			list.WriteString(" -> " + string(e.Data))
		}
		list.WriteString("\n")
	}
	golden.File(t, "initramfs.list", list.String())
	golden.File(t, "init.sh", string(a.entries["init"].Data))
	if got := string(a.entries["modules/9p.ko"].Data); got != "ko:kernel/fs/9p/9p.ko" {
		t.Errorf("modules/9p.ko content = %q", got)
	}
}

func TestInitramfsCachedByContent(t *testing.T) {
	k, bb := fakeKernel(t)
	cache := t.TempDir()
	p1, err := Initramfs(cache, k, bb)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Initramfs(cache, k, bb)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Errorf("same inputs gave %s and %s", p1, p2)
	}
	if err := os.WriteFile(bb, []byte("another busybox"), 0o644); err != nil {
		t.Fatal(err)
	}
	p3, err := Initramfs(cache, k, bb)
	if err != nil {
		t.Fatal(err)
	}
	if p3 == p1 {
		t.Errorf("changed busybox kept cache key %s", p3)
	}
	data, err := os.ReadFile(p3)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := readCpio(data)
	if err != nil {
		t.Fatal(err)
	}
	var bbData []byte
	for _, e := range entries {
		if e.Name == "bin/busybox" {
			bbData = e.Data
		}
	}
	if !bytes.Equal(bbData, []byte("another busybox")) {
		t.Errorf("bin/busybox = %q", bbData)
	}
}

// realKernel returns the repository's root and the lab kernel deps.sh
// unpacked under its .cache, or skips the test when there is none.
func realKernel(t *testing.T) (root string, k Kernel) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Skip(err)
	}
	k, err = FindKernel(filepath.Join(root, ".cache"))
	if err != nil {
		t.Skip(err)
	}
	return root, k
}

// TestInitramfsRealKernel resolves the init modules against the kernel that
// deps.sh unpacked, when it is there.
func TestInitramfsRealKernel(t *testing.T) {
	_, k := realKernel(t)
	a, err := buildInitramfs(k, "/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var mods []string
	for _, n := range a.names() {
		if strings.HasPrefix(n, "modules/") {
			mods = append(mods, n)
		}
	}
	for _, want := range []string{"modules/9p.ko", "modules/9pnet_virtio.ko", "modules/overlay.ko", "modules/virtio_console.ko", "modules/virtio_pci.ko", "modules/netfs.ko"} {
		if !cmp.Equal(true, contains(mods, want)) {
			t.Errorf("initramfs modules %v lack %s", mods, want)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
