package lab

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindXZ(t *testing.T) {
	img := append([]byte("MZ....setup code...."), xzMagic...)
	img = append(img, "payload"...)
	if off, err := findXZ(img); err != nil || off != 20 {
		t.Errorf("findXZ = %d, %v; want 20", off, err)
	}
	if _, err := findXZ([]byte("no payload here")); err == nil {
		t.Error("findXZ without payload = nil error")
	}
}

// TestPVHKernelReal extracts the lab kernel deps.sh unpacked, when present.
func TestPVHKernelReal(t *testing.T) {
	root, k := realKernel(t)
	if !Enabled() {
		t.Skip("writes a 65 MB vmlinux into .cache/lab: only with DMVPND_LAB_TESTS=1")
	}
	cache := filepath.Join(root, ".cache")
	p, err := PVHKernel(cache, k)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Size() < 10<<20 {
		t.Fatalf("vmlinux %s: %v, %v", p, st, err)
	}
	if ok, err := hasPVHNote(p); !ok || err != nil {
		t.Errorf("hasPVHNote(%s) = %v, %v", p, ok, err)
	}
	// Not a kernel image: no PVH note.
	if ok, _ := hasPVHNote("/bin/busybox"); ok {
		t.Error("busybox has a PVH note?")
	}
}
